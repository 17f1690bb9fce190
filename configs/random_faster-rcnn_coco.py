# Random selection on Faster R-CNN, COCO: the baseline.
_base_ = './_base_/faster-rcnn_coco.py'

al_cfg = dict(selector=dict(type='mmal.RandomSelector'))
