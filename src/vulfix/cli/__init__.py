"""The `vulfix` command line."""
