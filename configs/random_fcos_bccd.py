# Random selection on BCCD (the baseline).
_base_ = './_base_/fcos_bccd.py'

al_cfg = dict(selector=dict(type='mmal.RandomSelector'))
