"""Version of mmal and the ranges of its dependencies it works with
(requirements/runtime.txt; the tested set: requirements/constraints.txt)."""
__version__ = '0.1.0'

MMENGINE_RANGE = ('0.10.0', '1.0.0')
MMDET_RANGE = ('3.2.0', '3.4.0')
MMCV_RANGE = ('2.0.0', '2.2.0')
MMPRETRAIN_RANGE = ('1.1.0', '1.3.0')
