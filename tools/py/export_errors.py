"""The one error type the exporter reports as a single line: something the user gave is wrong."""


class UserError(Exception):
    """A failure caused by the user's input (a path, a checkpoint, a flag); the message says what to do."""
