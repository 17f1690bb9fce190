# ISAL on mmpretrain's own ResNet-18 ImageNet config, as it is (ImageNet under
# data/imagenet/, its schedule and pipeline): al_cfg names the selector and the
# run's sizes, nothing else. The adapter comes from the model's type, θ by rule
# (the weights of the head's last linear layer), LiSSA's scale from the scale
# check. Sizes: 5 % of ImageNet-1k's train split, +5 % a cycle (mmal's choice:
# the paper has no ImageNet setting).
_base_ = 'mmpretrain::resnet/resnet18_8xb32_in1k.py'

al_cfg = dict(
    selector=dict(type='mmal.InfluenceSelector'),
    initial_size=64000,
    budget=64000,
    num_cycles=6)
