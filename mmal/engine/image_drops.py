"""Images the pipeline cannot load: found before cycle 0, kept out of a run.

Before cycle 0 the driver decodes every image of the pool and of the val and
test splits with the config's ``LoadImageFromFile`` settings
(:func:`~mmal.datasets.check_images`; results cached in
``<work_dir>/image_checks.json``), then applies ``al_cfg.annotation_policy``:

* ``'error'``: one :class:`~mmal.datasets.UndecodableImageError` names every
  such image (split, id, path, what failed);
* ``'drop'``: the images are left out of the run. Pool images leave the
  pool (never labeled, never selected); val / test images leave the views of
  those splits, and a COCO annotation file of the split's evaluator is
  rewritten without them, so the metric does not count their boxes as
  missed. They are recorded in ``meta['dropped_images']`` of the state.

Once dropped, an image stays out of the run (work dir), even if the file is
repaired: the pool and the test set of an experiment do not change between
its cycles. A pool image that was labeled in an earlier cycle of the run and
no longer decodes is an error under both policies.
"""
import copy
import logging
import os.path as osp
from typing import Any, Dict, List, Optional, Sequence

from mmengine.config import Config
from mmengine.fileio import load
from mmengine.logging import print_log

from mmal.datasets import (BadImage, UndecodableImageError, check_images,
                           image_load_cfg)
from mmal.datasets.image_checks import undecodable_message
from mmal.datasets.pool_data import (as_plain_dict, dataset_pipeline,
                                     eval_pipeline, replace_pipeline,
                                     split_wrappers)
from mmal.datasets.pool_subset import unserialized
from mmal.registry import DATASETS
from mmal.structures import ALState
from mmal.utils.distributed import broadcast_from_master, is_master, sync
from mmal.utils.errors import DataError
from mmal.utils.fileio import atomic_write_json

CACHE_FILE = 'image_checks.json'
STATE_KEY = 'dropped_images'
#: Split name -> dataloader key; the pool is the training dataset.
SPLITS = dict(
    pool='train_dataloader', val='val_dataloader', test='test_dataloader')
_EVALUATORS = dict(val='val_evaluator', test='test_evaluator')


def _split_load_cfgs(cfg: Config, split: str, ds_cfg: dict) -> List[dict]:
    """How the pipelines that read ``split`` load its images."""
    pipelines = [dataset_pipeline(ds_cfg) or []]
    if split == 'pool' and (cfg.get('test_dataloader')
                            or cfg.get('val_dataloader')):
        pipelines.append(eval_pipeline(cfg))  # the selection passes
    loads = [image_load_cfg(p) for p in pipelines]
    return [c for c in loads if c is not None]


def _build_plain(ds_cfg: dict) -> Any:
    """The dataset of a config, annotations only, fully initialised."""
    dataset = DATASETS.build(unserialized(replace_pipeline(ds_cfg, [])))
    if hasattr(dataset, 'full_init'):
        dataset.full_init()
    return dataset


def find_undecodable(cfg: Config,
                     cache_file: str,
                     logger: Any = 'current') -> Dict[str, List[BadImage]]:
    """Decode every image of the pool, val and test splits of a config.

    Call it on every rank (see :func:`~mmal.datasets.check_images`). A split
    whose pipeline has no ``LoadImageFromFile`` is skipped with a message.

    Args:
        cfg (Config): The run's config.
        cache_file (str): The decoding cache.
        logger: mmengine logger or its name.

    Returns:
        dict[str, list[BadImage]]: The images that cannot be loaded, by split
        (``'pool'``, ``'val'``, ``'test'``); splits without any are absent.
    """
    found: Dict[str, List[BadImage]] = {}
    done: Dict[str, List[BadImage]] = {}  # test_dataloader = val_dataloader
    for split, key in SPLITS.items():
        loader = cfg.get(key)
        if not loader:
            continue
        # the images are the wrapped dataset's (a mosaic wrapper's own
        # pipeline loads none)
        ds_cfg = split_wrappers(loader['dataset'])[1]
        loads = _split_load_cfgs(cfg, split, ds_cfg)
        if not loads:
            print_log(
                f'{key}: no LoadImageFromFile in its pipeline; its '
                'images are not decoded before cycle 0', logger)
            continue
        memo = repr((ds_cfg, loads))
        if memo not in done:
            done[memo] = check_images(
                _build_plain(ds_cfg),
                loads,
                cache_file,
                logger=logger,
                what=split)
        if done[memo]:
            found[split] = done[memo]
    return found


