"""Small config transformations used by the CLI and the driver."""
from typing import Any, Callable

from mmengine.config import Config

from .errors import ConfigKeyError


def map_strings(node: Any, fn: Callable[[str], str]) -> Any:
    """A copy of ``node`` with ``fn`` applied to every string in it.

    Args:
        node: A string, or dicts / lists / tuples nesting them (a config
            section); other values are kept as they are.
        fn (Callable[[str], str]): The transformation of one string.
    """
    if isinstance(node, str):
        return fn(node)
    if isinstance(node, dict):
        return {k: map_strings(v, fn) for k, v in node.items()}
    if isinstance(node, (list, tuple)):
        return type(node)(map_strings(v, fn) for v in node)
    return node


def _replace_prefix(node: Any, old: str, new: str) -> Any:
    return map_strings(
        node, lambda s: new + s[len(old):] if s.startswith(old) else s)


def override_data_root(cfg: Config, new_root: str) -> Config:
    """Point every path under the config's ``data_root`` at ``new_root``.

    mmengine resolves ``data_root`` into each dataset and evaluator path when
    the file is loaded, so ``--cfg-options data_root=...`` alone changes
    nothing; this rewrites every string that starts with the old root.

    Raises:
        ConfigKeyError: the config defines no ``data_root`` (a
            ``KeyError``).
    """
    old = cfg.get('data_root')
    if not old:
        raise ConfigKeyError(
            f'{cfg.filename} defines no data_root to override')
    if not new_root.endswith('/'):
        new_root += '/'
    if not old.endswith('/'):
        old += '/'
    for key in list(cfg.keys()):
        if key == 'data_root':
            continue
        value = cfg[key]
        if hasattr(value, 'to_dict'):
            value = value.to_dict()
        cfg[key] = _replace_prefix(value, old, new_root)
    cfg.data_root = new_root
    return cfg
