# ISAL on Faster R-CNN, COCO. The selector's defaults are the paper's:
# pseudo labels with score >= 0.1, the val split as reference set, s_test by
# LiSSA with damp 0.01, 4 chains of <= 500 labeled images; the adapter gives
# the Faster R-CNN scales [1000, 1000, 5000, 1000] (rpn_cls, rpn_reg, fc_cls,
# fc_reg).
_base_ = './_base_/faster-rcnn_coco.py'

al_cfg = dict(selector=dict(type='mmal.InfluenceSelector'))