def _as_records(images: Sequence[BadImage]) -> List[dict]:
    return [dict(id=b.sample_id, path=b.path, reason=b.reason) for b in images]


def _as_bad(records: Dict[str, List[dict]]) -> Dict[str, List[BadImage]]:
    return {
        split: [BadImage(r['id'], r['path'], r['reason']) for r in recs]
        for split, recs in records.items()
    }


def _merge(previous: Dict[str, List[dict]],
           found: Dict[str, List[BadImage]]) -> Dict[str, List[dict]]:
    """Earlier drops (kept, with their reason) plus new ones, by split."""
    merged = {}
    for split in SPLITS:
        records = list(previous.get(split, []))
        known = {r['id'] for r in records}
        records += [
            r for r in _as_records(found.get(split, []))
            if r['id'] not in known
        ]
        if records:
            merged[split] = records
    return merged


def _leave_pool(state: ALState, dropped: Dict[str, List[dict]],
                state_path: str, logger: Any) -> None:
    """Take newly dropped images out of a saved state's pool (rank 0 saves).

    Raises:
        DataError: a dropped image was labeled in an earlier cycle.
    """
    in_pool = set(state.pool.pool_ids)
    new = [r for r in dropped.get('pool', []) if r['id'] in in_pool]
    labeled = [
        dict(r, reason=f'{r["reason"]} (labeled in cycle {c})')
        for r, c in ((r, state.pool.cycle_of(r['id'])) for r in new)
        if c is not None
    ]
    if labeled:
        raise DataError(
            undecodable_message(
                _as_bad({'pool': labeled}),
                f'They are labeled images of the run in {state_path}: the '
                'finished cycles were trained on them. Restore the files, '
                'or start the experiment again in a new --work-dir.'))
    if not new:
        return
    state.pool.remove([r['id'] for r in new])
    state.meta[STATE_KEY] = copy.deepcopy(dropped)
    if is_master():
        state.save(state_path)
    sync()
    print_log(
        f'{len(new)} unlabeled image(s) taken out of the pool of '
        f'{state_path}: {[r["id"] for r in new]}', logger, logging.WARNING)


def _filtered_ann_file(ann_file: str, drop: set, out_file: str,
                       backend_args: Optional[dict], logger: Any) -> bool:
    """Rank 0 writes ``ann_file`` without the images ``drop`` (COCO
    format); False when it is not a COCO file."""
    ok = True
    if is_master():
        data = load(ann_file, backend_args=backend_args)
        ok = isinstance(data, dict) and isinstance(data.get('images'), list)
        if ok:
            data = dict(data)
            data['images'] = [
                im for im in data['images'] if str(im.get('id')) not in drop
            ]
            data['annotations'] = [
                a for a in data.get('annotations', [])
                if str(a.get('image_id')) not in drop
            ]
            atomic_write_json(out_file, data)
        else:
            print_log(
                f'{ann_file} is not a COCO annotation file: its evaluator '
                f'still counts the {len(drop)} dropped image(s)', logger,
                logging.WARNING)
    sync()
    return broadcast_from_master(ok)


def _evaluator_list(evaluator: Any) -> List[dict]:
    if isinstance(evaluator, dict):
        return [evaluator]
    return list(evaluator or [])


