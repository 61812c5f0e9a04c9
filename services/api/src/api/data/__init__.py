"""Reference data shipped with the api (see NOTICE.md)."""
