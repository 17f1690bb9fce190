# The built-in demo: the small FCOS on generated shapes, 24 epochs per cycle.
_base_ = [
    './models/fcos_r18-small.py', './datasets/al_shapes.py',
    './schedules/small_24e.py', './default_runtime.py'
]

model = dict(bbox_head=dict(num_classes=len(_base_.classes)))
default_hooks = dict(logger=dict(type='LoggerHook', interval=5))
al_cfg = dict(adapter=dict(type='mmal.FCOSAdapter'))
