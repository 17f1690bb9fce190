# Core-set (k-center greedy) on FCOS, the built-in detection demo (generated
# shapes); features:
# the FCOS head's cls_convs and reg_convs outputs, pooled per level,
# averaged over levels and concatenated (the paper's supplement).
_base_ = './_base_/fcos_shapes.py'

al_cfg = dict(selector=dict(type='mmal.CoresetSelector'))
