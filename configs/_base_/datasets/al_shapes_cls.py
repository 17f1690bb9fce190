# The built-in classification demo data: one coloured shape per 32x32 image
# (circle, cross, square, triangle; the colour says nothing about the
# class), folder per class, that mmal generates itself in <work_dir>/data
# (no download), sized for a few active-learning cycles in minutes on two
# CPU cores.

# Generated on first use by the driver; every path under data_root is then
# pointed at <work_dir>/data.
demo_data = dict(num_train=600, num_test=200, img_size=32, seed=0)
data_root = 'data/mmal_shapes_cls/'
classes = ('circle', 'cross', 'square', 'triangle')
num_classes = len(classes)
data_preprocessor = dict(
    num_classes=num_classes,
    mean=[127.5, 127.5, 127.5],
    std=[64.0, 64.0, 64.0],
    to_rgb=True)  # the images are files, loaded as BGR

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomCrop', crop_size=32, padding=4),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='PackInputs'),
]
train_dataloader = dict(
    batch_size=16,
    drop_last=True,
    num_workers=2,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type='mmal.CustomDataset',
        data_root=data_root,
        data_prefix='train',
        with_label=True,
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=64,
    num_workers=2,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type='mmal.CustomDataset',
        data_root=data_root,
        data_prefix='test',
        with_label=True,
        test_mode=True,
        pipeline=test_pipeline))
val_evaluator = dict(type='Accuracy', topk=(1, ))
test_dataloader = val_dataloader
test_evaluator = val_evaluator

# 100 images at random, +100 per cycle: with fewer, this small model stays
# near chance (4 classes), with all 600 it reaches about 96 % top-1.
al_cfg = dict(
    initial_size=100,
    budget=100,
    num_cycles=3,
    seed=0,
    num_workers=0,
)
