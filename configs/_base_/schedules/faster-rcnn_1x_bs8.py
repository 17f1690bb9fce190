# The paper's Faster R-CNN schedule (supplementary, section 5.2): mmdet's 1x
# (12 epochs, SGD momentum 0.9, weight decay 1e-4, linear warmup over 500
# iterations, steps at epochs 8 and 11) with lr 0.01 for a total batch of 8
# (e.g. 4 GPUs x 2 images), half of mmdet's 0.02 for 16.
_base_ = 'mmdet::_base_/schedules/schedule_1x.py'

optim_wrapper = dict(optimizer=dict(lr=0.01))
# `--cfg-options auto_scale_lr.enable=True` rescales lr 0.01 from this batch.
auto_scale_lr = dict(base_batch_size=8)
