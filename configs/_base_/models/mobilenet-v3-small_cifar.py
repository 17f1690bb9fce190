# mmpretrain's MobileNetV3-Small for CIFAR-sized (32x32) images, trained
# from scratch: 576-d pooled features, head Linear(576, 1280) + HSwish +
# Linear(1280, C) (a StackedLinearClsHead), top-1 accuracy only (the demo
# has 4 classes). Datasets set head.num_classes.
_base_ = 'mmpretrain::_base_/models/mobilenet_v3/mobilenet_v3_small_cifar.py'

model = dict(head=dict(topk=(1, )))
