"""Annotation mode: real unlabeled images, labels from an annotation tool.

In simulation (the default) the pool's labels exist and a selection reveals
them. In annotation mode (``al_cfg.annotation``) a selection is exported
for people to label (``cycle_k/to_annotate/``, see
:mod:`mmal.annotation.export_writers`) and the run stops; the next run with
``--annotations FILE`` checks the labels against the export
(the task's :class:`~mmal.annotation.AnnotationFormat`), merges them into
the pool's file in the work dir, records the cycle and continues.
"""
import copy
import hashlib
import os
import os.path as osp
from typing import TYPE_CHECKING, Any, Dict, List, Optional

from mmengine.registry import DATASETS

from mmal.annotation import FORMATS, AnnotationFormat
from mmal.annotation.export_writers import MANIFEST_FILE
from mmal.datasets.pool_data import pool_dataset_cfg, replace_pool_dataset
from mmal.structures import ALState
from mmal.utils.distributed import broadcast_from_master, is_master, sync
from mmal.utils.errors import (ConfigError, ConfigKeyError, MissingFileError,
                               WorkDirError)
from mmal.utils.text import counted

if TYPE_CHECKING:
    from mmal.selectors import SelectionContext

#: Keys of ``al_cfg.annotation`` with their defaults (None: required).
ANNOTATION_DEFAULTS: Dict[str, Any] = dict(
    image_dir=None,  # folder of the pool's images (labeled and not)
    # the images labeled so far: detection, a COCO JSON; classification,
    # a "path class_name" list or a folder per class (under image_dir)
    labeled_ann_file=None,
    # the unlabeled images: a COCO JSON of images (detection) or a list of
    # paths (classification); default: every image under image_dir that
    # labeled_ann_file lacks
    unlabeled_ann_file=None,
    pre_annotation_score_thr=0.3,  # predictions exported as pre-labels
    # detection: pre-annotations go through class-agnostic NMS at this IoU
    # (one box per object, as an annotator would accept it; the detector's
    # own NMS is per class, so one object may come out under two or three
    # classes). 0.7 drops near-copies of a box and keeps neighbours that
    # overlap as much as people in a crowd do; None: the detector's boxes
    # as they are
    pre_annotation_nms_iou=0.7,
    # image path prefix in Label Studio's tasks file (default image_dir;
    # e.g. '/data/local-files/?d=images'); images.txt keeps plain paths
    image_root=None,
)

POOL_DIR = 'annotations'


def dataset_classes(ds_cfg: dict) -> List[str]:
    """Class names of a dataset config: its metainfo, else its type's
    ``METAINFO``, else those of the dataset built (e.g. mmpretrain's
    folder-per-class ``CustomDataset`` reads them from the folders)."""
    classes = (ds_cfg.get('metainfo') or {}).get('classes')
    if classes is None:
        cls = DATASETS.get(ds_cfg['type'])
        classes = getattr(cls, 'METAINFO', {}).get('classes')
    if not classes:
        built = DATASETS.build(dict(copy.deepcopy(ds_cfg), pipeline=[]))
        classes = built.metainfo.get('classes')
    if not classes:
        raise ConfigError('cannot tell the classes of the dataset '
                          f'{ds_cfg.get("type")}; set its metainfo')
    return list(classes)


def annotation_format(task: Any) -> AnnotationFormat:
    """The annotation-mode format of ``task`` (``task.annotation_format``).
    """
    name = getattr(task, 'annotation_format', '')
    if name not in FORMATS:
        raise ConfigError(f'{type(task).__name__} has no annotation-mode '
                          f'format (annotation_format={name!r}; known: '
                          f'{sorted(FORMATS)})')
    return FORMATS[name]()


def selection_images(fmt: AnnotationFormat, pool_file: str,
                     ids: List[str]) -> List[Dict[str, Any]]:
    """The pool file's entries of ``ids``, in that order."""
    by_id = fmt.images(fmt.read_pool(pool_file))
    return [by_id[sid] for sid in ids]


def export_selection(context: 'SelectionContext',
                     fmt: AnnotationFormat,
                     selected: List[str],
                     scores: Dict[str, Optional[float]],
                     pool_file: str,
                     classes: List[str],
                     out_dir: str,
                     image_dir: str,
                     image_root: str,
                     score_thr: float,
                     manifest: Dict[str, Any],
                     nms_iou: Optional[float] = None) -> None:
    """Predict the pre-annotations of ``selected`` (every process, its
    share), then write the export (rank 0); the others wait."""
    from mmal.selectors import pool_pass
    preds = pool_pass(
        context,
        fmt.predictor(context.adapter, score_thr, nms_iou),
        ids=selected,
        desc='pre-annotations of the selected images')
    if is_master():
        images = selection_images(fmt, pool_file, selected)
        fmt.write_export(
            out_dir, images, preds, scores, classes, image_dir, image_root,
            dict(
                manifest,
                selected=list(selected),
                file_names=[im['file_name'] for im in images],
                pre_annotation_score_thr=score_thr,
                pre_annotation_nms_iou=nms_iou))
    sync()


