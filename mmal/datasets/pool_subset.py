"""A view of any mmengine dataset restricted to a set of stable sample ids.

Active learning trains on the *labeled* part of a pool and scores the
*unlabeled* part. Both are :class:`PoolSubsetDataset` views of the same
underlying dataset, selected by stable id (see :mod:`.sample_id`), never by
position. The restriction is applied to the inner dataset itself (its
in-place ``get_subset_``), so the inner dataset's random retry on a broken
sample (``_rand_another``) stays inside the view.

Example config (default scope ``mmdet``)::

    train_dataloader = dict(dataset=dict(
        type='mmal.PoolSubsetDataset',
        ids_file='work_dirs/x/cycle_0/labeled_ids.json',
        annotation_policy='drop',
        dataset=dict(type='CocoDataset', data_root=..., ann_file=...,
                     pipeline=train_pipeline)))
"""
import copy
import json
from typing import Any, Dict, Iterable, List, Optional, Sequence, Union

from mmengine.dataset import BaseDataset
from mmengine.fileio import get_text
from torch.utils.data import ConcatDataset

from mmal.registry import DATASETS
from .annotation_checks import check_annotations
from .sample_id import collect_sample_ids, sample_id

__all__ = ['PoolSubsetDataset', 'count_boxes', 'load_ids_file']

_MAX_NAMED = 10


def load_ids_file(ids_file: str) -> List[str]:
    """Read sample ids from a JSON file.

    Args:
        ids_file (str): A JSON file holding a list of ids, or a dict with the
            list under the key ``'ids'``.

    Returns:
        list[str]: The ids, as strings, in the file's order.
    """
    data = json.loads(get_text(ids_file))
    if isinstance(data, dict):
        if 'ids' not in data:
            raise ValueError(f'{ids_file}: expected a JSON list of ids or a '
                             f'dict with key "ids", got keys {sorted(data)}.')
        data = data['ids']
    if not isinstance(data, list):
        raise ValueError(f'{ids_file}: expected a JSON list of ids, got '
                         f'{type(data).__name__}.')
    return [str(i) for i in data]


def _unknown_ids_error(unknown: Sequence[str], dataset: Any) -> KeyError:
    named = ', '.join(repr(i) for i in unknown[:_MAX_NAMED])
    more = len(unknown) - _MAX_NAMED
    ann = getattr(dataset, 'ann_file', None) or type(dataset).__name__
    return KeyError(
        f'{len(unknown)} sample id(s) asked for are not in {ann}: {named}' +
        (f' ... and {more} more' if more > 0 else '') +
        ' (filtered out by filter_cfg, or from another dataset?)')


def unserialized(ds_cfg: dict) -> dict:
    """A copy of a dataset config that keeps its samples as Python objects
    (``serialize_data=False``, unless it says otherwise), which a view
    restricts in place; for a ``ConcatDataset``, each of its datasets."""
    ds_cfg = copy.deepcopy(ds_cfg)
    if isinstance(ds_cfg.get('datasets'), list):
        ds_cfg['datasets'] = [unserialized(d) for d in ds_cfg['datasets']]
    else:
        ds_cfg.setdefault('serialize_data', False)
    return ds_cfg


def restrict_(dataset: Any, positions: Sequence[int]) -> None:
    """Keep only the samples at ``positions`` (sorted), in place.

    mmengine datasets do it themselves (``get_subset_``); a
    ``ConcatDataset`` (e.g. VOC2007 + VOC2012 trainval) is restricted
    dataset by dataset, its offsets recomputed.
    """
    parts = getattr(dataset, 'datasets', None)
    if not isinstance(dataset, ConcatDataset) or parts is None:
        dataset.get_subset_(list(positions))
        return
    start = 0
    for part in parts:
        end = start + len(part)
        restrict_(part, [p - start for p in positions if start <= p < end])
        start = end
    ConcatDataset.__init__(dataset, parts)  # the offsets (cumulative_sizes)


