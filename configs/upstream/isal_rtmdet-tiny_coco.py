# ISAL on mmdet's own RTMDet-tiny config, as it is (COCO 2017 under data/coco/,
# its schedule, pipeline and hooks): al_cfg names the selector and the run's
# sizes, nothing else. The adapter comes from the model's type, θ by rule (the
# weights of the head's output layers), LiSSA's scales from the scale check.
# Sizes: the paper's COCO setting (5000 images, +1000 a cycle). Other
# selectors: change al_cfg.selector (README, "Selectors").
_base_ = 'mmdet::rtmdet/rtmdet_tiny_8xb32-300e_coco.py'

al_cfg = dict(
    selector=dict(type='mmal.InfluenceSelector'),
    initial_size=5000,
    budget=1000,
    num_cycles=6)
