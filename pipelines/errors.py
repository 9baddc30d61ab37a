"""The one exception type the command line turns into a one-line message and exit code 2."""


class UsageError(Exception):
    """A mistake the user can fix: a bad flag value, a missing file, an invalid manifest."""
