"""weightport's own error types.

`UserError` covers everything a user can cause (a missing file, an unknown
model, a corrupt or hostile checkpoint, a table that does not fit): the CLI
prints its message on one line and exits with code 2.
"""


class UserError(Exception):
    """A problem with the user's input, reported without a traceback."""


class CheckpointError(UserError):
    """A checkpoint file that cannot be read safely: corrupt, truncated, hostile or of an unknown format."""

    def __init__(self, path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class LayoutError(UserError):
    """Converted tensors that do not fit the target twin: missing, unexpected or misshaped keys."""
