"""magam push service."""
