# ISAL on the built-in demo (generated shapes) with RTMDet
# (_base_/models/rtmdet_r18-small.py). al_cfg names the selector only: the
# adapter (chosen from the model's type), θ (the weights of the layers that
# produce the head's outputs) and LiSSA's scales (the scale check) come from
# the model, as for a config of your own.
_base_ = [
    './_base_/models/rtmdet_r18-small.py', './_base_/datasets/al_shapes.py',
    './_base_/schedules/small_24e.py', './_base_/default_runtime.py'
]

model = dict(bbox_head=dict(num_classes=len(_base_.classes)))
# as mmdet's RTMDet configs: the head shares its convs across levels
optim_wrapper = dict(paramwise_cfg=dict(bypass_duplicate=True))
default_hooks = dict(logger=dict(type='LoggerHook', interval=5))
al_cfg = dict(selector=dict(type='mmal.InfluenceSelector'))
