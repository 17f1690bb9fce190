# The built-in demo with the small Faster R-CNN, 24 epochs per cycle.
_base_ = [
    './models/faster-rcnn_r18-small.py', './datasets/al_shapes.py',
    './schedules/small_24e.py', './default_runtime.py'
]

model = dict(roi_head=dict(bbox_head=dict(num_classes=len(_base_.classes))))
default_hooks = dict(logger=dict(type='LoggerHook', interval=5))
al_cfg = dict(adapter=dict(type='mmal.FasterRCNNAdapter'))
