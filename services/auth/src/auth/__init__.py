"""magam auth service."""
