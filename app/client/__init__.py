"""Clients of a OneTimeShare server: the command-line sender (send.py). They talk HTTP
to a server and share none of its code but the version."""
