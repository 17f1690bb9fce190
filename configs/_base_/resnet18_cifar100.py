# ResNet-18 on CIFAR100, the settings of ./resnet18_cifar10.py.
_base_ = './resnet18_cifar10.py'

model = dict(head=dict(num_classes=100))
data_root = 'data/cifar100/'
data_preprocessor = dict(
    num_classes=100,
    mean=[129.304, 124.070, 112.434],
    std=[68.170, 65.392, 70.418])
train_dataloader = dict(
    dataset=dict(type='mmal.CIFAR100', data_root=data_root))
val_dataloader = dict(dataset=dict(type='mmal.CIFAR100', data_root=data_root))
test_dataloader = val_dataloader
