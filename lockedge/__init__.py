"""The command line that composes the floors (lockedge/cli.py); nothing below imports it."""
