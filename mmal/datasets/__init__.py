"""Datasets: stable sample ids, annotation and image checks, pool views by
id, mmal's CIFAR and folder datasets and the synthetic shapes datasets."""
from .annotation_checks import ANNOTATION_POLICIES, check_annotations
from .cifar import CIFAR10, CIFAR100
from .custom_dataset import CustomDataset
from .image_checks import (BadImage, UndecodableImageError, check_images,
                           image_load_cfg)
from .label_transforms import DropLabels
from .pool_subset import (PoolSubsetDataset, boxes_per_sample, count_boxes,
                          load_ids_file)
from .sample_id import collect_sample_ids, sample_id
from .synthetic import SHAPES_CLASSES, generate_shapes_dataset
from .synthetic_classification import (SHAPES_CLS_CLASSES,
                                       generate_shapes_classification)

__all__ = [
    'ANNOTATION_POLICIES', 'check_annotations', 'BadImage',
    'UndecodableImageError', 'check_images', 'image_load_cfg',
    'PoolSubsetDataset', 'boxes_per_sample', 'count_boxes', 'load_ids_file',
    'collect_sample_ids', 'sample_id', 'SHAPES_CLASSES',
    'generate_shapes_dataset', 'DropLabels', 'CIFAR10', 'CIFAR100',
    'CustomDataset', 'SHAPES_CLS_CLASSES', 'generate_shapes_classification'
]
