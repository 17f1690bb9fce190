# A tiny Vision Transformer for 32x32 images, trained from scratch:
# mmpretrain's ViT-Base config (VisionTransformer, class token,
# VisionTransformerClsHead) with 64-d tokens, 4 layers of 4 heads, 4x4
# patches (64 tokens) and plain cross-entropy instead of label smoothing
# (the closed form of ISAL's last-layer influence then applies). Datasets
# set head.num_classes.
_base_ = 'mmpretrain::_base_/models/vit-base-p16.py'

model = dict(
    backbone=dict(
        arch=dict(
            _delete_=True,
            embed_dims=64,
            num_layers=4,
            num_heads=4,
            feedforward_channels=128),
        img_size=32,
        patch_size=4),
    head=dict(
        in_channels=64,
        loss=dict(_delete_=True, type='CrossEntropyLoss', loss_weight=1.0)))
