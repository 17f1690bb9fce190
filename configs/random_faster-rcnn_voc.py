# Random selection on Faster R-CNN, VOC: the baseline.
_base_ = './_base_/faster-rcnn_voc.py'

al_cfg = dict(selector=dict(type='mmal.RandomSelector'))
