# ISAL on BCCD with the small FCOS (see _base_/fcos_bccd.py). The small head
# needs a smaller LiSSA scale than FCOS R-50's [100, 8000, 5000].
_base_ = './_base_/fcos_bccd.py'

al_cfg = dict(
    selector=dict(
        type='mmal.InfluenceSelector',
        solver=dict(type='mmal.LiSSA', scale=100.0, depth=40, repeats=4)))
