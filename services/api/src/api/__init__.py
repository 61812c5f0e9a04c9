"""magam api service."""
