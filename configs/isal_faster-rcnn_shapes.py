# The built-in demo with ISAL on the small Faster R-CNN (generated shapes; see
# _base_/faster-rcnn_shapes.py). The LiSSA scales are not tuned for the small
# heads yet: scale=None takes the adapter's R-50 defaults.
_base_ = './_base_/faster-rcnn_shapes.py'

al_cfg = dict(
    selector=dict(
        type='mmal.InfluenceSelector',
        solver=dict(type='mmal.LiSSA', scale=None, depth=30, repeats=2)))
