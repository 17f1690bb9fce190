# CIFAR10 as the paper uses it: the 50k training images are the pool, the
# 10k test images the evaluation split and (ISAL's default reference set,
# as in the official code) the reference set of s_test.
# mmal.CIFAR10 reads the standard python batches under data_root
# (cifar-10-batches-py/), never downloads, md5-checks them and keys every
# image by a stable id ('train/00042'). Put the dataset there or pass
# --data-root.
data_root = 'data/cifar10/'
num_classes = 10
data_preprocessor = dict(
    num_classes=num_classes,
    mean=[125.307, 122.961, 113.8575],
    std=[51.5865, 50.847, 51.255],
    to_rgb=False)  # the batches hold RGB already

# random crop 32 with zero padding 4 and horizontal flip (official)
train_pipeline = [
    dict(type='RandomCrop', crop_size=32, padding=4),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [dict(type='PackInputs')]

train_dataloader = dict(
    batch_size=128,
    drop_last=True,
    num_workers=2,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type='mmal.CIFAR10',
        data_root=data_root,
        split='train',
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=128,
    num_workers=2,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type='mmal.CIFAR10',
        data_root=data_root,
        split='test',
        test_mode=True,
        pipeline=test_pipeline))
val_evaluator = dict(type='Accuracy', topk=(1, ))
test_dataloader = val_dataloader
test_evaluator = val_evaluator

# 1000 images at random, +1000 per step, 10 trainings (official)
al_cfg = dict(initial_size=1000, budget=1000, num_cycles=10, seed=0)
