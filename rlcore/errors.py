"""Errors shared by modules that must not import each other (the config schema and placement)."""


class ConfigError(ValueError):
    """A config that cannot run: names the key (and file) at fault."""
