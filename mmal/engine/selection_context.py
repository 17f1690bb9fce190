"""Everything a selector may use in one cycle, built lazily."""
from typing import Any, Dict, Optional, Sequence

import torch
from mmengine.config import Config
from torch import nn
from torch.utils.data import DataLoader

from mmal.datasets import PoolSubsetDataset
from mmal.models.base_adapter import BaseModelAdapter
from mmal.structures import PoolState
from .pool_data import (as_plain_dict, eval_pipeline, id_loader,
                        pool_dataset_cfg, replace_pipeline, strip_annotations,
                        with_annotations)


class SelectionContext:
    """Inputs of :meth:`BaseSelector.rank` for one cycle.

    Views of the pool are built on first use, with the config's test-time
    pipeline: with annotations for labeled / reference images, without for
    unlabeled ones (simulation never reads their ground truth).

    Args:
        cfg (Config): The full run config.
        state (PoolState): Labeled / unlabeled ids (read-only here).
        cycle (int): Index of the cycle whose model selects.
        seed (int): Seed of this cycle's selection.
        work_dir (str): The cycle's directory, for artifacts.
        model (nn.Module, optional): The cycle's trained model, eval mode.
        adapter (BaseModelAdapter, optional): The model's adapter.
        num_workers (int): Data loading workers.
        annotation_policy (str): See :class:`PoolSubsetDataset`.
        logger: mmengine logger (or its name) for progress lines.
        exclude_ids (dict, optional): Split (``'val'`` / ``'test'``) -> ids
            left out of its views (images that cannot be decoded).
    """

    def __init__(self,
                 cfg: Config,
                 state: PoolState,
                 cycle: int,
                 seed: int,
                 work_dir: str,
                 model: Optional[nn.Module] = None,
                 adapter: Optional[BaseModelAdapter] = None,
                 num_workers: int = 2,
                 annotation_policy: str = 'error',
                 logger: Any = 'current',
                 exclude_ids: Optional[Dict[str, Sequence[str]]] = None
                 ) -> None:
        self.cfg = cfg
        self.state = state
        self.cycle = cycle
        self.seed = seed
        self.work_dir = work_dir
        self.model = model
        self.adapter = adapter
        self.num_workers = num_workers
        self.annotation_policy = annotation_policy
        self.logger = logger
        self.exclude_ids = dict(exclude_ids or {})
        self._views: Dict[str, PoolSubsetDataset] = {}

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
            pipe = with_annotations(pipe) if annotations else \
                strip_annotations(pipe)
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
        """Unlabeled images, without annotations."""
        return self._build('unlabeled', pool_dataset_cfg(self.cfg),
                           self.state.unlabeled_ids, False)

    def validation_view(self) -> PoolSubsetDataset:
        """The validation split with annotations (ISAL's reference set)."""
        split = 'val' if self.cfg.get('val_dataloader') else 'test'
        loader = self.cfg.get(f'{split}_dataloader')
        return self._build('val', as_plain_dict(loader['dataset']), None,
                           True, self.exclude_ids.get(split))

    def loader(self,
               view: PoolSubsetDataset,
               ids: Optional[Sequence[str]] = None) -> DataLoader:
        """Batch-1 loader over ``ids`` of ``view`` (default all), in order."""
        return id_loader(view, ids, self.num_workers)
