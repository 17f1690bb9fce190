# Entropy sampling on Faster R-CNN, the built-in detection demo (generated
# shapes):
# the largest binary entropy of a predicted box's score (the official
# code's max_entropy, highest first).
_base_ = './_base_/faster-rcnn_shapes.py'

al_cfg = dict(selector=dict(type='mmal.EntropySelector'))
