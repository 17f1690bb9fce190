from .annotated_pool import (build_pool, folder_images, labeled_image_ids,
                             read_coco, write_pool)
from .export_writers import coco_predictions, label_studio_tasks, write_export
from .formats import (FORMATS, AnnotationFormat, ClassListFormat,
                      CocoDetectionFormat)
from .label_import import merge_labels, read_labels

__all__ = [
    'build_pool', 'folder_images', 'labeled_image_ids', 'read_coco',
    'write_pool', 'coco_predictions', 'label_studio_tasks', 'write_export',
    'merge_labels', 'read_labels', 'FORMATS', 'AnnotationFormat',
    'ClassListFormat', 'CocoDetectionFormat'
]
