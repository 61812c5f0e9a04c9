"""What auth, api and push do the same way (promoted to libs/ because all three use it)."""
