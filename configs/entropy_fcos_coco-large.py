# Entropy sampling on FCOS, COCO, large scale (the paper's Table 6: 10 % + 10 %
# per step):
# the largest binary entropy of a predicted box's score (the official
# code's max_entropy, highest first).
_base_ = './_base_/fcos_coco-large.py'

al_cfg = dict(selector=dict(type='mmal.EntropySelector'))
