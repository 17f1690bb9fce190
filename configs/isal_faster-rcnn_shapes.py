# The built-in demo with ISAL on the small Faster R-CNN (generated shapes; see
# _base_/faster-rcnn_shapes.py). LiSSA's scales: the adapter's R-50 scales
# [1000, 1000, 5000, 1000], raised per block by the selector's scale check
# (default mode 'auto') where the small heads' curvature needs more.
_base_ = './_base_/faster-rcnn_shapes.py'

al_cfg = dict(
    selector=dict(
        type='mmal.InfluenceSelector',
        solver=dict(type='mmal.LiSSA', depth=30, repeats=2)))
