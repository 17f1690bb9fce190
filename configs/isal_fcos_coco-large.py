# ISAL on FCOS, COCO at the paper's large scale (Table 6): see
# _base_/fcos_coco-large.py; the selector's defaults are those of
# isal_fcos_coco.py.
_base_ = './_base_/fcos_coco-large.py'

al_cfg = dict(selector=dict(type='mmal.InfluenceSelector'))
