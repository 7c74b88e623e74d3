"""How every command line answers a user's mistake: one line on stderr, exit status 2.

A missing file, a checkpoint that is not one, a folder that cannot be written, `--epochs 0`:
these are the user's to fix, and a 40-line traceback hides the one line that says how. Each
`python -m petseg_lib.X` runs its `main` through `run_cli`, which prints `error: <message>`
and exits with status 2. `--debug` (or PETSEG_DEBUG=1) shows the full traceback instead.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from .errors import CheckpointError, UserError

# The exception types that mean "the input was wrong", not "the program is wrong"; an
# ImportError here is an optional extra that is not installed (its message says which).
USER_ERRORS = (CheckpointError, OSError, ValueError, ImportError)  # UserError is a ValueError


def run_cli(main: Callable, argv: list[str] | None = None):
    """Run MAIN(argv); a user error becomes one line on stderr and exit status 2."""
    argv = sys.argv[1:] if argv is None else list(argv)
    debug = "--debug" in argv or os.environ.get("PETSEG_DEBUG") == "1"
    argv = [arg for arg in argv if arg != "--debug"]
    try:
        return main(argv)
    except USER_ERRORS as err:
        if debug:
            raise
        message = " ".join(str(err).split()) or type(err).__name__
        print(f"error: {message} (--debug shows the traceback)", file=sys.stderr)
        raise SystemExit(2) from None


def writable_folder(path: str | Path) -> Path:
    """PATH as a folder that exists and can be written, or a UserError saying why not."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as err:
        raise UserError(f"cannot write to the folder '{path}': {err.strerror or err}") from err
    return path


def positive(name: str, value: float | None, minimum: float = 1) -> None:
    """A UserError when VALUE (a setting called NAME) is below MINIMUM."""
    if value is not None and not value >= minimum:  # `not >=` also catches NaN
        raise UserError(f"{name} must be at least {minimum}, not {value}")
