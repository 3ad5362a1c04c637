"""The one exception type that fussbench raises for bad input or bad state."""


class FussbenchError(Exception):
    """A problem the user can fix: the message names the file or parameter and the fix.

    The CLI prints the message as one line and exits with status 2, without a traceback.
    """
