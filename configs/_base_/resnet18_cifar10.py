# ResNet-18 on CIFAR10 with the official ISAL code's settings: from scratch
# every cycle, 200 epochs, batch 128 (drop_last). θ for influence is every
# conv and linear weight (no BN, no bias: 11.2 M entries), the model in
# eval mode, LiSSA scale 10000.
_base_ = [
    './models/resnet18_cifar.py', './datasets/al_cifar10.py',
    './schedules/cifar_200e.py', './cls_runtime.py'
]

model = dict(head=dict(num_classes=_base_.num_classes))
al_cfg = dict(
    adapter=dict(
        type='mmal.ImageClassifierAdapter',
        param_types=('Conv2d', 'Linear'),
        lissa_scale=(10000.0, )))
