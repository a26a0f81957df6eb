"""The `relief` command line."""
