"""rlcore package."""
