# Cascade R-CNN at demo size: mmdet's Cascade R-CNN R-50 FPN model config
# (mmdet::_base_/models/cascade-rcnn_r50_fpn.py: three RoI stages with rising
# IoU thresholds) on the demo's small trunk, as faster-rcnn_r18-small.py
# shrinks Faster R-CNN: a ResNet-18 at 1/4 width, a 32-channel FPN with 3
# levels, a 64-d two-fc head per stage and fewer proposals. Datasets set
# each stage's bbox_head num_classes.
_base_ = 'mmdet::_base_/models/cascade-rcnn_r50_fpn.py'

model = dict(
    backbone=dict(
        depth=18,
        base_channels=16,
        out_indices=(1, 2, 3),
        frozen_stages=-1,
        norm_eval=False,
        init_cfg=None),
    neck=dict(in_channels=[32, 64, 128], out_channels=32, num_outs=3),
    rpn_head=dict(
        in_channels=32,
        feat_channels=32,
        anchor_generator=dict(scales=[2, 4], strides=[8, 16, 32])),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=32, featmap_strides=[8, 16, 32]),
        bbox_head=[
            dict(head, in_channels=32, fc_out_channels=64)
            for head in _base_.model.roi_head.bbox_head
        ]),
    train_cfg=dict(rpn_proposal=dict(nms_pre=300, max_per_img=100)),
    test_cfg=dict(rpn=dict(nms_pre=300, max_per_img=100)))
