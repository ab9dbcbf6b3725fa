"""Measurement and inspection scripts (not tests): run each with `python -m tools.<name>`."""
