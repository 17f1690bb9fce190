# Learning loss (Yoo & Kweon, CVPR 2019) on the built-in detection demo
# (generated shapes): the target model trained jointly with a loss-prediction
# module on its 3 FPN levels (the neck's outputs), which never back-propagates
# into the backbone and neck (the ISAL paper's supplement: detached from epoch
# 0); the highest predicted loss is labeled first.
_base_ = './_base_/fcos_shapes.py'

model = dict(
    _delete_=True,
    type='mmal.LearningLossModel',
    model=_base_.model,
    feature_modules=['neck'])
custom_hooks = [dict(type='mmal.LearningLossStopGradHook', detach_epoch=0)]
al_cfg = dict(selector=dict(type='mmal.LearningLossSelector'))
