"""Detection pseudo labels: the predictions at or above the score
threshold, at most ``max_pseudo_boxes`` of them (the highest scores), in
the detector's order."""
import torch
from mmdet.structures import DetDataSample
from mmengine.structures import InstanceData

from mmal.models import SingleStageAdapter


def _pred(scores):
    n = len(scores)
    boxes = torch.arange(4 * n, dtype=torch.float32).view(n, 4)
    return InstanceData(
        bboxes=boxes, scores=torch.tensor(scores), labels=torch.arange(n) % 3)


def _kept(adapter, scores, thr):
    sample = DetDataSample()
    n = adapter.set_pseudo_labels(sample, _pred(scores), thr)
    kept = (sample.gt_instances.bboxes[:, 0] / 4).long().tolist()
    assert n == len(kept)
    assert len(sample.ignored_instances) == 0
    return kept


def test_the_threshold_alone_below_the_cap():
    scores = [0.05, 0.5, 0.1, 0.099, 0.9]
    assert _kept(SingleStageAdapter(), scores, 0.1) == [1, 2, 4]


def test_the_cap_keeps_the_highest_scores_in_the_detectors_order():
    scores = [0.3, 0.05, 0.8, 0.3, 0.6, 0.3, 0.2]
    adapter = SingleStageAdapter(max_pseudo_boxes=4)
    # 0.8, 0.6, then two of the three 0.3 ties: the first two
    assert _kept(adapter, scores, 0.1) == [0, 2, 3, 4]
    assert _kept(SingleStageAdapter(max_pseudo_boxes=None), scores,
                 0.1) == [0, 2, 3, 4, 5, 6]


def test_the_default_cap_is_mmdets_max_per_img():
    scores = [0.5] * 150
    assert _kept(SingleStageAdapter(), scores, 0.1) == list(range(100))
