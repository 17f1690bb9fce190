"""Errors caused by the user's config, data, command line or work dir.

``tools/al_train.py`` prints a :class:`UserError` as one message without a
traceback (``al_train.py: error: <message>``, exit status 2, like argparse's
usage errors): the message names the file, key or id to fix. Every other
exception is a failure of mmal (or of the stack below it) and keeps its
traceback.

Each class also derives from the built-in type that the same check raised
before, so ``except ValueError`` / ``except KeyError`` /
``except FileNotFoundError`` still catch it.
"""


class UserError(Exception):
    """Base class: the input is wrong, not mmal.

    ``str()`` is the message itself (``KeyError`` would quote it).
    """

    def __str__(self) -> str:
        return BaseException.__str__(self)


class ConfigError(UserError, ValueError):
    """A missing or out-of-range config value."""


class ConfigKeyError(UserError, KeyError):
    """A missing or unknown config key or registered type."""


class DataError(UserError, ValueError):
    """Bad data: annotation problems, clashing sample ids."""


class MissingFileError(UserError, FileNotFoundError):
    """A file or folder the command needs does not exist."""


class WorkDirError(UserError, ValueError):
    """The work dir holds another experiment (pool, settings) than asked."""
