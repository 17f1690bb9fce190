# Random selection on FCOS, COCO: the baseline of ISAL's figures.
_base_ = './_base_/fcos_coco.py'

al_cfg = dict(selector=dict(type='mmal.RandomSelector'))
