# The small FCOS on BCCD (320x240, 12 epochs), for real-data runs on a CPU.
_base_ = [
    './models/fcos_r18-small.py', './datasets/al_bccd.py',
    './schedules/small_12e.py', './default_runtime.py'
]

model = dict(bbox_head=dict(num_classes=len(_base_.classes)))
default_hooks = dict(logger=dict(type='LoggerHook', interval=5))
al_cfg = dict(adapter=dict(type='mmal.FCOSAdapter'))
