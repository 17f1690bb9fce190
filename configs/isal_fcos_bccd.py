# ISAL on BCCD with the small FCOS (see _base_/fcos_bccd.py). LiSSA's scales
# are chosen by the selector's scale check (default mode 'auto'): per head
# block max(the adapter's FCOS scales [100, 8000, 5000], 1.5 x the top Hessian
# eigenvalue measured on a few labeled images), raised again if a chain
# diverges (the cls block's curvature, ~100-330 here, exceeds the paper's
# scale 100, with which the chain diverged).
_base_ = './_base_/fcos_bccd.py'

al_cfg = dict(
    selector=dict(
        type='mmal.InfluenceSelector',
        solver=dict(type='mmal.LiSSA', depth=40, repeats=4)))
