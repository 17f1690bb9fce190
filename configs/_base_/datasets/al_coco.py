# COCO 2017 (mmdet's coco_detection: pool train2017, reference set and
# evaluation val2017) with the paper's active-learning sizes.
_base_ = 'mmdet::_base_/datasets/coco_detection.py'

data_root = 'data/coco/'
train_dataloader = dict(dataset=dict(data_root=data_root))
val_dataloader = dict(dataset=dict(data_root=data_root))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val2017.json')
test_evaluator = val_evaluator

al_cfg = dict(
    initial_size=5000,  # paper: 5000 initial images
    budget=1000,  # paper: +1000 images per cycle
    num_cycles=6,  # 5000 -> 10000 images
    seed=0,
)
