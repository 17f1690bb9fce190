# The paper's large-scale COCO setting (ISAL, Table 6): FCOS as in
# ./fcos_coco.py, 10 % of train2017 labeled at random, +10 % per step, 10
# trainings, up to the whole set. Fractions are of the pool (train2017
# without images free of boxes, as mmdet's filter_empty_gt leaves it:
# 117,266 images, about 860k boxes), rounded up: 11,727 images per step,
# about 86.8k boxes at the first step and 860k at the last. A fraction
# keeps its meaning on another split or a filtered pool.
_base_ = './fcos_coco.py'

al_cfg = dict(initial_size=0.1, budget=0.1, num_cycles=10)
