# Random selection on FCOS, COCO at the paper's large scale (Table 6).
_base_ = './_base_/fcos_coco-large.py'

al_cfg = dict(selector=dict(type='mmal.RandomSelector'))
