"""The one error type of ours that a user can fix; anything else raised is a bug.

The CLI (experiments/run.py) ends a `UserError` in one line and exit code 2; every
other exception keeps its traceback.
"""


class UserError(Exception):
    """Errors a user can fix: config fields and values, paths, data, checkpoints.

    The message names what is wrong (the field, path or value) and what to change.
    """
