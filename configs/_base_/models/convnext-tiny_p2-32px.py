# A tiny ConvNeXt for 32x32 images, trained from scratch: mmpretrain's
# ConvNeXt config (ConvNeXt backbone that pools before its final norm, no
# neck, LinearClsHead) with a demo-size arch (2 blocks per stage, 16-128
# channels; not mmpretrain's 'tiny' arch), a 2x2 stem (16x16 maps, 2x2 at
# the last stage), no stochastic depth, no Mixup / CutMix and plain
# cross-entropy instead of label smoothing (the closed form of ISAL's
# last-layer influence then applies). Datasets set head.num_classes.
_base_ = 'mmpretrain::_base_/models/convnext/convnext-tiny.py'

model = dict(
    backbone=dict(
        arch=dict(
            _delete_=True, depths=[2, 2, 2, 2], channels=[16, 32, 64, 128]),
        stem_patch_size=2,
        drop_path_rate=0.0,
        gap_before_final_norm=True),
    head=dict(
        in_channels=128,
        loss=dict(_delete_=True, type='CrossEntropyLoss', loss_weight=1.0)),
    train_cfg=None)
