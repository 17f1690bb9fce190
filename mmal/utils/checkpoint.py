"""Loading mmengine checkpoints with torch >= 2.6.

torch >= 2.6 loads with ``weights_only=True`` by default, and mmengine 0.10
does not pass ``weights_only=False``: resuming from mmengine's own
checkpoints (which pickle ``HistoryBuffer``, numpy scalars, ...) fails with
"Unsupported global". mmal only loads checkpoints it wrote itself or that
the config names (``load_from``, pretrained weights), so it allows full
unpickling for the duration of a cycle's work, and only then.
"""
import contextlib
import os
from typing import Iterator

_ENV = 'TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD'


@contextlib.contextmanager
def trusted_checkpoint_loading() -> Iterator[None]:
    """Let ``torch.load`` unpickle mmengine checkpoints inside the block."""
    old = os.environ.get(_ENV)
    os.environ[_ENV] = '1'
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(_ENV, None)
        else:
            os.environ[_ENV] = old