@DATASETS.register_module()
class PoolSubsetDataset:
    """A view of a dataset restricted to a set of stable sample ids.

    The view keeps the inner dataset's order (not the order of the requested
    ids), so it is deterministic. On initialisation the inner dataset is
    fully initialised, its annotations are checked
    (:func:`~mmal.datasets.check_annotations`), and it is restricted in place
    to the positions of the requested ids, computed in this process.

    Args:
        dataset (dict | BaseDataset): The inner dataset or its config. A
            config is built with ``mmal.registry.DATASETS`` under the current
            default scope (``'mmdet'`` in mmdet runs), with
            ``serialize_data=False`` unless it says otherwise. An instance is
            deep-copied first, so the caller's dataset is left untouched.
        sample_ids (list, optional): The ids to keep (converted to ``str``).
        ids_file (str, optional): A JSON file with the ids to keep (a list,
            or a dict with key ``'ids'``). At most one of ``sample_ids`` and
            ``ids_file``; with neither, all samples are kept.
        exclude_ids (list, optional): Ids left out of the view, whether
            requested or not (e.g. images that cannot be decoded, see
            :func:`~mmal.datasets.check_images`).
        annotation_policy (str, optional): ``'error'`` or ``'drop'``, see
            :func:`~mmal.datasets.check_annotations`. The check runs on the
            whole inner dataset, so the outcome does not depend on the view.
            None: no check (a view of a split that is used as it is).
        lazy_init (bool): Defer loading to the first use (or to an explicit
            :meth:`full_init`). Defaults to False.

    Raises:
        KeyError: If a requested or excluded id is not in the (filtered)
            inner dataset.
        ValueError: On duplicate ids in the inner dataset, or annotation
            problems under policy ``'error'``.
    """

    def __init__(self,
                 dataset: Union[dict, BaseDataset],
                 sample_ids: Optional[Iterable[Any]] = None,
                 ids_file: Optional[str] = None,
                 annotation_policy: Optional[str] = 'error',
                 lazy_init: bool = False,
                 exclude_ids: Optional[Iterable[Any]] = None) -> None:
        if sample_ids is not None and ids_file is not None:
            raise ValueError('Give at most one of sample_ids and ids_file.')
        if isinstance(dataset, dict):
            self.dataset = DATASETS.build(unserialized(dataset))
        else:
            self.dataset = copy.deepcopy(dataset)
        self._requested = (None if sample_ids is None else
                           [str(i) for i in sample_ids])
        self.ids_file = ids_file
        self._excluded = [str(i) for i in exclude_ids or []]
        self.annotation_policy = annotation_policy
        self.annotation_problems: List[str] = []
        self._sample_ids: List[str] = []
        self._fully_initialized = False
        if not lazy_init:
            self.full_init()

    def full_init(self) -> None:
        """Load, check and restrict the inner dataset (once; then a no-op)."""
        if self.__dict__.get('_fully_initialized', False):
            return
        inner = self.dataset
        inner.full_init()
        if self.annotation_policy is not None:
            self.annotation_problems = check_annotations(
                inner, policy=self.annotation_policy)
        all_ids = collect_sample_ids(inner)
        requested = self._requested
        if requested is None and self.ids_file is not None:
            requested = load_ids_file(self.ids_file)
        if requested is None and self._excluded:
            requested = all_ids
        if requested is not None:
            known = set(all_ids)
            unknown = sorted((set(requested) | set(self._excluded)) - known)
            if unknown:
                raise _unknown_ids_error(unknown, inner)
            wanted = set(requested) - set(self._excluded)
            positions = [i for i, sid in enumerate(all_ids) if sid in wanted]
            restrict_(inner, positions)
            self._sample_ids = [all_ids[i] for i in positions]
        else:
            self._sample_ids = all_ids
        self._fully_initialized = True

    @property
    def sample_ids(self) -> List[str]:
        """list[str]: The ids of the view, in the inner dataset's order."""
        self.full_init()
        return list(self._sample_ids)

    @property
    def metainfo(self) -> dict:
        """dict: The inner dataset's metainfo (a copy)."""
        return self.dataset.metainfo

    def get_data_info(self, idx: int) -> dict:
        """Return the data info of the ``idx``-th sample of the view."""
        self.full_init()
        return self.dataset.get_data_info(idx)

    def __len__(self) -> int:
        self.full_init()
        return len(self.dataset)

    def __getitem__(self, idx: int) -> Any:
        self.full_init()
        return self.dataset[idx]

    def __getattr__(self, name: str) -> Any:
        # Only called when normal lookup fails. Look the inner dataset up in
        # __dict__ directly: during unpickling (dataloader workers) or early
        # in __init__ it is absent, and getattr(self, 'dataset') would
        # recurse.
        if name.startswith('__') or name == 'dataset':
            raise AttributeError(name)
        inner = self.__dict__.get('dataset')
        if inner is None:
            raise AttributeError(name)
        return getattr(inner, name)

    def __repr__(self) -> str:
        n = len(self._sample_ids) if self._fully_initialized else '?'
        return (f'{type(self).__name__}(num_samples={n}, '
                f'dataset={type(self.dataset).__name__}, '
                f'annotation_policy={self.annotation_policy!r})')


def boxes_per_sample(dataset: Any) -> Dict[str, int]:
    """Number of annotated boxes of every sample, by id.

    Args:
        dataset: A dataset with ``__len__`` and ``get_data_info`` (a
            :class:`PoolSubsetDataset` or an initialised ``BaseDataset``).

    Returns:
        dict[str, int]: Id -> instances with ``ignore_flag == 0`` (a missing
        flag counts as 0), in dataset order.
    """
    out = {}
    for pos in range(len(dataset)):
        info = dataset.get_data_info(pos)
        out[sample_id(info)] = sum(1 for inst in info.get('instances') or []
                                   if not inst.get('ignore_flag', 0))
    return out


def count_boxes(dataset: Any, ids: Optional[Iterable[Any]] = None) -> int:
    """Count the annotated boxes of some samples (the annotation cost).

    Args:
        dataset: See :func:`boxes_per_sample`.
        ids (Iterable, optional): Sample ids to count (converted to
            ``str``). Defaults to all samples of ``dataset``.

    Returns:
        int: The number of boxes over the selected samples.

    Raises:
        KeyError: If an id is not in ``dataset``.
    """
    boxes = boxes_per_sample(dataset)
    if ids is None:
        return sum(boxes.values())
    wanted = {str(i) for i in ids}
    unknown = sorted(wanted - set(boxes))
    if unknown:
        raise _unknown_ids_error(unknown, dataset)
    return sum(boxes[i] for i in wanted)
