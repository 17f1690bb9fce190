# Entropy sampling on ResNet-18, CIFAR100:
# the softmax entropy of the prediction, highest first.
_base_ = './_base_/resnet18_cifar100.py'

al_cfg = dict(selector=dict(type='mmal.EntropySelector'))
