# YOLOX at demo size: the demo's small trunk (fcos_r18-small.py) with the
# head and training settings of mmdet's YOLOX
# (mmdet::yolox/yolox_tiny_8xb8-300e_coco.py: decoupled per-level outputs with
# objectness, SimOTA assignment), the head's width scaled to the neck's 32
# channels. Datasets set num_classes.
_base_ = './fcos_r18-small.py'

model = dict(
    type='YOLOX',
    bbox_head=dict(
        _delete_=True,
        type='YOLOXHead',
        num_classes=80,
        in_channels=32,
        feat_channels=32,
        stacked_convs=2,
        strides=(8, 16, 32),
        use_depthwise=False,
        norm_cfg=dict(type='BN', momentum=0.03, eps=0.001),
        act_cfg=dict(type='Swish'),
        loss_cls=dict(
            type='CrossEntropyLoss',
            use_sigmoid=True,
            reduction='sum',
            loss_weight=1.0),
        loss_bbox=dict(
            type='IoULoss',
            mode='square',
            eps=1e-16,
            reduction='sum',
            loss_weight=5.0),
        loss_obj=dict(
            type='CrossEntropyLoss',
            use_sigmoid=True,
            reduction='sum',
            loss_weight=1.0),
        loss_l1=dict(type='L1Loss', reduction='sum', loss_weight=1.0)),
    train_cfg=dict(assigner=dict(type='SimOTAAssigner', center_radius=2.5)),
    test_cfg=dict(score_thr=0.01, nms=dict(type='nms', iou_threshold=0.65)))
