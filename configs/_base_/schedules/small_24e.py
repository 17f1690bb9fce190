# small_12e doubled: tiny from-scratch models need more than 12 epochs on a
# few dozen images. Steps at epochs 18 and 22.
_base_ = './small_12e.py'

max_epochs = 24
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
param_scheduler = [
    _base_.param_scheduler[0],  # the same warmup
    dict(
        type='MultiStepLR',
        by_epoch=True,
        milestones=[18, 22],
        gamma=0.1,
        begin=0,
        end=max_epochs)
]
