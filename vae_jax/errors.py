"""The one error type of ours that a user can fix; anything else raised is a bug.

The CLI (experiments/run.py) ends a `UserError` in one line and exit code 2; every
other exception keeps its traceback.
"""


class UserError(Exception):
    """Errors a user can fix: config fields and values, paths, data, checkpoints.

    The message names what is wrong (the field, path or value) and what to change.
    """


class ConfigError(UserError, ValueError):
    """A config value that cannot work; the message says which field and what is allowed."""


class DataError(UserError, ValueError):
    """A data file that cannot be read, or that does not hold what the config expects."""


class DatasetUnavailableError(UserError, RuntimeError):
    """A dataset could not be found locally nor prepared by TFDS; the message says where it
    looked and how to get it."""
