"""Errors the user can fix. The CLI prints them as one line and exits with code 2."""


class PipelineError(Exception):
    """Bad input: a file, column or key that is not what was expected.

    The message must name the file / column / key and what was expected; it is shown
    to the user verbatim, without a traceback.
    """
