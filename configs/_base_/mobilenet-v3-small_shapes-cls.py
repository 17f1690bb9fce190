# The classification demo (generated shapes) on mmpretrain's
# MobileNetV3-Small for 32x32 images (576-d pooled features; head
# Linear(576, 1280) + HSwish + Linear(1280, C), a StackedLinearClsHead),
# trained from scratch, 50 epochs per cycle with the demo's schedule. θ for
# influence is found from the model: the weight of the head's last linear
# layer (head.layers.1.fc.weight, 4 x 1280), with the closed form of
# softmax cross-entropy.
_base_ = [
    'mmpretrain::_base_/models/mobilenet_v3/mobilenet_v3_small_cifar.py',
    './datasets/al_shapes_cls.py', './schedules/cls_small_50e.py',
    './cls_runtime.py'
]

model = dict(head=dict(num_classes=_base_.num_classes, topk=(1, )))
default_hooks = dict(logger=dict(type='LoggerHook', interval=5))
