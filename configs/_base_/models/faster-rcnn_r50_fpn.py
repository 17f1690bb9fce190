# The paper's two-stage detector, model only: mmdet's Faster R-CNN R-50 FPN
# (ImageNet-pretrained torchvision ResNet-50). Datasets set
# roi_head.bbox_head.num_classes.
_base_ = 'mmdet::_base_/models/faster-rcnn_r50_fpn.py'
