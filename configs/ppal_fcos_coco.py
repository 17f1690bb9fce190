# PPAL (Yang et al., CVPR 2024) on FCOS, COCO 2017 (the paper's ISAL COCO
# sizes). The selector's defaults are the official code's (COCO): score
# threshold 0.05, class weights alpha 0.3 / ub 0.2 from the class qualities
# that mmal.ClassQualityHook learns during training, 4 x budget candidates by
# difficulty calibrated uncertainty, then k-medoids on category conditioned
# matching similarity of the classification tower's features.
_base_ = './_base_/fcos_coco.py'

custom_hooks = [dict(type='mmal.ClassQualityHook')]
al_cfg = dict(selector=dict(type='mmal.PPALSelector'))
