# The built-in demo with the small Faster R-CNN and random selection (the
# baseline).
_base_ = './_base_/faster-rcnn_shapes.py'

al_cfg = dict(selector=dict(type='mmal.RandomSelector'))
