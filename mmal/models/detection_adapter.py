"""What every mmdet detector adapter shares: box pseudo labels."""
from typing import Any, Optional, Sequence

import torch
from mmengine.structures import InstanceData
from torch import nn

from .base_adapter import BaseModelAdapter
from .entropy import binary_entropy


class DetectionAdapter(BaseModelAdapter):
    """Base of the mmdet adapters: predictions are ``InstanceData`` boxes,
    pseudo labels the confident ones (task :class:`~mmal.tasks.
    DetectionTask`)."""

    task_type = 'DetectionTask'
    predicts_boxes = True

    def __init__(self,
                 param_names: Optional[Sequence[str]] = None,
                 lissa_scale: Optional[Sequence[float]] = None,
                 max_pseudo_boxes: Optional[int] = 100) -> None:
        """
        Args:
            param_names, lissa_scale: See :class:`BaseModelAdapter`.
            max_pseudo_boxes (int, optional): At most this many pseudo boxes
                an image, the most confident; None: no cap. The default is
                mmdet's usual test-time ``max_per_img``, which FCOS and
                Faster R-CNN apply already (the official ISAL code's pseudo
                labels are those outputs), and which heads without it in
                their ``test_cfg`` (YOLOX) would otherwise exceed: a weakly
                trained YOLOX keeps thousands of boxes above the threshold.
        """
        super().__init__(param_names, lissa_scale)
        self.max_pseudo_boxes = max_pseudo_boxes

    def set_pseudo_labels(self, data_sample: Any, pred: InstanceData,
                          score_thr: float) -> int:
        """Replace ``data_sample``'s boxes by its confident predictions.

        Args:
            data_sample (DetDataSample): The image's sample (modified).
            pred (InstanceData): Predictions in the network input's frame
                (``bboxes`` (n, 4), ``scores`` (n, ), ``labels`` (n, )).
            score_thr (float): Keep predictions with score >= this, at most
                ``max_pseudo_boxes`` of them (the highest scores).

        Returns:
            int: The number of pseudo boxes.
        """
        keep = pred.scores >= score_thr
        cap = self.max_pseudo_boxes
        if cap is not None and int(keep.sum()) > cap:
            # stable: equal scores keep the detector's order
            order = torch.sort(
                pred.scores.masked_fill(~keep, float('-inf')),
                descending=True,
                stable=True).indices
            keep = torch.zeros_like(keep)
            keep[order[:cap]] = True
        # float32 like annotations (mmdet builds targets from float32
        # priors); a no-op except under :func:`mmal.testing.float64_mode`
        bboxes = pred.bboxes[keep].detach().to(torch.float32)
        data_sample.gt_instances = InstanceData(
            bboxes=bboxes, labels=pred.labels[keep])
        data_sample.ignored_instances = InstanceData(
            bboxes=bboxes.new_zeros((0, 4)),
            labels=pred.labels.new_zeros((0, )))
        return int(keep.sum())

    def prediction_entropy(self, pred: InstanceData) -> Optional[float]:
        """The largest binary entropy of a predicted box's score (the
        official ISAL code's ``max_entropy``).

        Each box of the detector's final predictions (after its test-time
        score threshold and NMS) is a Bernoulli variable with its score as
        probability; the image is as uncertain as its most uncertain box.

        Returns:
            float | None: ``max_b H(score_b)`` in nats (at most ``ln 2``);
            None when there is no predicted box.
        """
        if len(pred.scores) == 0:
            return None
        return float(binary_entropy(pred.scores.double()).max())


def blank_image(model: nn.Module, size: int = 128) -> torch.Tensor:
    """A zero image batch (1, 3, size, size) on the model's device and in
    its dtype: what a detector's head is run on to find its layers."""
    param = next(model.parameters())
    return torch.zeros(
        1, 3, size, size, device=param.device, dtype=param.dtype)
