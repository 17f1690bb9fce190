# Localization stability (Kao et al., ACCV 2018) on FCOS, the built-in
# detection demo (generated shapes):
# the boxes predicted with score >= 0.1 on the clean image are matched
# (best IoU, class-agnostic) with those predicted on the image with Gaussian
# pixel noise of std 8, 16, ..., 48; the least stable images first.
_base_ = './_base_/fcos_shapes.py'

al_cfg = dict(selector=dict(type='mmal.LocalizationStabilitySelector'))
