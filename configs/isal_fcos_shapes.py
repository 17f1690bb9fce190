# The built-in demo with ISAL (generated shapes; see _base_/fcos_shapes.py).
# The tiny head is far from FCOS R-50, so LiSSA does not use R-50's scales
# [100, 8000, 5000]: per-image top Hessian eigenvalues measured by power
# iteration on the demo's cycle-0 model are cls 12-174, reg 9-21,
# centerness 22-50, and a block's scale must stay above them.
_base_ = './_base_/fcos_shapes.py'

al_cfg = dict(
    selector=dict(
        type='mmal.InfluenceSelector',
        solver=dict(
            type='mmal.LiSSA',
            scale=[300.0, 50.0, 100.0],
            depth=30,
            repeats=2)))
