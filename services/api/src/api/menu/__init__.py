"""Store menus: items imported from Kakao place data or a CSV; a deal can start from one."""
