# Random selection on ResNet-18, cifar10-large: the baseline of ISAL's tables.
_base_ = './_base_/resnet18_cifar10-large.py'

al_cfg = dict(selector=dict(type='mmal.RandomSelector'))
