# The small models' schedule: 12 epochs as in the paper, SGD lr 0.02 with a
# 20-iteration linear warmup, steps at epochs 9 and 11, validation only after
# the last epoch. (log_processor by_epoch=True comes from default_runtime;
# defining it here too would be a key clash between the two bases.)
max_epochs = 12
train_cfg = dict(
    type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=max_epochs)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.02, momentum=0.9, weight_decay=1e-4),
    paramwise_cfg=dict(bias_lr_mult=2., bias_decay_mult=0.),
    clip_grad=dict(max_norm=35, norm_type=2))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=20),
    dict(
        type='MultiStepLR',
        by_epoch=True,
        milestones=[9, 11],
        gamma=0.1,
        begin=0,
        end=max_epochs)
]
