"""Datasets and loaders over the pool, built from an mmdet or mmpretrain
config."""
import copy
import os.path as osp
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
from mmengine.config import Config, ConfigDict
from mmengine.dataset import pseudo_collate
from torch.utils.data import DataLoader, Dataset

from mmal.utils.errors import MissingFileError
from .pool_subset import PoolSubsetDataset

_WRAPPER_KEYS = ('dataset', 'datasets')


def replace_pipeline(ds_cfg: dict, pipeline: Sequence[dict]) -> dict:
    """A copy of a dataset config whose (inner) datasets use ``pipeline``."""
    ds_cfg = copy.deepcopy(ds_cfg)
    if 'pipeline' in ds_cfg or not any(k in ds_cfg for k in _WRAPPER_KEYS):
        ds_cfg['pipeline'] = list(pipeline)
    if isinstance(ds_cfg.get('dataset'), dict):
        ds_cfg['dataset'] = replace_pipeline(ds_cfg['dataset'], pipeline)
    if isinstance(ds_cfg.get('datasets'), list):
        ds_cfg['datasets'] = [
            replace_pipeline(d, pipeline) for d in ds_cfg['datasets']
        ]
    return ds_cfg


def as_plain_dict(cfg) -> dict:
    """A deep, plain-``dict`` copy of a (Config)dict."""
    return cfg.to_dict() if isinstance(cfg, ConfigDict) else copy.deepcopy(
        dict(cfg))


def split_wrappers(ds_cfg: dict) -> Tuple[List[dict], dict]:
    """A dataset config's sampling wrappers and the dataset they wrap.

    mmdet's ``MultiImageMixDataset`` (YOLOX's Mosaic and MixUp), mmengine's
    ``RepeatDataset`` and ``ClassBalancedDataset`` wrap one dataset (key
    ``dataset``) and change how its samples are drawn, not which images
    exist. The pool is the dataset they wrap; each cycle's labeled view is
    wrapped in them again for training (:func:`rewrap`), so a mosaic only
    mixes labeled images. ``ConcatDataset`` (key ``datasets``) is a pool of
    its own.

    Args:
        ds_cfg (dict): A dataset config.

    Returns:
        tuple[list[dict], dict]: The wrappers, outermost first, each without
        its ``dataset``; the innermost dataset's config (plain copies).
    """
    wrappers = []
    ds_cfg = as_plain_dict(ds_cfg)
    while isinstance(ds_cfg.get('dataset'), dict) and not str(
            ds_cfg.get('type', '')).endswith('PoolSubsetDataset'):
        wrapper = dict(ds_cfg)
        ds_cfg = wrapper.pop('dataset')
        wrappers.append(wrapper)
    return wrappers, ds_cfg


def rewrap(wrappers: Sequence[dict], ds_cfg: dict) -> dict:
    """``ds_cfg`` inside ``wrappers`` (outermost first), as
    :func:`split_wrappers` returned them."""
    for wrapper in reversed(wrappers):
        ds_cfg = dict(copy.deepcopy(wrapper), dataset=ds_cfg)
    return ds_cfg


def pool_dataset_cfg(cfg: Config) -> dict:
    """The pool: a copy of the config's training dataset, out of its
    sampling wrappers (:func:`split_wrappers`)."""
    return split_wrappers(cfg.train_dataloader['dataset'])[1]


def replace_pool_dataset(cfg: Config, fn: Callable[[dict], dict]) -> dict:
    """The config's training dataset with the pool replaced by
    ``fn(pool)``, inside the same sampling wrappers.

    Args:
        cfg (Config): The run's config (not changed).
        fn (callable): Maps the pool's dataset config to its replacement
            (e.g. a :class:`PoolSubsetDataset` of the labeled ids).

    Returns:
        dict: The new ``train_dataloader.dataset``.
    """
    wrappers, pool = split_wrappers(cfg.train_dataloader['dataset'])
    return rewrap(wrappers, fn(pool))


