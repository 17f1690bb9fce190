# Learning loss (Yoo & Kweon, CVPR 2019) on CIFAR10 (200 epochs per cycle): the
# target model trained jointly with a loss-prediction module on the 4 ResNet
# stages; the features entering it are detached from epoch 120 (counted from 0:
# the ranking loss trains the backbone in epochs 0-119 only); the highest
# predicted loss is labeled first.
# Each selection ranks a seeded random subset of 10,000 unlabeled images, as
# the paper does.
_base_ = './_base_/resnet18_cifar10.py'

model = dict(
    _delete_=True,
    type='mmal.LearningLossModel',
    model=_base_.model,
    feature_modules=[f'backbone.layer{i}' for i in range(1, 5)])
custom_hooks = [dict(type='mmal.LearningLossStopGradHook', detach_epoch=120)]
al_cfg = dict(
    unlabeled_subset=10000, selector=dict(type='mmal.LearningLossSelector'))
