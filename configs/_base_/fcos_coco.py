# ISAL's COCO FCOS setting: mmdet's FCOS R-50 caffe FPN GN-head 1x, trained
# from scratch (ImageNet backbone) for 12 epochs in every cycle.
_base_ = [
    './models/fcos_r50-caffe_fpn_gn-head.py', './datasets/al_coco.py',
    './schedules/fcos_1x.py', './default_runtime.py'
]

al_cfg = dict(adapter=dict(type='mmal.FCOSAdapter'))
