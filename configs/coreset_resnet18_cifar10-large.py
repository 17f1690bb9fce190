# Core-set (k-center greedy) on ResNet-18, CIFAR10, large scale (5000 + 5000
# per step); features:
# the pooled features before the fc.
_base_ = './_base_/resnet18_cifar10-large.py'

al_cfg = dict(selector=dict(type='mmal.CoresetSelector'))
