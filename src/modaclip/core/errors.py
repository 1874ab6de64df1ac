"""The one exception type modaclip raises for bad input or a failed step."""


class ModaclipError(Exception):
    """A user-facing error: the message names the file, row, key or parameter at fault."""
