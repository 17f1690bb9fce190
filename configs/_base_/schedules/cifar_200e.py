# The paper's CIFAR schedule (official ISAL code; not mmpretrain's CIFAR
# schedule, which uses weight decay 1e-4 and steps at 100/150): 200 epochs,
# SGD lr 0.1, momentum 0.9, weight decay 5e-4 on every parameter, lr x 0.1 at
# epoch 160. The accuracy reported is the last epoch's (no validation
# during training).
max_epochs = 200
optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=5e-4))
param_scheduler = dict(
    type='MultiStepLR', by_epoch=True, milestones=[160], gamma=0.1)
train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=max_epochs)
val_cfg = dict()
test_cfg = dict()
