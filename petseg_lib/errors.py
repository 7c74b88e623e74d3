"""The mistakes a user can make, as exception types every room may raise without imports.

Each one means "the input was wrong, not the program": the command lines (cli.run_cli) answer
them in one line with exit status 2. This module imports nothing of the package.
"""


class UserError(ValueError):
    """A mistake in what the user asked for or handed in, explained in one line."""


class CheckpointError(RuntimeError):
    """A checkpoint file that cannot be used: missing, not a checkpoint, or not fitting."""


class UnreadableImage(UserError):
    """An image that cannot be used: missing, empty, not an image, damaged or too large."""
