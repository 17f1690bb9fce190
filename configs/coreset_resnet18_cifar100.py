# Core-set (k-center greedy) on ResNet-18, CIFAR100; features:
# the pooled features before the fc.
_base_ = './_base_/resnet18_cifar100.py'

al_cfg = dict(selector=dict(type='mmal.CoresetSelector'))
