# Entropy sampling on Faster R-CNN, VOC:
# the largest binary entropy of a predicted box's score (the official
# code's max_entropy, highest first).
_base_ = './_base_/faster-rcnn_voc.py'

al_cfg = dict(selector=dict(type='mmal.EntropySelector'))
