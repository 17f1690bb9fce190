"""Everything a selector may use in one cycle, built lazily."""
from typing import (TYPE_CHECKING, Any, Dict, Iterable, Iterator, List,
                    Optional, Sequence)

import numpy as np
import torch
from mmengine.config import Config
from torch import nn
from torch.utils.data import DataLoader

from mmal.datasets import PoolSubsetDataset
from mmal.datasets.pool_data import (as_plain_dict, eval_pipeline, id_loader,
                                     pool_dataset_cfg, replace_pipeline)
from mmal.datasets.shape_batches import pad_divisor, same_shape_batches
from mmal.structures import PoolState
from mmal.tasks import BaseTask

if TYPE_CHECKING:  # only for the annotation: selectors need no adapter
    from mmal.models import BaseModelAdapter


class SelectionContext:
    """Inputs of :meth:`BaseSelector.rank` for one cycle.

    Views of the pool are built on first use, with the config's test-time
    pipeline: with annotations for labeled / reference images, without for
    unlabeled ones (simulation never reads their ground truth); the task
    says how (:meth:`BaseTask.annotated_pipeline`).

    Args:
        cfg (Config): The full run config.
        state (PoolState): Labeled / unlabeled ids (read-only here).
        cycle (int): Index of the cycle whose model selects.
        seed (int): Seed of this cycle's selection.
        work_dir (str): The cycle's directory, for artifacts.
        task (BaseTask): The task (detection, classification): how the
            views load annotations and what they cost.
        model (nn.Module, optional): The cycle's trained model, eval mode.
        adapter (BaseModelAdapter, optional): The model's adapter.
        num_workers (int): Data loading workers.
        annotation_policy (str): See :class:`PoolSubsetDataset`.
        logger: mmengine logger (or its name) for progress lines.
        exclude_ids (dict, optional): Split (``'val'`` / ``'test'``) -> ids
            left out of its views (images that cannot be decoded).
        budget (int, optional): The most images the driver takes from the
            ranking (``al_cfg.budget``); a selector whose ranking is built
            one pick at a time (core-set) may stop there. None: rank the
            whole pool.
        unlabeled_subset (int, optional): Rank only this many unlabeled
            images, drawn at random (seeded by ``seed``) from the unlabeled
            pool (``al_cfg.unlabeled_subset``; learning loss's 10,000 on
            CIFAR). None: every unlabeled image.
    """

    def __init__(self,
                 cfg: Config,
                 state: PoolState,
                 cycle: int,
                 seed: int,
                 work_dir: str,
                 task: BaseTask,
                 model: Optional[nn.Module] = None,
                 adapter: Optional['BaseModelAdapter'] = None,
                 num_workers: int = 2,
                 annotation_policy: str = 'error',
                 logger: Any = 'current',
                 exclude_ids: Optional[Dict[str, Sequence[str]]] = None,
                 budget: Optional[int] = None,
                 unlabeled_subset: Optional[int] = None) -> None:
        self.cfg = cfg
        self.state = state
        self.cycle = cycle
        self.seed = seed
        self.work_dir = work_dir
        self.model = model
        self.adapter = adapter
        if not isinstance(task, BaseTask):
            raise TypeError('SelectionContext needs a task (a BaseTask, e.g. '
                            f'mmal.tasks.DetectionTask()), got {task!r}')
        self.task = task
        self.num_workers = num_workers
        self.annotation_policy = annotation_policy
        self.logger = logger
        self.exclude_ids = dict(exclude_ids or {})
        self.budget = budget
        self.unlabeled_subset = unlabeled_subset
        self._views: Dict[str, PoolSubsetDataset] = {}
        self._unlabeled_ids: Optional[List[str]] = None

    @property
    def unlabeled_ids(self) -> List[str]:
        """The unlabeled ids a selector ranks, sorted.

        Every unlabeled id; with ``unlabeled_subset``, that many of them
        drawn without replacement by a generator seeded with ``seed`` over
        the sorted ids (so the subset depends on the unlabeled set and the
        seed only, not on the number of processes).
        """
        if self._unlabeled_ids is None:
            ids = sorted(self.state.unlabeled_ids)
            size = self.unlabeled_subset
            if size is not None and size < len(ids):
                rng = np.random.default_rng([self.seed, 3])
                ids = sorted(
                    ids[i]
                    for i in rng.choice(len(ids), size=size, replace=False))
            self._unlabeled_ids = ids
        return self._unlabeled_ids

    @property
    def device(self) -> torch.device:
        if self.model is None:
            return torch.device('cpu')
        return next(self.model.parameters()).device

    def _build(self,
               key: str,
               ds_cfg: dict,
               ids: Optional[Sequence[str]],
               annotations: bool,
               exclude: Optional[Sequence[str]] = None) -> PoolSubsetDataset:
        if key not in self._views:
            pipe = eval_pipeline(self.cfg)
            pipe = (
                self.task.annotated_pipeline(pipe)
                if annotations else self.task.unannotated_pipeline(pipe))
            ds_cfg = replace_pipeline(ds_cfg, pipe)
            ds_cfg['test_mode'] = True
            self._views[key] = PoolSubsetDataset(
                ds_cfg,
                sample_ids=None if ids is None else list(ids),
                annotation_policy=self.annotation_policy,
                exclude_ids=exclude)
        return self._views[key]

    def labeled_view(self) -> PoolSubsetDataset:
        """Labeled images with their annotations."""
        return self._build('labeled', pool_dataset_cfg(self.cfg),
                           self.state.labeled_ids, True)

    def unlabeled_view(self) -> PoolSubsetDataset:
        """Unlabeled images (:attr:`unlabeled_ids`), without annotations."""
        return self._build('unlabeled', pool_dataset_cfg(self.cfg),
                           self.unlabeled_ids, False)

    def validation_view(self) -> PoolSubsetDataset:
        """The validation split with annotations (ISAL's reference set)."""
        split = 'val' if self.cfg.get('val_dataloader') else 'test'
        loader = self.cfg.get(f'{split}_dataloader')
        return self._build('val', as_plain_dict(loader['dataset']), None, True,
                           self.exclude_ids.get(split))

    def loader(self,
               view: PoolSubsetDataset,
               ids: Optional[Sequence[str]] = None) -> DataLoader:
        """Batch-1 loader over ``ids`` of ``view`` (default all), in order."""
        return id_loader(view, ids, self.num_workers)

    def shape_batches(self, items: Iterable[Dict],
                      batch_size: int) -> Iterator[Dict]:
        """Loaded images preprocessed by the model, batched by padded shape
        (:func:`same_shape_batches`; a batch preprocessed in one call where
        the preprocessor allows it, :func:`pad_divisor`), keyed by the
        adapter's image ids."""
        adapter, model = self.adapter, self.model
        divisor = pad_divisor(adapter.unwrap(model).data_preprocessor)
        return same_shape_batches(
            lambda b: adapter.preprocess(model, b),
            items,
            batch_size,
            adapter.image_key,
            divisor=divisor)

    def cache_entries(self, items: Iterable[Dict],
                      batch_size: int) -> Iterator[Dict]:
        """The adapter's cache entries of loaded images, computed in
        batches (:meth:`BaseModelAdapter.cache_entries`), in batch order."""
        for data in self.shape_batches(items, batch_size):
            yield from self.adapter.cache_entries(self.model, data)
