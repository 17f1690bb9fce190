# ISAL on ResNet-18, cifar10-large (see _base_/resnet18_cifar10-large.py). The
# selector's
# settings are the official code's: the test split is the reference set
# (true labels; reference='labeled' avoids touching the test split), pseudo
# label = argmax (every unlabeled image is scored), s_test by LiSSA with
# damp 0.01 and the adapter's scale 10000, 4 chains of depth 250. The scale
# check (mode 'auto') keeps 10000 unless a block's measured top Hessian
# eigenvalue needs more.
_base_ = './_base_/resnet18_cifar10-large.py'

al_cfg = dict(
    selector=dict(
        type='mmal.InfluenceSelector',
        reference='val',
        solver=dict(type='mmal.LiSSA', damp=0.01, depth=250, repeats=4)))
