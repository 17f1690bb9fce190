"""mmal: active learning (ISAL and baselines) for OpenMMLab detectors and
classifiers."""
from mmengine.utils import digit_version

from .version import (MMCV_RANGE, MMDET_RANGE, MMENGINE_RANGE,
                      MMPRETRAIN_RANGE, __version__)


def _check(name: str, version: str, bounds: tuple) -> None:
    low, high = bounds
    if not digit_version(low) <= digit_version(version) < digit_version(high):
        raise ImportError(
            f'mmal {__version__} needs {name}>={low},<{high}, but {name} '
            f'{version} is installed. Reinstall with `bash tools/install.sh`.')


def _check_versions() -> None:
    import mmcv
    import mmengine
    _check('mmengine', mmengine.__version__, MMENGINE_RANGE)
    _check('mmcv', mmcv.__version__, MMCV_RANGE)
    try:
        import mmdet
    except ImportError:  # classification-only installs
        pass
    else:
        _check('mmdet', mmdet.__version__, MMDET_RANGE)
    try:
        import mmpretrain
    except ImportError:  # detection-only installs
        pass
    else:
        _check('mmpretrain', mmpretrain.__version__, MMPRETRAIN_RANGE)


_check_versions()

# `_base_ = 'mmal::<config>'` in the configs read after `import mmal`
from .utils.config_scope import register_config_scope  # noqa: E402

register_config_scope()

__all__ = ['__version__']
