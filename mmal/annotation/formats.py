"""The file formats of annotation mode, one per task.

A task names its format (``BaseTask.annotation_format``); the driver
(:class:`mmal.engine.AnnotationMode`) and :class:`mmal.engine.
SelectionHook` only call the methods of :class:`AnnotationFormat`.
"""
import abc
import copy
import os.path as osp
from typing import Any, Callable, Dict, List, Optional, Sequence

from torch import nn

from mmal.utils.fileio import read_json
from .annotated_pool import build_pool, labeled_image_ids, write_pool
from .class_list import (build_class_pool, class_pool_dataset,
                         read_class_import, read_class_pool,
                         write_class_export, write_class_pool)
from .export_writers import agnostic_nms, write_export
from .label_import import merge_labels, read_labels

Pool = Any  # the pool file's content, as the format reads it


class AnnotationFormat(metaclass=abc.ABCMeta):
    """How one task's pool, exports and imports are stored."""

    #: The pool file's name under ``<work_dir>/annotations/``.
    pool_file: str = ''

    @abc.abstractmethod
    def build_pool(self,
                   classes: Sequence[str],
                   image_dir: str,
                   labeled: str,
                   unlabeled: Optional[str],
                   policy: str = 'error') -> Pool:
        """The pool from the user's files (never modified); ``policy``:
        ``al_cfg.annotation_policy`` for images that cannot be read."""

    @abc.abstractmethod
    def write_pool(self, path: str, pool: Pool) -> None:
        """Write the pool file atomically."""

    @abc.abstractmethod
    def read_pool(self, path: str) -> Pool:
        """Read the pool file."""

    @abc.abstractmethod
    def images(self, pool: Pool) -> Dict[str, Dict[str, Any]]:
        """Sample id -> image entry (``id``, ``file_name``, ...)."""

    @abc.abstractmethod
    def initial_labeled_ids(self, labeled: str, pool: Pool) -> List[str]:
        """Sample ids labeled before cycle 0 (``labeled``: the user's
        labeled file; ``pool``: the pool built from it)."""

    @abc.abstractmethod
    def dataset(self, ds_cfg: dict, pool_file: str, image_dir: str,
                classes: List[str]) -> dict:
        """The dataset config of the pool (the config's pipeline)."""

    @abc.abstractmethod
    def predictor(self,
                  adapter: Any,
                  score_thr: float,
                  nms_iou: Optional[float] = None
                  ) -> Callable[[nn.Module, Dict], List]:
        """``fn(model, data)``: each image's pre-annotation (lists);
        ``nms_iou``: detection's class-agnostic NMS (None: none)."""

    @abc.abstractmethod
    def write_export(self, out_dir: str, images: List[Dict[str, Any]],
                     predictions: Dict[str,
                                       Any], scores: Dict[str,
                                                          Optional[float]],
                     classes: Sequence[str], image_dir: str, image_root: str,
                     manifest: Dict[str, Any]) -> None:
        """Write ``to_annotate/`` (the manifest last): image paths under
        ``image_dir`` in the lists, under ``image_root`` in Label
        Studio's tasks."""

    @abc.abstractmethod
    def read_labels(self, path: str, selection: Dict[str, Dict[str, Any]],
                    classes: Sequence[str], cycle: int, policy: str,
                    logger: Any) -> Dict[str, Any]:
        """Sample id -> labels of every selected image (``selection``:
        file name -> image entry), after every check."""

    @abc.abstractmethod
    def merge_labels(self, pool: Pool, labels: Dict[str, Any]) -> Pool:
        """The pool with ``labels`` (replacing earlier ones)."""


