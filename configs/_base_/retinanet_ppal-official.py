# PPAL's official training (ChenhongyiYang/PPAL, al_train/retinanet_26e.py):
# mmdet's RetinaNet R-50 FPN (ImageNet backbone), retrained from it every
# cycle for 26 epochs, SGD momentum 0.9, weight decay 1e-4, lr x 0.1 at
# epoch 20, linear warmup over 500 iterations from 0.001 x lr, gradient
# clipping at 35, a total batch of 8 (8 GPUs x 1 image; on fewer GPUs add
# --cfg-options auto_scale_lr.enable=True). No validation during training.
# Datasets set the classes, the lr and the focal loss's gamma.
_base_ = ['mmdet::_base_/models/retinanet_r50_fpn.py', './default_runtime.py']

train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=26, val_interval=26)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
param_scheduler = [
    dict(
        type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=500),
    dict(
        type='MultiStepLR',
        begin=0,
        end=26,
        by_epoch=True,
        milestones=[20],
        gamma=0.1)
]
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=0.0001),
    clip_grad=dict(max_norm=35, norm_type=2))
auto_scale_lr = dict(enable=False, base_batch_size=8)
custom_hooks = [dict(type='mmal.ClassQualityHook')]
