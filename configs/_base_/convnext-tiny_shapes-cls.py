# The classification demo (generated shapes) on a tiny ConvNeXt
# (_base_/models/convnext-tiny_p2-32px.py), 50 epochs per cycle: AdamW (lr
# 1e-3, weight decay 0.05) as mmpretrain trains ConvNeXt, instead of the
# ResNet's SGD, the same step at epoch 40. θ for influence is found from
# the model: the weight of the head's last linear layer (head.fc.weight,
# 4 x 128), with the closed form of softmax cross-entropy.
_base_ = [
    './models/convnext-tiny_p2-32px.py', './datasets/al_shapes_cls.py',
    './schedules/cls_small_50e.py', './cls_runtime.py'
]

model = dict(head=dict(num_classes=_base_.num_classes))
optim_wrapper = dict(
    optimizer=dict(_delete_=True, type='AdamW', lr=1e-3, weight_decay=0.05))
default_hooks = dict(logger=dict(type='LoggerHook', interval=5))
