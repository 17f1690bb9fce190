# ISAL on FCOS, COCO. The selector's defaults are the paper's: pseudo labels
# with score >= 0.1, the val split as reference set, s_test by LiSSA with
# damp 0.01, FCOS scales [100, 8000, 5000], 4 chains of <= 500 labeled images.
# The scale check (default mode 'auto') keeps these scales wherever the
# measured curvature allows them (per block max(scale, 1.5 x the top Hessian
# eigenvalue on 4 labeled images); a diverged chain is rerun with that
# block's scale doubled, at most 3 times). The paper's exact fixed scales,
# with a warning but no change where they would diverge:
#   --cfg-options al_cfg.selector.scale_check.mode=fixed
# (or selector=dict(type='mmal.InfluenceSelector',
#                   scale_check=dict(mode='fixed')) in a config).
_base_ = './_base_/fcos_coco.py'

al_cfg = dict(selector=dict(type='mmal.InfluenceSelector'))
