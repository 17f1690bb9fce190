# Pascal VOC 07+12 as PPAL's official setting uses it: the pool is VOC2007
# trainval + VOC2012 trainval (16,551 images), the evaluation VOC2007 test
# (4,952 images, mAP at IoU 0.5, 11 points as the official code), at
# mmdet's VOC scale 1000x600. data_root holds VOC2007/ and VOC2012/.
_base_ = './al_voc.py'

data_root = 'data/VOCdevkit/'
train_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='ConcatDataset',
        # mmal's pool view restricts each part to its labeled images
        datasets=[
            dict(
                type='VOCDataset',
                data_root=data_root,
                ann_file=f'{year}/ImageSets/Main/trainval.txt',
                data_prefix=dict(sub_data_root=f'{year}/'),
                filter_cfg=dict(filter_empty_gt=True, min_size=32),
                pipeline=_base_.train_pipeline)
            for year in ('VOC2007', 'VOC2012')
        ]))
val_dataloader = dict(
    dataset=dict(
        ann_file='VOC2007/ImageSets/Main/test.txt',
        data_prefix=dict(sub_data_root='VOC2007/')))
test_dataloader = val_dataloader
val_evaluator = dict(type='VOCMetric', metric='mAP', eval_mode='11points')
test_evaluator = val_evaluator
