# A small Faster R-CNN for CPU-sized runs: mmdet's Faster R-CNN R-50 FPN with
# a ResNet-18 at 1/4 width (trained from scratch, no download), a 32-channel
# FPN with 3 levels (strides 8-32), a 64-d two-fc RoI head and fewer
# proposals. Datasets set roi_head.bbox_head.num_classes.
_base_ = 'mmdet::_base_/models/faster-rcnn_r50_fpn.py'

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
        bbox_head=dict(in_channels=32, fc_out_channels=64)),
    train_cfg=dict(
        rpn_proposal=dict(nms_pre=300, max_per_img=100),
        rcnn=dict(sampler=dict(num=128))),
    test_cfg=dict(rpn=dict(nms_pre=300, max_per_img=100)))
