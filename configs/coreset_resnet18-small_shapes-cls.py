# Core-set (k-center greedy) on the demo ResNet-18, the built-in classification
# demo (generated shapes); features:
# the pooled features before the fc.
_base_ = './_base_/resnet18-small_shapes-cls.py'

al_cfg = dict(selector=dict(type='mmal.CoresetSelector'))
