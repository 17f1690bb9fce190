# BCCD blood cells (Pascal VOC layout, 3 classes, 640x480 images) at half
# resolution (320x240), for real-data runs on a CPU.
# Pool: train (205 images); reference set: val (87); evaluation: test (72).
# Two annotations of BCCD have zero-area boxes: they are dropped, with a
# warning that names them (annotation_policy='drop').
data_root = '../shared/datasets/bccd/'
classes = ('RBC', 'WBC', 'Platelets')
metainfo = dict(classes=classes)

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=(320, 240), keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(320, 240), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                   'scale_factor'))
]

train_dataloader = dict(
    batch_size=8,
    num_workers=2,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type='XMLDataset',
        data_root=data_root,
        metainfo=metainfo,
        ann_file='BCCD/ImageSets/Main/train.txt',
        data_prefix=dict(sub_data_root='BCCD/'),
        filter_cfg=dict(filter_empty_gt=True),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=8,
    num_workers=2,
    persistent_workers=False,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type='XMLDataset',
        data_root=data_root,
        metainfo=metainfo,
        ann_file='BCCD/ImageSets/Main/val.txt',
        data_prefix=dict(sub_data_root='BCCD/'),
        test_mode=True,
        pipeline=test_pipeline))
# Evaluation on the test split (val is ISAL's reference set).
test_dataloader = dict(
    val_dataloader,
    dataset=dict(
        val_dataloader['dataset'], ann_file='BCCD/ImageSets/Main/test.txt'))
val_evaluator = dict(type='VOCMetric', metric='mAP', eval_mode='area')
test_evaluator = val_evaluator

al_cfg = dict(
    initial_size=40,
    budget=40,
    num_cycles=3,  # 40 -> 80 -> 120 images
    seed=0,
    num_workers=2,
    annotation_policy='drop',
)
