# Random selection on FCOS, VOC: the baseline of ISAL's figures.
_base_ = './_base_/fcos_voc.py'

al_cfg = dict(selector=dict(type='mmal.RandomSelector'))
