"""``_base_ = 'mmal::isal_fcos_voc.py'``: mmal's configs as bases of other
projects' configs, as ``mmdet::`` names mmdet's.

mmengine (0.10) resolves ``<package>::<path>`` in ``_base_`` only for the
packages of its own table (``MODULE2PACKAGE``), only for paths with a folder
(``mmdet::faster_rcnn/...``), through ``pkg_resources`` (which does not find
the package of an editable install made by pip's PEP 660 hook) and it marks
every object of such a base with ``_scope_='<package>'``. None of that fits
mmal: its configs lie in one folder, and they name their own scopes (the
default scope of the mmdet / mmpretrain runtime they include, ``mmal.`` in
front of mmal's types); ``_scope_='mmal'`` would make mmdet's ``FCOS`` be
looked up among mmal's models.

:func:`register_config_scope` (called when :mod:`mmal` is imported) teaches
:class:`mmengine.config.Config` the ``mmal::`` prefix: ``mmal::NAME`` is the
file ``NAME`` of mmal's config folder, read as if it had been named by its
path (no scope added). Other prefixes are left to mmengine. The folder is
``mmal/.mim/configs`` (setup.py copies the configs there for a wheel and
links them for an editable install, as mmdet does), else the ``configs``
folder next to the package in a source checkout.
"""
import os.path as osp
from typing import Optional, Tuple

from mmengine.config import Config

SCOPE = 'mmal'
_PACKAGE_DIR = osp.dirname(osp.dirname(osp.abspath(__file__)))


def config_dir() -> str:
    """The folder of mmal's configs (``mmal::`` names files under it)."""
    candidates = (osp.join(_PACKAGE_DIR, '.mim', 'configs'),
                  osp.join(osp.dirname(_PACKAGE_DIR), 'configs'))
    for folder in candidates:
        if osp.isdir(folder):
            return folder
    raise FileNotFoundError('mmal\'s configs are not installed: none of ' +
                            ', '.join(candidates) +
                            ' exists (reinstall mmal: pip install .)')


def config_path(name: str) -> str:
    """The file of ``mmal::<name>`` (``name`` relative to :func:`config_dir`,
    e.g. ``isal_fcos_voc.py`` or ``_base_/fcos_voc.py``)."""
    if osp.isabs(name) or '..' in name.replace('\\', '/').split('/'):
        raise ValueError(f'{SCOPE}::{name}: give a path inside mmal\'s '
                         'config folder, e.g. mmal::isal_fcos_voc.py')
    path = osp.join(config_dir(), name)
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'{SCOPE}::{name}: mmal has no config {name} (in {config_dir()})')
    return path


def _get_cfg_path(cfg_path: str, filename: str) -> Tuple[str, Optional[str]]:
    """:meth:`Config._get_cfg_path` with ``mmal::`` resolved here."""
    scope, sep, name = cfg_path.partition('::')
    if sep and scope == SCOPE:
        return config_path(name), None
    return _get_cfg_path.mmengine(cfg_path, filename)


# mmengine's own resolution, for the other prefixes and plain paths (taken
# from the wrapper when this module is imported again after registering)
_get_cfg_path.mmengine = getattr(Config._get_cfg_path, 'mmengine',
                                 Config._get_cfg_path)


def register_config_scope() -> None:
    """Let ``_base_`` name mmal's configs as ``mmal::NAME`` (idempotent)."""
    Config._get_cfg_path = staticmethod(_get_cfg_path)
