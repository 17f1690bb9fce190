# PPAL on RetinaNet R-50 FPN, Pascal VOC 07+12, in the official setting
# (ChenhongyiYang/PPAL, al_configs/voc/ppal_retinanet_voc.py): 5 % of the
# 16,551 trainval images labeled at random (827), +414 (2.5 %) a cycle, 7
# trainings (5 % -> 20 %), lr 0.002, focal loss gamma 1.5, batch 1 image a
# GPU (8 GPUs), evaluated on VOC2007 test. The selector's settings are the
# official VOC ones (score threshold 0.05, alpha 0.3, ub 0.2, 4 x budget
# candidates rounded to a multiple of the 8 GPUs, NMS 0.5 / 0.4 in the two
# inference passes).
_base_ = [
    './_base_/retinanet_ppal-official.py', './_base_/datasets/al_voc0712.py'
]

train_dataloader = dict(batch_size=1)
model = dict(bbox_head=dict(num_classes=20, loss_cls=dict(gamma=1.5)))
optim_wrapper = dict(optimizer=dict(lr=0.002))
al_cfg = dict(
    initial_size=827,
    budget=414,
    num_cycles=7,
    train_from_scratch=True,
    validate_during_training=False,
    selector=dict(
        type='mmal.PPALSelector',
        candidate_multiple=8,
        # the official VOC inference: class-aware NMS at 0.5 in the
        # uncertainty pass, 0.4 in the diversity pass
        setting='voc'))
