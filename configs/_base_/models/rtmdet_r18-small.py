# RTMDet at demo size: the demo's small trunk (fcos_r18-small.py) with the
# head and training settings of mmdet's RTMDet
# (mmdet::rtmdet/rtmdet_tiny_8xb32-300e_coco.py: a separate-BN head with
# per-level output convs, dynamic soft-label assignment), the head's width
# scaled to the neck's 32 channels. Datasets set num_classes.
_base_ = './fcos_r18-small.py'

model = dict(
    type='RTMDet',
    bbox_head=dict(
        _delete_=True,
        type='RTMDetSepBNHead',
        num_classes=80,
        in_channels=32,
        stacked_convs=2,
        feat_channels=32,
        anchor_generator=dict(
            type='MlvlPointGenerator', offset=0, strides=[8, 16, 32]),
        bbox_coder=dict(type='DistancePointBBoxCoder'),
        loss_cls=dict(
            type='QualityFocalLoss',
            use_sigmoid=True,
            beta=2.0,
            loss_weight=1.0),
        loss_bbox=dict(type='GIoULoss', loss_weight=2.0),
        with_objectness=False,
        exp_on_reg=False,
        share_conv=True,
        pred_kernel_size=1,
        norm_cfg=dict(type='BN'),
        act_cfg=dict(type='SiLU', inplace=True)),
    train_cfg=dict(
        assigner=dict(type='DynamicSoftLabelAssigner', topk=13),
        allowed_border=-1,
        pos_weight=-1,
        debug=False))
