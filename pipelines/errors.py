"""The one exception type the command line turns into a one-line message and exit code 2."""


class UsageError(Exception):
    """A mistake the user can fix: a bad flag value, a missing file, an invalid manifest."""


class BadArguments(UsageError):
    """Command-line arguments argparse refused; `prog` names the (sub)command."""

    def __init__(self, prog: str, message: str):
        super().__init__(message)
        self.prog = prog
