# PPAL on RetinaNet R-50 FPN, COCO 2017, in the official setting
# (ChenhongyiYang/PPAL, al_configs/coco/ppal_retinanet_coco.py): 2 % of
# train2017 labeled at random (2365 images), +2365 a cycle, 5 trainings
# (2 % -> 10 %), lr 0.01, focal loss gamma 2, batch 1 image a GPU (8 GPUs).
# The selector's defaults are the official COCO ones (score threshold 0.05,
# alpha 0.3, ub 0.2, 4 x budget candidates, NMS 0.6 / 0.5 in the two
# inference passes); the official candidate count is rounded up to a
# multiple of the 8 GPUs (candidate_multiple=8).
_base_ = [
    './_base_/retinanet_ppal-official.py', './_base_/datasets/al_coco.py'
]

train_dataloader = dict(batch_size=1)
model = dict(bbox_head=dict(num_classes=80))
al_cfg = dict(
    initial_size=2365,
    budget=2365,
    num_cycles=5,
    train_from_scratch=True,
    validate_during_training=False,
    selector=dict(type='mmal.PPALSelector', candidate_multiple=8))
