"""OneTimeShare: encrypted files and text secrets that can be downloaded exactly once.

The package reads like its architecture: ``domain`` (shares, cryptography, storage,
metadata; never imports Quart), ``web`` (the Quart application, routes, guards and
plumbing) and ``process`` (the command line, the serving master, workers, background
jobs), with the settings, errors, logs and metrics they share at the top.
"""

from .version import __version__

__all__ = ["__version__"]
