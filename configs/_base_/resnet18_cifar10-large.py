# The paper's large-scale CIFAR10 setting: 5000 images at random, +5000 per
# step, 10 trainings (up to the whole 50k pool); otherwise
# ./resnet18_cifar10.py.
_base_ = './resnet18_cifar10.py'

al_cfg = dict(initial_size=5000, budget=5000, num_cycles=10)
