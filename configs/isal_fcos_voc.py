# ISAL on FCOS, VOC. The selector's defaults are the paper's: pseudo labels
# with score >= 0.1, the val split as reference set, s_test by LiSSA with
# damp 0.01, FCOS scales [100, 8000, 5000], 4 chains of <= 500 labeled images.
_base_ = './_base_/fcos_voc.py'

al_cfg = dict(selector=dict(type='mmal.InfluenceSelector'))
