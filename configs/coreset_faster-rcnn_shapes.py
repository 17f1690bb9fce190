# Core-set (k-center greedy) on Faster R-CNN, the built-in detection demo
# (generated shapes); features:
# the FPN levels, pooled and averaged (the paper names no
# Faster R-CNN feature; see mmal.TwoStageAdapter.embed).
_base_ = './_base_/faster-rcnn_shapes.py'

al_cfg = dict(selector=dict(type='mmal.CoresetSelector'))
