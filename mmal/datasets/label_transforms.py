"""Pipeline steps that hide labels from the loaded sample."""
from typing import Dict

from mmcv.transforms import BaseTransform

from mmal.registry import TRANSFORMS


@TRANSFORMS.register_module()
class DropLabels(BaseTransform):
    """Remove the classification labels (``gt_label``, ``gt_score``) from a
    sample, so that a pool image scored as unlabeled never carries its
    ground truth into the packed data sample."""

    keys = ('gt_label', 'gt_score')

    def transform(self, results: Dict) -> Dict:
        for key in self.keys:
            results.pop(key, None)
        return results
