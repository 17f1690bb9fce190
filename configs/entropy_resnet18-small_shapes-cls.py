# Entropy sampling on the demo ResNet-18, the built-in classification demo
# (generated shapes):
# the softmax entropy of the prediction, highest first.
_base_ = './_base_/resnet18-small_shapes-cls.py'

al_cfg = dict(selector=dict(type='mmal.EntropySelector'))
