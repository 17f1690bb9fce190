# The built-in classification demo with random selection.
_base_ = './_base_/resnet18-small_shapes-cls.py'

al_cfg = dict(selector=dict(type='mmal.RandomSelector'))
