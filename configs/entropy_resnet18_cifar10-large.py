# Entropy sampling on ResNet-18, CIFAR10, large scale (5000 + 5000 per step):
# the softmax entropy of the prediction, highest first.
_base_ = './_base_/resnet18_cifar10-large.py'

al_cfg = dict(selector=dict(type='mmal.EntropySelector'))
