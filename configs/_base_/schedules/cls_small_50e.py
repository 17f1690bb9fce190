# The small classification demo's schedule: the paper's recipe (SGD lr 0.1,
# momentum 0.9, weight decay 5e-4, lr x 0.1 at 80 % of training) shortened
# to 50 epochs of a few dozen images on two CPU cores.
_base_ = './cifar_200e.py'

max_epochs = 50
param_scheduler = dict(milestones=[40])
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