def resolve_annotation_cfg(cfg: Optional[dict]) -> Optional[Dict[str, Any]]:
    """``al_cfg.annotation`` with defaults, or None (simulation)."""
    if cfg is None:
        return None
    if not isinstance(cfg, dict):
        raise ConfigError('al_cfg.annotation must be None (simulation) or a '
                          f'dict, got {cfg!r}')
    unknown = sorted(set(cfg) - set(ANNOTATION_DEFAULTS))
    if unknown:
        raise ConfigKeyError(f'unknown al_cfg.annotation keys {unknown}; '
                             f'known: {sorted(ANNOTATION_DEFAULTS)}')
    out = {k: cfg.get(k, d) for k, d in ANNOTATION_DEFAULTS.items()}
    for key in ('image_dir', 'labeled_ann_file'):
        if not out[key]:
            raise ConfigError(f'al_cfg.annotation.{key} must be set')
    for key in ('image_dir', 'labeled_ann_file', 'unlabeled_ann_file'):
        if out[key]:
            out[key] = osp.abspath(out[key])
    iou = out['pre_annotation_nms_iou']
    if iou is not None and (isinstance(iou, bool) or
                            not isinstance(iou,
                                           (int, float)) or not 0 < iou <= 1):
        raise ConfigError('al_cfg.annotation.pre_annotation_nms_iou must be '
                          f'None or in (0, 1], got {iou!r}')
    out['image_root'] = out['image_root'] or out['image_dir']
    return out


