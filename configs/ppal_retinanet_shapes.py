# PPAL on RetinaNet at demo size (the built-in generated shapes; PPAL's own
# model family on the demo's small trunk). The selector's defaults are the
# official code's COCO settings; mmal.ClassQualityHook learns the class
# qualities during each cycle's training.
_base_ = './isal_retinanet_shapes.py'

custom_hooks = [dict(type='mmal.ClassQualityHook')]
al_cfg = dict(selector=dict(_delete_=True, type='mmal.PPALSelector'))