def data_paths(ds_cfg: dict) -> Dict[str, str]:
    """Paths a dataset config needs: ``data_root`` and its ``ann_file``."""
    paths = {}
    root = ds_cfg.get('data_root') or ''
    if root:
        paths['data_root'] = root
    ann = ds_cfg.get('ann_file')
    if ann:
        paths['ann_file'] = ann if osp.isabs(ann) else osp.join(root, ann)
    for key in _WRAPPER_KEYS:
        inner = ds_cfg.get(key)
        subs = (
            inner if isinstance(inner, list) else
            [inner] if isinstance(inner, dict) else [])
        for i, sub in enumerate(subs):
            for k, v in data_paths(sub).items():
                paths[f'{key}[{i}].{k}'] = v
    return paths


def check_data_paths(cfg: Config, keys: Sequence[str]) -> None:
    """Raise :class:`MissingFileError` naming each missing data path.

    Args:
        cfg (Config): The full config.
        keys (Sequence[str]): Dataloader keys to check, e.g.
            ``('train_dataloader', 'test_dataloader')``.
    """
    missing = []
    for key in keys:
        loader = cfg.get(key)
        if not loader:
            continue
        for what, path in data_paths(as_plain_dict(loader['dataset'])).items():
            if not osp.exists(path):
                missing.append(f'{key}.dataset.{what} = {path}')
    if missing:
        raise MissingFileError(
            'data not found:\n  ' + '\n  '.join(missing) +
            '\nDownload the dataset there, or point the config at it with '
            '`tools/al_train.py CONFIG --data-root /path/to/data/` (moves '
            'every path under the config\'s data_root).')


def dataset_pipeline(ds_cfg: dict) -> Optional[List[dict]]:
    """The pipeline of a dataset config, or of the one a wrapper holds."""
    while 'pipeline' not in ds_cfg and isinstance(ds_cfg.get('dataset'), dict):
        ds_cfg = ds_cfg['dataset']
    return ds_cfg.get('pipeline')


def eval_pipeline(cfg: Config) -> List[dict]:
    """The test-time pipeline of the config (no random augmentation): the
    test (else val) dataloader's; without either, the top-level
    ``test_pipeline`` that mmdet configs define."""
    for key in ('test_dataloader', 'val_dataloader'):
        loader = cfg.get(key)
        if loader:
            pipeline = dataset_pipeline(as_plain_dict(loader['dataset']))
            if pipeline is not None:
                return pipeline
    if cfg.get('test_pipeline'):
        return [as_plain_dict(t) for t in cfg.test_pipeline]
    raise KeyError('the config has no test_dataloader / val_dataloader '
                   'pipeline and no test_pipeline to run the pool inference '
                   'with')


class IdTaggedDataset(Dataset):
    """Items of a :class:`PoolSubsetDataset` in a given id order.

    Each item is the packed sample with an extra ``sample_id`` key; ids may
    repeat (a LiSSA chain may visit an image twice).
    """

    def __init__(self, view: PoolSubsetDataset, ids: Sequence[str]) -> None:
        self.view = view
        index = {sid: i for i, sid in enumerate(view.sample_ids)}
        missing = [i for i in ids if i not in index]
        if missing:
            raise KeyError(f'ids not in this view: {missing[:10]}')
        self.ids = list(ids)
        self.positions = [index[i] for i in ids]

    def __len__(self) -> int:
        return len(self.positions)

    def __getitem__(self, idx: int) -> dict:
        try:
            data = self.view[self.positions[idx]]
        except Exception as e:
            info = self.view.get_data_info(self.positions[idx])
            raise RuntimeError(
                f'cannot load sample {self.ids[idx]!r} '
                f'({info.get("img_path")}): {type(e).__name__}: {e}') from e
        if data is None:
            raise RuntimeError(f'the pipeline returned None for sample '
                               f'{self.ids[idx]!r}')
        data = dict(data)
        data['sample_id'] = self.ids[idx]
        return data


def id_loader(view: PoolSubsetDataset,
              ids: Optional[Sequence[str]] = None,
              num_workers: int = 2) -> DataLoader:
    """Batch-1 loader over ``ids`` (default: all of the view), in order."""
    ds = IdTaggedDataset(view, view.sample_ids if ids is None else ids)
    return DataLoader(
        ds,
        batch_size=1,
        shuffle=False,
        num_workers=num_workers,
        collate_fn=pseudo_collate,
        persistent_workers=False,
        generator=torch.Generator().manual_seed(0))
