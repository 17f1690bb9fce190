# A small CIFAR-style ResNet-18 for CPU-sized runs: the paper's model at
# 1/4 width (16-channel stem and first stage, 128-d features), trained from
# scratch. Datasets set head.num_classes.
_base_ = './resnet18_cifar.py'

model = dict(
    backbone=dict(stem_channels=16, base_channels=16),
    head=dict(in_channels=128))
