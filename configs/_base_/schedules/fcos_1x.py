# FCOS's 1x schedule, as in mmdet's fcos_r50-caffe_fpn_gn-head_1x_coco.py:
# 12 epochs, SGD lr 0.01 for a total batch of 16, steps at epochs 8 and 11,
# constant warmup at lr/3 for 500 iterations, doubled bias lr without decay,
# gradient clipping.
_base_ = 'mmdet::_base_/schedules/schedule_1x.py'

param_scheduler = [
    dict(type='ConstantLR', factor=1.0 / 3, by_epoch=False, begin=0, end=500),
    dict(
        type='MultiStepLR',
        begin=0,
        end=12,
        by_epoch=True,
        milestones=[8, 11],
        gamma=0.1)
]
optim_wrapper = dict(
    optimizer=dict(lr=0.01),
    paramwise_cfg=dict(bias_lr_mult=2., bias_decay_mult=0.),
    clip_grad=dict(max_norm=35, norm_type=2))
