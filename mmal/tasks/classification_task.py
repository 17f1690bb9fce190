"""Image classification on mmpretrain: one label per image."""
from typing import Any, Dict, List, Sequence

from mmal.datasets import collect_sample_ids, generate_shapes_classification
from mmal.registry import TASKS
from .base_task import BaseTask, copy_pipeline, transform_name


@TASKS.register_module()
class ClassificationTask(BaseTask):
    """mmpretrain classification: the label comes with the dataset's data
    info (``gt_label``), an image costs 1, the metric is mmpretrain's
    ``accuracy/top1`` (reported in percent, stored as a fraction)."""

    annotation_format = 'class_list'  # annotation mode's files
    cost_unit = 'images'
    default_metric_keys = ('accuracy/top1', )
    metric_scale = 0.01
    default_scope = 'mmpretrain'

    def annotated_pipeline(self, pipeline: Sequence[dict]) -> List[dict]:
        return copy_pipeline(pipeline)

    def unannotated_pipeline(self, pipeline: Sequence[dict]) -> List[dict]:
        """The pipeline with ``mmal.DropLabels`` before packing, so the
        packed sample carries no ground-truth label."""
        pipeline = [
            t for t in copy_pipeline(pipeline)
            if transform_name(t) != 'DropLabels'
        ]
        pos = next((i for i, t in enumerate(pipeline)
                    if transform_name(t).startswith('Pack')), len(pipeline))
        pipeline.insert(pos, dict(type='mmal.DropLabels'))
        return pipeline

    def costs(self, dataset: Any) -> Dict[str, int]:
        return {sid: 1 for sid in collect_sample_ids(dataset)}

    def generate_demo_data(self, out_dir: str, **kwargs: Any) -> Any:
        return generate_shapes_classification(out_dir, **kwargs)