class AnnotationMode:
    """The annotation-mode steps of an :class:`ActiveLearningRunner`.

    Args:
        runner (ActiveLearningRunner): The driver; annotation mode uses its
            public parts only (config, work dir, ``make_selection``,
            ``selection_step``, ``load_model``, ``cost``, ``save_state``,
            ``forget_pool_annotations``, ``log``).
        cfg (dict): Resolved ``al_cfg.annotation``.
        annotations (str, optional): The annotation tool's COCO export
            answering the pending export (``--annotations``).
    """

    def __init__(self,
                 runner: Any,
                 cfg: Dict[str, Any],
                 annotations: Optional[str] = None) -> None:
        self.runner = runner
        self.cfg = cfg
        self.annotations = (osp.abspath(annotations) if annotations else None)
        # set by check_annotations_arg, which every run calls first
        self.annotations_sha256: Optional[str] = None
        self.format = annotation_format(runner.task)
        self.pool_file = osp.join(runner.work_dir, POOL_DIR,
                                  self.format.pool_file)
        al = runner.al
        if al['cost_budget'] is not None:
            raise ConfigError(
                'al_cfg.cost_budget cannot be used in annotation mode: the '
                'cost (box count) of an image is unknown before it is '
                'labeled; use al_cfg.budget (images)')
        if runner.adapter is None:
            raise ConfigError(
                'annotation mode needs al_cfg.adapter: the pre-annotations '
                'are the model\'s predictions')
        self.classes = self._classes()

    # -- set-up -------------------------------------------------------------
    def _classes(self) -> List[str]:
        return dataset_classes(pool_dataset_cfg(self.runner.cfg))

    def prepare(self) -> None:
        """Write the pool file on the first run (rank 0), point the
        config's pool dataset at it and, absent a labeled val or test
        split, ISAL's reference set at the labeled images."""
        if not osp.isdir(self.cfg['image_dir']):
            raise MissingFileError(
                f'al_cfg.annotation.image_dir: {self.cfg["image_dir"]} does '
                'not exist (the pool\'s images moved? set '
                'al_cfg.annotation.image_dir to their folder)')
        exists = broadcast_from_master(osp.isfile(self.pool_file))
        if not exists:
            if osp.isfile(self.runner.state_path):
                raise WorkDirError(
                    f'{self.runner.state_path} exists but the pool file '
                    f'{self.pool_file} does not: the work dir is not from '
                    'an annotation-mode run')
            if is_master():
                self.format.write_pool(
                    self.pool_file,
                    self.format.build_pool(
                        self.classes, self.cfg['image_dir'],
                        self.cfg['labeled_ann_file'],
                        self.cfg['unlabeled_ann_file'],
                        self.runner.al['annotation_policy']))
            sync()
        cfg = self.runner.cfg
        cfg.train_dataloader['dataset'] = replace_pool_dataset(
            cfg, lambda pool: self.format.dataset(
                pool, self.pool_file, self.cfg['image_dir'], self.classes))
        if not cfg.get('val_dataloader') and not cfg.get('test_dataloader'):
            selector = self.runner.selector
            if getattr(selector, 'reference', None) == 'val':
                selector.reference = 'labeled'
                self.runner.log('annotation mode without a labeled val or '
                                'test split: the reference set is the '
                                'labeled images')

    def initial_labeled(self) -> List[str]:
        """The sample ids labeled before cycle 0: the labeled file's."""
        return self.format.initial_labeled_ids(
            self.cfg['labeled_ann_file'],
            self.format.read_pool(self.pool_file))

    # -- export and import --------------------------------------------------
    def export_dir(self, cycle: int) -> str:
        return osp.join(self.runner.cycle_dir(cycle), 'to_annotate')

    def continue_command(self) -> str:
        cfg = self.runner.cfg.filename or 'CONFIG'
        return (f'python tools/al_train.py {cfg} --work-dir '
                f'{self.runner.work_dir} --annotations <FILE>')

    def exchange(self, state: ALState, cycle: int) -> bool:
        """Cycle ``cycle``'s selection in annotation mode.

        Selects (once), exports, and stops unless ``--annotations`` answers
        the export; then imports the labels, labels the images for cycle
        ``cycle + 1`` and returns True (continue).
        """
        runner = self.runner
        record = runner.make_selection(state, cycle).record
        manifest = osp.join(self.export_dir(cycle), MANIFEST_FILE)
        if not broadcast_from_master(osp.isfile(manifest)):
            self.export(state, cycle, record)
        if self.annotations is None:
            runner.log(
                f'cycle {cycle}: '
                f'{counted(len(record["selected"]), "image")} to label, '
                f'listed in {self.export_dir(cycle)} (images.txt; the '
                'pre-annotations for CVAT and Label Studio are there too, '
                'see docs/en/user_guides/annotation_mode.md). Label them, '
                'then continue with\n  ' + self.continue_command())
            return False
        self.import_labels(state, cycle, record)
        return True

    def export(self, state: ALState, cycle: int, record: Dict) -> None:
        """Write ``cycle_k/to_annotate/`` with the cycle's model's
        pre-annotations."""
        runner = self.runner
        model = runner.adapter.prepare(
            runner.load_model(runner.checkpoint_path(state, cycle)))
        context = runner.selection_step.context(
            state.pool,
            cycle,
            seed=0,
            work_dir=runner.cycle_dir(cycle),
            model=model,
            whole_pool=True)
        export_selection(
            context,
            self.format,
            list(record['selected']),
            record.get('scores', {}),
            self.pool_file,
            self.classes,
            self.export_dir(cycle),
            self.cfg['image_dir'],
            self.cfg['image_root'],
            self.cfg['pre_annotation_score_thr'],
            dict(
                cycle=cycle,
                selector=record.get('selector'),
                continue_with=self.continue_command()),
            nms_iou=self.cfg['pre_annotation_nms_iou'])

    def import_labels(self, state: ALState, cycle: int, record: Dict) -> None:
        """Check the annotation file against cycle ``cycle``'s export, then
        merge it into the pool file and record the labels (nothing is
        written when a check fails)."""
        runner = self.runner
        selected = list(record['selected'])
        images = selection_images(self.format, self.pool_file, selected)
        labels = self.format.read_labels(
            self.annotations, {im['file_name']: im
                               for im in images}, self.classes, cycle,
            runner.al['annotation_policy'], runner.logger)
        pool = self.format.merge_labels(
            self.format.read_pool(self.pool_file), labels)
        if is_master():  # the pool file first: a crash before the state
            self.format.write_pool(self.pool_file, pool)  # imports again
        sync()
        runner.forget_pool_annotations()  # the new annotations
        state.pool.label(selected, cycle + 1)
        state.mark_done(
            cycle,
            'select',
            num_selected=len(selected),
            selected_cost=runner.cost(selected),
            annotations=self.annotations,
            annotations_sha256=self.annotations_sha256
            or file_sha256(self.annotations))
        runner.save_state(state)
        runner.log(f'cycle {cycle}: imported {self.annotations}: '
                   f'{counted(len(selected), "image")}, '
                   f'{state.record(cycle)["selected_cost"]} '
                   f'{runner.task.cost_unit}')
        self.annotations = None  # consumed

    def check_annotations_arg(self, state: ALState) -> None:
        """``--annotations`` given: a file imported before (same content)
        is ignored, so a repeated command never labels twice; a new file
        with no export waiting for it is an error."""
        if self.annotations is None:
            return
        self.annotations_sha256 = digest = file_sha256(self.annotations)
        done = [
            r for r in state.cycles if r.get('annotations_sha256') == digest
        ]
        if done:
            self.runner.log(f'{self.annotations} was imported at cycle '
                            f'{done[-1]["cycle"]} already; ignoring it')
            self.annotations = None
            return
        waiting = [
            r['cycle'] for r in state.cycles
            if 'select' not in r['done'] and osp.isfile(
                osp.join(self.export_dir(r['cycle']), MANIFEST_FILE))
        ]
        if not waiting:
            raise WorkDirError(
                f'--annotations {self.annotations}: no export of '
                f'{self.runner.work_dir} waits for labels (run without '
                '--annotations to train and export the next selection)')


def file_sha256(path: str) -> str:
    """Hex SHA-256 of a file's bytes, or of a folder's files (their
    relative paths and bytes, in sorted order); a missing path is named."""
    if osp.isdir(path):
        files = sorted(
            osp.relpath(osp.join(root, f), path)
            for root, _, names in os.walk(path) for f in names)
        digest = hashlib.sha256()
        for rel in files:
            digest.update(rel.encode() + b'\0')
            digest.update(file_sha256(osp.join(path, rel)).encode())
        return digest.hexdigest()
    if not osp.isfile(path):
        raise MissingFileError(f'--annotations: {path} does not exist')
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()
