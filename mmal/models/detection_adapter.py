"""What every mmdet detector adapter shares: box pseudo labels."""
from typing import Any

import torch
from mmengine.structures import InstanceData

from .base_adapter import BaseModelAdapter


class DetectionAdapter(BaseModelAdapter):
    """Base of the mmdet adapters: predictions are ``InstanceData`` boxes,
    pseudo labels the confident ones (task :class:`~mmal.tasks.
    DetectionTask`)."""

    task = 'DetectionTask'

    def set_pseudo_labels(self, data_sample: Any, pred: InstanceData,
                          score_thr: float) -> int:
        """Replace ``data_sample``'s boxes by its confident predictions.

        Args:
            data_sample (DetDataSample): The image's sample (modified).
            pred (InstanceData): Predictions in the network input's frame
                (``bboxes`` (n, 4), ``scores`` (n, ), ``labels`` (n, )).
            score_thr (float): Keep predictions with score >= this.

        Returns:
            int: The number of pseudo boxes.
        """
        keep = pred.scores >= score_thr
        # float32 like annotations (mmdet builds targets from float32
        # priors); a no-op except under :meth:`float64`
        bboxes = pred.bboxes[keep].detach().to(torch.float32)
        data_sample.gt_instances = InstanceData(
            bboxes=bboxes, labels=pred.labels[keep])
        data_sample.ignored_instances = InstanceData(
            bboxes=bboxes.new_zeros((0, 4)),
            labels=pred.labels.new_zeros((0, )))
        return int(keep.sum())