class CocoDetectionFormat(AnnotationFormat):
    """Detection: the pool is a COCO file; exports COCO 1.0 and Label
    Studio rectangles; imports COCO (CVAT, Label Studio)."""

    pool_file = 'pool.json'

    def build_pool(self,
                   classes,
                   image_dir,
                   labeled,
                   unlabeled,
                   policy='error'):
        return build_pool(classes, image_dir, labeled, unlabeled, policy)

    def write_pool(self, path, pool):
        write_pool(path, pool)

    def read_pool(self, path):
        return read_json(path)

    def images(self, pool):
        return {str(im['id']): im for im in pool['images']}

    def initial_labeled_ids(self, labeled, pool):
        return labeled_image_ids(labeled)

    def dataset(self, ds_cfg, pool_file, image_dir, classes):
        return dict(
            type='CocoDataset',
            data_root='',
            ann_file=pool_file,
            data_prefix=dict(img=image_dir.rstrip(osp.sep) + osp.sep),
            metainfo=dict(classes=tuple(classes)),
            filter_cfg=None,  # an image with no object is a valid label
            pipeline=copy.deepcopy(ds_cfg['pipeline']),
            backend_args=ds_cfg.get('backend_args'))

    def predictor(self, adapter, score_thr, nms_iou=None):

        def predict(model: nn.Module, data: Dict) -> List[Dict]:
            out = []
            for sample in adapter.unwrap(model).predict(
                    data['inputs'], data['data_samples'], rescale=True):
                pred = sample.pred_instances
                keep = pred.scores >= score_thr
                bboxes, scores = pred.bboxes[keep], pred.scores[keep]
                labels = pred.labels[keep]
                if nms_iou is not None:
                    kept = agnostic_nms(bboxes, scores, nms_iou)
                    bboxes, scores = bboxes[kept], scores[kept]
                    labels = labels[kept]
                out.append(
                    dict(
                        bboxes=bboxes.tolist(),
                        scores=scores.tolist(),
                        labels=labels.tolist()))
            return out

        return predict

    def write_export(self, out_dir, images, predictions, scores, classes,
                     image_dir, image_root, manifest):
        write_export(out_dir, images, predictions, scores, classes, image_dir,
                     image_root, manifest)

    def read_labels(self, path, selection, classes, cycle, policy, logger):
        return read_labels(path, selection, classes, cycle, policy, logger)

    def merge_labels(self, pool, labels):
        return merge_labels(pool, labels)


class ClassListFormat(AnnotationFormat):
    """Classification: the pool is a ``path label`` list; exports the
    predicted classes as such a list (and Label Studio choices); imports a
    ``path class_name`` list or a folder per class."""

    pool_file = 'pool.txt'

    def build_pool(self,
                   classes,
                   image_dir,
                   labeled,
                   unlabeled,
                   policy='error'):
        # images are decoded by the run's image checks (same policy)
        return build_class_pool(classes, image_dir, labeled, unlabeled)

    def write_pool(self, path, pool):
        write_class_pool(path, pool)

    def read_pool(self, path):
        return read_class_pool(path)

    def images(self, pool):
        return {im['id']: im for im in pool}

    def initial_labeled_ids(self, labeled, pool):
        return [im['id'] for im in pool if im['label'] >= 0]

    def dataset(self, ds_cfg, pool_file, image_dir, classes):
        return class_pool_dataset(ds_cfg, pool_file, image_dir, classes)

    def predictor(self, adapter, score_thr, nms_iou=None):

        def predict(model: nn.Module, data: Dict) -> List[Dict]:
            return [
                dict(label=int(p.argmax()), score=float(p.max()))
                for p in adapter.predict_batch(model, data)
            ]

        return predict

    def write_export(self, out_dir, images, predictions, scores, classes,
                     image_dir, image_root, manifest):
        write_class_export(out_dir, images, predictions, scores, classes,
                           image_dir, image_root, manifest)

    def read_labels(self, path, selection, classes, cycle, policy, logger):
        return read_class_import(path, selection, classes, cycle)

    def merge_labels(self, pool, labels):
        return [
            dict(im, label=labels.get(im['id'], im['label'])) for im in pool
        ]


#: ``BaseTask.annotation_format`` -> format.
FORMATS: Dict[str, Callable[[], AnnotationFormat]] = {
    'coco_detection': CocoDetectionFormat,
    'class_list': ClassListFormat,
}
