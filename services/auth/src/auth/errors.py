"""auth's business errors (status and stable code per class)."""

from __future__ import annotations

from servicekit.errors import NotFound


class UserNotFound(NotFound):
    code = "user_not_found"
    title = "User not found"