class ImageDrops:
    """Images left out of a run, by split, and how its Runners skip them.

    Args:
        dropped (dict, optional): Split -> records ``dict(id, path, reason)``.
        ann_files (dict, optional): Split -> {evaluator ``ann_file`` ->
            the same file without the dropped images}.
    """

    def __init__(
            self,
            dropped: Optional[Dict[str, List[dict]]] = None,
            ann_files: Optional[Dict[str, Dict[str, str]]] = None) -> None:
        self.dropped = dict(dropped or {})
        self.ann_files = dict(ann_files or {})

    def ids(self, split: str) -> List[str]:
        """Ids left out of ``split`` (``'pool'``, ``'val'`` or ``'test'``)."""
        return [r['id'] for r in self.dropped.get(split, [])]

    def ids_by_split(self) -> Dict[str, List[str]]:
        """Split -> ids left out of it (splits with none are absent)."""
        return {s: self.ids(s) for s in self.dropped}

    def record(self, state: ALState) -> bool:
        """Put the drops in ``state.meta``; True when that changed it."""
        if not self.dropped or state.meta.get(STATE_KEY) == self.dropped:
            return False
        state.meta[STATE_KEY] = copy.deepcopy(self.dropped)
        return True

    def apply_to(self, runner_cfg: Config) -> None:
        """Leave the dropped val / test images out of a Runner's config.

        The split's dataset becomes a ``mmal.PoolSubsetDataset`` without
        them (no annotation check: the split is used as it is), and the
        ``ann_file`` of its evaluator the copy without them.
        """
        for split, ev_key in _EVALUATORS.items():
            key, ids = SPLITS[split], self.ids(split)
            if not ids or not runner_cfg.get(key):
                continue
            loader = copy.deepcopy(runner_cfg[key])  # val may alias test
            loader['dataset'] = dict(
                type='mmal.PoolSubsetDataset',
                dataset=as_plain_dict(loader['dataset']),
                exclude_ids=ids,
                annotation_policy=None)
            runner_cfg[key] = loader
            evaluators = copy.deepcopy(_evaluator_list(runner_cfg.get(ev_key)))
            for ev in evaluators:
                if ev.get('ann_file') in self.ann_files.get(split, {}):
                    ev['ann_file'] = self.ann_files[split][ev['ann_file']]
            if evaluators:
                runner_cfg[ev_key] = (
                    evaluators[0]
                    if isinstance(runner_cfg[ev_key], dict) else evaluators)


def check_run_images(cfg: Config,
                     work_dir: str,
                     state_path: str,
                     policy: str,
                     logger: Any = 'current') -> ImageDrops:
    """Decode every image of a run before cycle 0; apply the policy.

    Call it on every rank, before the state is loaded or made: under
    ``'drop'``, pool images that became undecodable since the state was
    written are taken out of its pool (saved by rank 0).

    Args:
        cfg (Config): The run's config.
        work_dir (str): The run's work dir (holds the cache and the
            filtered annotation files).
        state_path (str): ``al_state.json`` of the run (may not exist).
        policy (str): ``al_cfg.annotation_policy``.
        logger: mmengine logger or its name.

    Returns:
        ImageDrops: What is left out of the run (earlier drops included).

    Raises:
        UndecodableImageError: Under ``'error'``, naming every image that
            cannot be loaded.
        DataError: A labeled pool image cannot be loaded any more.
    """
    found = find_undecodable(cfg, osp.join(work_dir, CACHE_FILE), logger)
    if found and policy == 'error':
        raise UndecodableImageError(
            undecodable_message(
                found, 'Replace these files with good copies, or set '
                'al_cfg.annotation_policy="drop" to leave them out of the '
                'run.'))
    state = None
    if broadcast_from_master(ALState.exists(state_path)):
        state = ALState.load(state_path)
    dropped = _merge(state.meta.get(STATE_KEY, {}) if state else {}, found)
    if state is not None:
        _leave_pool(state, dropped, state_path, logger)
    ann_files: Dict[str, Dict[str, str]] = {}
    for split, ev_key in _EVALUATORS.items():
        drop = {r['id'] for r in dropped.get(split, [])}
        for ev in _evaluator_list(cfg.get(ev_key)) if drop else []:
            ann_file = ev.get('ann_file')
            if not ann_file or ann_file in ann_files.get(split, {}):
                continue
            out = osp.join(work_dir, 'image_checks',
                           f'{split}_{osp.basename(ann_file)}')
            if _filtered_ann_file(ann_file, drop, out, ev.get('backend_args'),
                                  logger):
                ann_files.setdefault(split, {})[ann_file] = out
    if dropped:
        print_log(
            undecodable_message(
                _as_bad(dropped), 'They are left out of this run '
                f'(al_cfg.annotation_policy="drop"), recorded in '
                f'{state_path}.'), logger, logging.WARNING)
    return ImageDrops(dropped, ann_files)
