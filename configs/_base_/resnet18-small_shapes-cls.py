# The built-in classification demo: the small CIFAR ResNet-18 (1/4 width)
# on generated shapes, 50 epochs per cycle. θ for influence is the last
# linear layer's weight (the adapter's default), so scoring uses the
# closed form of softmax cross-entropy (one feature pass per image).
_base_ = [
    './models/resnet18-small_cifar.py', './datasets/al_shapes_cls.py',
    './schedules/cls_small_50e.py', './cls_runtime.py'
]

model = dict(head=dict(num_classes=_base_.num_classes))
default_hooks = dict(logger=dict(type='LoggerHook', interval=5))
al_cfg = dict(adapter=dict(type='mmal.ImageClassifierAdapter'))
