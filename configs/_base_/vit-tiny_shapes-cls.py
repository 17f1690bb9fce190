# The classification demo (generated shapes) on a tiny ViT, 50 epochs per
# cycle: AdamW (lr 1e-3, weight decay 0.05, gradients clipped at norm 1)
# instead of the CNNs' SGD, the same step at epoch 40. θ for influence is
# found from the model: the weight of the head's last linear layer
# (head.layers.head.weight, 4 x 64), with the closed form of softmax
# cross-entropy.
_base_ = [
    './models/vit-tiny_p4-32px.py', './datasets/al_shapes_cls.py',
    './schedules/cls_small_50e.py', './cls_runtime.py'
]

model = dict(head=dict(num_classes=_base_.num_classes))
optim_wrapper = dict(
    optimizer=dict(_delete_=True, type='AdamW', lr=1e-3, weight_decay=0.05),
    clip_grad=dict(max_norm=1.0))
default_hooks = dict(logger=dict(type='LoggerHook', interval=5))
