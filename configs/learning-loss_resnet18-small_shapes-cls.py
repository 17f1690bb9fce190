# Learning loss (Yoo & Kweon, CVPR 2019) on the built-in classification demo
# (generated shapes, 50 epochs per cycle): the target model trained jointly
# with a loss-prediction module on the 4 ResNet stages; the features entering
# it are detached from epoch 30 (30/50 = the paper's 120/200) (counted from 0:
# the ranking loss trains the backbone in epochs 0-29 only); the highest
# predicted loss is labeled first.
# The demo pool (500 unlabeled images at first) is ranked whole: the paper's
# subset of 10,000 (al_cfg.unlabeled_subset) is larger than it.
_base_ = './_base_/resnet18-small_shapes-cls.py'

model = dict(
    _delete_=True,
    type='mmal.LearningLossModel',
    model=_base_.model,
    feature_modules=[f'backbone.layer{i}' for i in range(1, 5)])
custom_hooks = [dict(type='mmal.LearningLossStopGradHook', detach_epoch=30)]
al_cfg = dict(selector=dict(type='mmal.LearningLossSelector'))
