"""Object detection on mmdet: boxes are the annotation cost."""
from typing import Any, Dict, List, Sequence

from mmal.datasets import boxes_per_sample, generate_shapes_dataset
from mmal.registry import TASKS
from .base_task import BaseTask, copy_pipeline, transform_name


@TASKS.register_module()
class DetectionTask(BaseTask):
    """mmdet detection: annotations are boxes loaded by ``LoadAnnotations``,
    the cost of an image is its number of (non-ignored) boxes, the metric
    COCO ``bbox_mAP`` or VOC ``mAP`` (fractions)."""

    annotation_format = 'coco_detection'  # annotation mode's files
    cost_unit = 'boxes'
    default_metric_keys = ('coco/bbox_mAP', 'pascal_voc/mAP')
    metric_scale = 1.0
    default_scope = 'mmdet'

    def annotated_pipeline(self, pipeline: Sequence[dict]) -> List[dict]:
        """The pipeline with ``LoadAnnotations`` (boxes) after image
        loading."""
        pipeline = copy_pipeline(pipeline)
        if any(transform_name(t) == 'LoadAnnotations' for t in pipeline):
            return pipeline
        pos = next((i + 1 for i, t in enumerate(pipeline)
                    if transform_name(t) == 'LoadImageFromFile'), 1)
        pipeline.insert(pos, dict(type='LoadAnnotations', with_bbox=True))
        return pipeline

    def unannotated_pipeline(self, pipeline: Sequence[dict]) -> List[dict]:
        """The pipeline without ``LoadAnnotations``."""
        return [
            t for t in copy_pipeline(pipeline)
            if transform_name(t) != 'LoadAnnotations'
        ]

    def costs(self, dataset: Any) -> Dict[str, int]:
        return boxes_per_sample(dataset)

    def generate_demo_data(self, out_dir: str, **kwargs: Any) -> Any:
        return generate_shapes_dataset(out_dir, **kwargs)
