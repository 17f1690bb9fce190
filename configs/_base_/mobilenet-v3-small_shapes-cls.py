# The classification demo (generated shapes) on mmpretrain's
# MobileNetV3-Small for 32x32 images
# (_base_/models/mobilenet-v3-small_cifar.py: 576-d pooled features; head
# Linear(576, 1280) + HSwish + Linear(1280, C), a StackedLinearClsHead),
# trained from scratch. θ for influence is found
# from the model: the weight of the head's last linear layer
# (head.layers.1.fc.weight, 4 x 1280), with the closed form of softmax
# cross-entropy.
#
# Schedule: AdamW (lr 1e-3, weight decay 0.05), 100 epochs per cycle, lr x
# 0.1 at epoch 80, instead of the ResNet's SGD (lr 0.1) for 50. With SGD lr
# 0.1 at batch 16 this network did not learn the demo (training loss at
# ln 4, chance accuracy: 24.5 % on 200 images; AdamW lr 5e-3: 24 %); AdamW
# 1e-3 did (46 % on 200 images after 100 epochs, 33 % after 50). AdamW's
# step does not depend on the gradients' scale, which in this deep, narrow
# network with squeeze-excitation gates differs by orders of magnitude
# between layers, and lr 1e-3 with decoupled weight decay is the usual
# from-scratch setting for small batches, so nothing in it is tied to this
# data. The epochs are doubled because a step costs about half of the
# demo ResNet-18's: a cycle takes about as long as the ResNet demo's.
_base_ = [
    './models/mobilenet-v3-small_cifar.py', './datasets/al_shapes_cls.py',
    './schedules/cls_small_50e.py', './cls_runtime.py'
]

model = dict(head=dict(num_classes=_base_.num_classes))
max_epochs = 100
optim_wrapper = dict(
    optimizer=dict(_delete_=True, type='AdamW', lr=1e-3, weight_decay=0.05))
param_scheduler = dict(milestones=[80])
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
default_hooks = dict(logger=dict(type='LoggerHook', interval=5))
