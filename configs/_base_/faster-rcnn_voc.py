# Faster R-CNN R-50 FPN on VOC2012 with the paper's Faster R-CNN schedule and
# the same data and sizes as fcos_voc.py (no target metric).
_base_ = [
    './models/faster-rcnn_r50_fpn.py', './datasets/al_voc.py',
    './schedules/faster-rcnn_1x_bs8.py', './default_runtime.py'
]

model = dict(roi_head=dict(bbox_head=dict(num_classes=20)))
al_cfg = dict(adapter=dict(type='mmal.FasterRCNNAdapter'))
