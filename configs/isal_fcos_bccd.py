# ISAL on BCCD with the small FCOS (see _base_/fcos_bccd.py). LiSSA scales
# for the small head, from per-image top Hessian eigenvalues measured by power
# iteration on cycle 0's model (cls ~100-330, reg ~3-6, centerness ~20): with
# cls scale 100 the chain diverged (mmal stopped it with a DivergenceError).
_base_ = './_base_/fcos_bccd.py'

al_cfg = dict(
    selector=dict(
        type='mmal.InfluenceSelector',
        solver=dict(
            type='mmal.LiSSA',
            scale=[500.0, 50.0, 100.0],
            depth=40,
            repeats=4)))
