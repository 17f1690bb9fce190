# Entropy sampling on ResNet-18, CIFAR10:
# the softmax entropy of the prediction, highest first.
_base_ = './_base_/resnet18_cifar10.py'

al_cfg = dict(selector=dict(type='mmal.EntropySelector'))
