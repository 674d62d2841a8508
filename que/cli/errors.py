"""The error of bad command-line input (exit status 2), shared by the `que` commands."""


class UsageError(Exception):
    """Bad input from the command line."""
