# ISAL's COCO Faster R-CNN setting: mmdet's Faster R-CNN R-50 FPN with the
# paper's schedule (12 epochs, lr 0.01 for batch 8), retrained from the
# ImageNet backbone in every cycle. Paper protocol: 5000 initial images,
# +1000 per cycle, until the model reaches 22 +- 0.3 AP.
_base_ = [
    './models/faster-rcnn_r50_fpn.py', './datasets/al_coco.py',
    './schedules/faster-rcnn_1x_bs8.py', './default_runtime.py'
]

al_cfg = dict(
    num_cycles=20,  # a cap: the target below normally stops the run earlier
    target_metric=0.22,  # coco/bbox_mAP is a fraction: 22 AP
    target_tolerance=0.003,
    adapter=dict(type='mmal.FasterRCNNAdapter'))
