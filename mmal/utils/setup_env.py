"""Registration of mmal's modules (and the OpenMMLab ones it builds on)."""
from mmengine.registry import init_default_scope

from mmal.registry import MMAL_REGISTRIES


def register_all_modules(init_default_scope_to: str = '') -> None:
    """Import every mmal module that registers something.

    Also registers mmdet's and mmpretrain's modules (those installed),
    since mmal's configs build their datasets, models and metrics.

    Args:
        init_default_scope_to (str): When set (e.g. ``'mmdet'``), also make
            it the default scope.
    """
    # each registry imports the subpackages named in its ``locations``
    # (by name: the utilities import nothing above them)
    for registry in MMAL_REGISTRIES:
        registry.import_from_location()
    try:
        from mmdet.utils import register_all_modules as register_mmdet
    except ImportError:  # a classification-only install
        pass
    else:
        register_mmdet(init_default_scope=False)
    try:
        from mmpretrain.utils import \
            register_all_modules as register_mmpretrain
    except ImportError:  # a detection-only install
        pass
    else:
        register_mmpretrain(init_default_scope=False)
    if init_default_scope_to:
        init_default_scope(init_default_scope_to)
