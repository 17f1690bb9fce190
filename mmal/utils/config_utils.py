"""Small config transformations used by the CLI and the driver."""
from typing import Any

from mmengine.config import Config


def _replace_prefix(node: Any, old: str, new: str) -> Any:
    if isinstance(node, str):
        return new + node[len(old):] if node.startswith(old) else node
    if isinstance(node, dict):
        return {k: _replace_prefix(v, old, new) for k, v in node.items()}
    if isinstance(node, (list, tuple)):
        return type(node)(_replace_prefix(v, old, new) for v in node)
    return node


def override_data_root(cfg: Config, new_root: str) -> Config:
    """Point every path under the config's ``data_root`` at ``new_root``.

    mmengine resolves ``data_root`` into each dataset and evaluator path when
    the file is loaded, so ``--cfg-options data_root=...`` alone changes
    nothing; this rewrites every string that starts with the old root.

    Raises:
        KeyError: the config defines no ``data_root``.
    """
    old = cfg.get('data_root')
    if not old:
        raise KeyError(f'{cfg.filename} defines no data_root to override')
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
