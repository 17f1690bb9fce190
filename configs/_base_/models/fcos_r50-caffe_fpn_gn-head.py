# The paper's detector: mmdet's FCOS R-50 caffe FPN GN-head with its 1x
# schedule (12 epochs, SGD lr 0.01 for batch 16, steps at epochs 8 and 11),
# ImageNet-pretrained backbone, retrained from it in every cycle.
_base_ = 'mmdet::fcos/fcos_r50-caffe_fpn_gn-head_1x_coco.py'

# One checkpoint per epoch, only the last kept: an interrupted training
# resumes from it, and a finished cycle keeps just its final weights.
default_hooks = dict(
    checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=1))
