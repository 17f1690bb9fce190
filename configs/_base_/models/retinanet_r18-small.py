# RetinaNet at demo size: mmdet's RetinaNet R-50 FPN model config
# (mmdet::_base_/models/retinanet_r50_fpn.py: head, anchors, losses and
# training settings as they are) on the demo's small trunk: a ResNet-18 at
# 1/4 width (trained from scratch, no download), a 32-channel FPN with 3
# levels (strides 8-32), the head's width scaled to it. Datasets set
# bbox_head.num_classes.
_base_ = 'mmdet::_base_/models/retinanet_r50_fpn.py'

model = dict(
    backbone=dict(
        depth=18,
        base_channels=16,
        out_indices=(1, 2, 3),
        frozen_stages=-1,
        norm_eval=False,
        init_cfg=None),
    neck=dict(
        in_channels=[32, 64, 128],
        out_channels=32,
        start_level=0,
        add_extra_convs='on_output',
        num_outs=3),
    bbox_head=dict(
        in_channels=32,
        stacked_convs=2,
        feat_channels=32,
        anchor_generator=dict(strides=[8, 16, 32])),
    test_cfg=dict(nms_pre=200))
