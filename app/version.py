"""The version, in one place, importable without the app."""

__version__ = "0.1.0"
