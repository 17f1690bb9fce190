# The built-in demo with ISAL (generated shapes; see _base_/fcos_shapes.py).
# The tiny head is far from the paper's R-50 scale, so LiSSA uses one scale
# for every block instead of FCOS R-50's [100, 8000, 5000].
_base_ = './_base_/fcos_shapes.py'

al_cfg = dict(
    selector=dict(
        type='mmal.InfluenceSelector',
        solver=dict(type='mmal.LiSSA', scale=100.0, depth=30, repeats=2)))
