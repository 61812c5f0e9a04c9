"""Importing the public store file (소상공인시장진흥공단_상가(상권)정보) and menus."""
