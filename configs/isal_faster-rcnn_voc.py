# ISAL on Faster R-CNN, VOC. The selector's defaults are the paper's:
# pseudo labels with score >= 0.1, the val split as reference set, s_test by
# LiSSA with damp 0.01, 4 chains of <= 500 labeled images; the adapter gives
# the Faster R-CNN scales [1000, 1000, 5000, 1000] (rpn_cls, rpn_reg, fc_cls,
# fc_reg).
# The scale check (default mode 'auto') keeps these scales wherever the
# measured curvature allows them (per block max(scale, 1.5 x the top Hessian
# eigenvalue on 4 labeled images); a diverged chain is rerun with that
# block's scale doubled, at most 3 times). The paper's exact fixed scales,
# with a warning but no change where they would diverge:
#   --cfg-options al_cfg.selector.scale_check.mode=fixed
# (or selector=dict(type='mmal.InfluenceSelector',
#                   scale_check=dict(mode='fixed')) in a config).
_base_ = './_base_/faster-rcnn_voc.py'

al_cfg = dict(selector=dict(type='mmal.InfluenceSelector'))
