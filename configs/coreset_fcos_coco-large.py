# Core-set (k-center greedy) on FCOS, COCO, large scale (the paper's Table 6:
# 10 % + 10 % per step); features:
# the FCOS head's cls_convs and reg_convs outputs, pooled per level,
# averaged over levels and concatenated (the paper's supplement).
_base_ = './_base_/fcos_coco-large.py'

al_cfg = dict(selector=dict(type='mmal.CoresetSelector'))
