# The built-in demo with random selection (the baseline).
_base_ = './_base_/fcos_shapes.py'

al_cfg = dict(selector=dict(type='mmal.RandomSelector'))
