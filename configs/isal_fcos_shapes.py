# The built-in demo with ISAL (generated shapes; see _base_/fcos_shapes.py).
# LiSSA's scales are not tuned by hand: the selector's scale check (default
# mode 'auto') measures each head block's top Hessian eigenvalue on a few
# labeled images and takes max(the adapter's FCOS scales [100, 8000, 5000],
# 1.5 x that eigenvalue), raising a block's scale again if a chain diverges.
_base_ = './_base_/fcos_shapes.py'

al_cfg = dict(
    selector=dict(
        type='mmal.InfluenceSelector',
        solver=dict(type='mmal.LiSSA', depth=30, repeats=2)))
