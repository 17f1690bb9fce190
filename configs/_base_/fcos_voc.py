# ISAL's VOC2012 FCOS setting: mmdet's FCOS R-50 caffe FPN GN-head 1x on
# VOC2012, 12 epochs from scratch (ImageNet backbone) every cycle.
_base_ = [
    './models/fcos_r50-caffe_fpn_gn-head.py', './datasets/al_voc.py',
    './schedules/fcos_1x.py', './default_runtime.py'
]

model = dict(bbox_head=dict(num_classes=20))
al_cfg = dict(adapter=dict(type='mmal.FCOSAdapter'))
