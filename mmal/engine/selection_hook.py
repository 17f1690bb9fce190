"""The next images to label, from a plain mmdet training (a hook)."""
import copy
import os.path as osp
from typing import Any, Dict, Optional

from mmengine.hooks import Hook
from mmengine.logging import print_log

from mmal.datasets.pool_data import pool_dataset_cfg, replace_pool_dataset
from mmal.models.auto_adapter import adapter_for
from mmal.registry import AL_ADAPTERS, HOOKS, SELECTORS, TASKS
from mmal.structures import PoolState
from mmal.utils.distributed import is_master, sync
from mmal.utils.errors import ConfigError
from mmal.utils.text import counted
from .annotation_mode import (annotation_format, dataset_classes,
                              export_selection)
from .selection_step import SelectionStep


@HOOKS.register_module()
class SelectionHook(Hook):
    """After training, rank an unlabeled pool with the trained model and
    export the next images to label (as ``tools/al_train.py`` does in
    annotation mode).

    For teams that train with mmdet's ``tools/train.py`` (or ``mim
    train``): add to the config::

        custom_imports = dict(imports=['mmal'], allow_failed_imports=False)
        custom_hooks = [
            dict(type='mmal.SelectionHook',
                 selector=dict(type='mmal.EntropySelector'),
                 budget=100)  # adapter: from the model's type
        ]

    The labeled images are the training set (``train_dataloader.dataset``,
    a COCO file); the unlabeled pool is every image of ``image_dir`` that
    the training file does not list (or the images of
    ``unlabeled_ann_file``). After the last epoch, on every process, the
    selector ranks the pool with the trained model (in eval mode) and the
    head of the ranking within ``budget`` is exported to ``out_dir``: COCO
    1.0 with pre-annotations, Label Studio tasks, the image list, the
    selector's scores and a manifest
    (:mod:`mmal.annotation.export_writers`).

    Args:
        selector (dict): A selector config (``mmal.SELECTORS``).
        budget (int): Images to select.
        adapter (dict, optional): The model's adapter config
            (``mmal.AL_ADAPTERS``). Defaults to the adapter of the model's
            family (:func:`~mmal.models.auto_adapter.adapter_for`).
        image_dir (str, optional): The pool's image folder. Defaults to the
            training set's (``data_root`` + ``data_prefix.img``).
        unlabeled_ann_file (str, optional): A COCO file listing the
            unlabeled images (under ``image_dir``).
        out_dir (str, optional): Defaults to ``<work_dir>/to_annotate``.
        pre_annotation_score_thr (float): Predictions with at least this
            score become pre-annotations. Defaults to 0.3.
        pre_annotation_nms_iou (float, optional): Detection: class-agnostic
            NMS of the pre-annotations at this IoU (one box per object);
            None: the detector's boxes as they are. Defaults to 0.7.
        image_root (str, optional): Image path prefix in the Label Studio
            tasks (``images.txt`` keeps plain paths under ``image_dir``).
            Defaults to ``image_dir``.
        seed (int): Seed of the selection. Defaults to 0.
        num_workers (int): Data loading workers. Defaults to 2.
    """

    priority = 'LOWEST'

    def __init__(self,
                 selector: dict,
                 budget: int,
                 adapter: Optional[dict] = None,
                 image_dir: Optional[str] = None,
                 unlabeled_ann_file: Optional[str] = None,
                 out_dir: Optional[str] = None,
                 pre_annotation_score_thr: float = 0.3,
                 pre_annotation_nms_iou: Optional[float] = 0.7,
                 image_root: Optional[str] = None,
                 seed: int = 0,
                 num_workers: int = 2) -> None:
        if not isinstance(budget, int) or budget <= 0:
            raise ConfigError(f'SelectionHook: budget must be a positive '
                              f'integer, got {budget!r}')
        self.selector = SELECTORS.build(selector)
        # None: the adapter of the trained model's family, at after_train
        self.adapter = None if adapter is None else AL_ADAPTERS.build(adapter)
        self.budget = budget
        self.image_dir = image_dir
        self.unlabeled_ann_file = unlabeled_ann_file
        self.out_dir = out_dir
        self.score_thr = float(pre_annotation_score_thr)
        self.nms_iou = pre_annotation_nms_iou
        self.image_root = image_root
        self.seed = int(seed)
        self.num_workers = int(num_workers)

    @staticmethod
    def _paths(ds: Dict[str, Any]) -> tuple:
        """The training set's labeled file and image folder."""
        root = ds.get('data_root') or ''
        prefix = ds.get('data_prefix') or ''
        img = prefix.get('img', '') if isinstance(prefix, dict) else prefix
        img = img if osp.isabs(img) else osp.join(root, img)
        ann = ds.get('ann_file') or ''
        if not ann:  # a folder per class
            return img, img
        return (ann if osp.isabs(ann) else osp.join(root, ann)), img

    def after_train(self, runner) -> None:
        ds = pool_dataset_cfg(runner.cfg)  # out of any mosaic wrapper
        labeled_file, train_images = self._paths(ds)
        image_dir = osp.abspath(self.image_dir or train_images)
        out_dir = self.out_dir or osp.join(runner.work_dir, 'to_annotate')
        if self.adapter is None:
            self.adapter = AL_ADAPTERS.build(
                adapter_for(runner.cfg.model,
                            runner.cfg.get('default_scope', 'mmdet')))
            print_log(
                f'SelectionHook: {type(self.adapter).__name__} for the '
                'model (chosen from its type)', runner.logger)
        task = TASKS.build(dict(type=self.adapter.task_type))
        fmt = annotation_format(task)
        pool_file = osp.join(out_dir, fmt.pool_file)
        classes = dataset_classes(ds)
        if is_master():
            fmt.write_pool(
                pool_file,
                fmt.build_pool(classes, image_dir, labeled_file,
                               self.unlabeled_ann_file))
        sync()
        cfg = copy.deepcopy(runner.cfg)
        pool = fmt.dataset(ds, pool_file, image_dir, classes)
        cfg.train_dataloader['dataset'] = replace_pool_dataset(
            runner.cfg, lambda _: pool)
        from mmal.datasets import PoolSubsetDataset
        pool_ids = PoolSubsetDataset(dict(pool, pipeline=[])).sample_ids
        state = PoolState(pool_ids)
        state.label(
            fmt.initial_labeled_ids(labeled_file, fmt.read_pool(pool_file)), 0)
        model = runner.model
        was_training = model.training
        model.eval()
        self.adapter.prepare(model, seed=self.seed)
        step = SelectionStep(
            cfg,
            self.selector,
            task,
            self.adapter,
            num_workers=self.num_workers,
            logger=runner.logger)
        selection = step.run(
            state,
            cycle=0,
            seed=self.seed,
            work_dir=out_dir,
            budget=self.budget,
            model=model)
        selected = selection.selected
        export_selection(
            selection.context,  # with the model: the pre-annotations
            fmt,
            selected,
            selection.record['scores'],
            pool_file,
            classes,
            out_dir,
            image_dir,
            self.image_root or image_dir,
            self.score_thr,
            dict(
                selector=type(self.selector).__name__,
                checkpoint_epoch=runner.epoch),
            nms_iou=self.nms_iou)
        model.train(was_training)
        print_log(
            f'SelectionHook: {counted(len(selected), "image")} to label, '
            f'listed '
            f'in {out_dir}', runner.logger)
