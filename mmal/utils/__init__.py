from .checkpoint import trusted_checkpoint_loading
from .errors import (ConfigError, ConfigKeyError, DataError, MissingFileError,
                     UserError, WorkDirError)
from .fileio import atomic_write_json, atomic_write_text, read_json
from .progress import track_progress
from .setup_env import register_all_modules
from .text import counted

__all__ = [
    'trusted_checkpoint_loading', 'atomic_write_json', 'atomic_write_text',
    'read_json', 'track_progress', 'register_all_modules', 'UserError',
    'ConfigError', 'ConfigKeyError', 'DataError', 'MissingFileError',
    'WorkDirError', 'counted'
]
