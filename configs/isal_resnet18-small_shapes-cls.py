# The built-in classification demo with ISAL (generated shapes; see
# _base_/resnet18-small_shapes-cls.py). The reference set is the demo's
# test split, as the official code uses CIFAR's; LiSSA's scale starts at
# the adapter's 10000 and the scale check (mode 'auto') raises it where the
# measured curvature needs more.
_base_ = './_base_/resnet18-small_shapes-cls.py'

al_cfg = dict(
    selector=dict(
        type='mmal.InfluenceSelector',
        solver=dict(type='mmal.LiSSA', depth=40, repeats=2)))
