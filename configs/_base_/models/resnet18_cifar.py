# The paper's CIFAR ResNet-18 (3x3 stride-1 stem, no max pool, global
# average pooling, Linear(512, C)): mmpretrain's resnet18_cifar model,
# trained from scratch. Datasets set head.num_classes.
_base_ = 'mmpretrain::_base_/models/resnet18_cifar.py'
