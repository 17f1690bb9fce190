"""Decode every image of a dataset once, the way its pipeline will.

A truncated JPEG passes a file-exists check, ``cv2.imread`` and PIL's
``open()`` / ``verify()``, but ``mmcv.imfrombytes`` (OpenCV's ``imdecode``,
what ``LoadImageFromFile`` uses) returns None on it, and training fails in a
DataLoader worker with ``AssertionError: failed to load image``, possibly
many cycles into a run. :func:`check_images` decodes every image with the
backend, flag and ``backend_args`` of the config's ``LoadImageFromFile``
(read with :func:`image_load_cfg`) and reports the ones that fail.

Results are cached in a JSON file keyed by path, file size and
modification time (``st_mtime_ns``): a rerun only decodes new or changed
files. A stat is free where a content hash would read every byte again; a
file rewritten in place (a re-download, a repair) gets a new mtime.
"""
import json
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from typing import (Any, Dict, Iterable, List, NamedTuple, Optional, Sequence,
                    Tuple, Union)

import mmcv
from mmengine.fileio import FileClient, LocalBackend, get, get_file_backend
from mmengine.logging import print_log

from mmal.utils.distributed import gather_or_raise, is_master, shard, sync
from mmal.utils.errors import DataError
from mmal.utils.fileio import atomic_write_text, read_json
from mmal.utils.progress import track_progress
from .sample_id import sample_id

__all__ = [
    'BadImage', 'UndecodableImageError', 'check_images', 'image_load_cfg',
    'undecodable_message'
]

CACHE_FORMAT = 1
# mmcv.transforms.LoadImageFromFile's defaults
_LOAD_DEFAULTS = dict(
    color_type='color',
    imdecode_backend='cv2',
    backend_args=None,
    file_client_args=None)


class BadImage(NamedTuple):
    """An image that the pipeline cannot load.

    Attributes:
        sample_id (str): Its stable id (see :func:`~mmal.datasets.sample_id`).
        path (str): ``img_path`` of the sample.
        reason (str): What failed (reading the file or decoding it).
    """
    sample_id: str
    path: str
    reason: str


class UndecodableImageError(DataError):
    """Images of the data cannot be loaded by the pipeline (a
    ``ValueError``)."""


def _type_name(transform: dict) -> str:
    t = transform.get('type', '')
    return t if isinstance(t, str) else getattr(t, '__name__', '')


def image_load_cfg(pipeline: Sequence[dict]) -> Optional[Dict[str, Any]]:
    """How a pipeline loads its images: its ``LoadImageFromFile`` settings.

    Args:
        pipeline (Sequence[dict]): Transform configs of a dataset.

    Returns:
        dict | None: ``color_type``, ``imdecode_backend``, ``backend_args``
        and ``file_client_args`` of the first ``LoadImageFromFile`` (any
        scope prefix), defaults filled in; None when the pipeline has none
        (its images are not files mmal can decode in advance).
    """
    for transform in pipeline:
        if _type_name(transform).split('.')[-1] == 'LoadImageFromFile':
            return {k: transform.get(k, d) for k, d in _LOAD_DEFAULTS.items()}
    return None


def _cfg_key(load_cfg: Dict[str, Any]) -> str:
    return json.dumps(load_cfg, sort_keys=True, default=str)


def _read_bytes(path: str, load_cfg: Dict[str, Any]) -> bytes:
    if load_cfg['file_client_args'] is not None:  # deprecated in mmcv 2
        return FileClient.infer_client(load_cfg['file_client_args'],
                                       path).get(path)
    return get(path, backend_args=load_cfg['backend_args'])


def _decode(path: str, load_cfg: Dict[str, Any]) -> Optional[str]:
    """Load one image as ``LoadImageFromFile`` does; what failed, or None."""
    try:
        data = _read_bytes(path, load_cfg)
    except Exception as e:
        return f'cannot read the file: {type(e).__name__}: {e}'
    how = (f'mmcv.imfrombytes(backend={load_cfg["imdecode_backend"]!r}, '
           f'flag={load_cfg["color_type"]!r})')
    try:
        img = mmcv.imfrombytes(
            data,
            flag=load_cfg['color_type'],
            backend=load_cfg['imdecode_backend'])
    except Exception as e:
        return f'{how} raised {type(e).__name__}: {e}'
    if img is None or img.size == 0:
        return (f'{how} returned no image ({len(data)} bytes): a truncated '
                'or corrupt file')
    return None


def _stamp(path: str, load_cfg: Dict[str, Any]) -> Optional[List[int]]:
    """``[size, mtime_ns]`` of a local file; None when it cannot be cached
    (not a local file, or missing)."""
    if load_cfg['file_client_args'] is not None:
        return None
    try:
        backend = get_file_backend(path, backend_args=load_cfg['backend_args'])
        if not isinstance(backend, LocalBackend):
            return None
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    return [st.st_size, st.st_mtime_ns]


def _read_cache(cache_file: Optional[str], logger: Any) -> dict:
    if not cache_file or not os.path.isfile(cache_file):
        return {}
    try:
        data = read_json(cache_file)
    except ValueError as e:
        print_log(f'{e}: decoding every image again', logger, logging.WARNING)
        return {}
    if not isinstance(data, dict) or data.get('format') != CACHE_FORMAT:
        return {}
    return data.get('checks', {})


def _samples(dataset: Any) -> List[Tuple[str, str]]:
    """``(sample id, img_path)`` of every sample that has an image path."""
    if isinstance(dataset, (list, tuple)):
        infos: Iterable[dict] = dataset
    else:
        infos = (dataset.get_data_info(i) for i in range(len(dataset)))
    return [(sample_id(info), str(info['img_path'])) for info in infos
            if info.get('img_path') is not None]


def undecodable_message(bad: Dict[str, Sequence[BadImage]],
                        hint: str = '') -> str:
    """One message naming every image that cannot be loaded.

    Args:
        bad (dict[str, Sequence[BadImage]]): Bad images by split name
            (``'pool'``, ``'val'``, ...).
        hint (str): A last line (what to do).

    Returns:
        str: A header with the count, then one line per image: split, id,
        path and reason.
    """
    total = sum(len(v) for v in bad.values())
    lines = [f'{total} image(s) cannot be loaded by the pipeline:']
    for split, images in bad.items():
        lines += [
            f'  - {split}: sample {b.sample_id!r}: {b.path}: {b.reason}'
            for b in images
        ]
    if hint:
        lines.append(hint)
    return '\n'.join(lines)


def check_images(dataset: Any,
                 load_cfgs: Union[Dict[str, Any], Sequence[Dict[str, Any]]],
                 cache_file: Optional[str] = None,
                 policy: Optional[str] = None,
                 logger: Any = 'current',
                 what: str = 'images',
                 num_threads: Optional[int] = None) -> List[BadImage]:
    """Decode every image of a dataset the way its pipeline will.

    Each distinct image path is read through :func:`mmengine.fileio.get`
    (so ``backend_args`` apply) and decoded with :func:`mmcv.imfrombytes`,
    once per load config (the pool is loaded by the training and by the
    test pipeline; they may differ). Under ``torch.distributed`` the paths
    are shared out over the ranks and the results gathered; call it on
    every rank. Rank 0 writes the cache.

    Args:
        dataset: An initialised dataset (``__len__`` + ``get_data_info``)
            or a list of data infos. Samples without ``img_path`` are
            skipped.
        load_cfgs (dict | Sequence[dict]): Outputs of
            :func:`image_load_cfg`.
        cache_file (str, optional): JSON cache of earlier results, keyed by
            load config, path, size and mtime; updated (atomically) with
            this call's results. None: no cache.
        policy (str, optional): ``'error'``: raise if an image fails;
            ``'drop'``: log a warning naming them; None: only return them.
        logger: mmengine logger or its name, for progress and warnings.
        what (str): Name of the data in messages, e.g. ``'pool'``.
        num_threads (int, optional): Decoding threads per process (OpenCV
            releases the GIL). Defaults to ``min(8, cpus)``.

    Returns:
        list[BadImage]: The samples whose image cannot be loaded, in
        dataset order (a sample is listed once, with the first failure).

    Raises:
        UndecodableImageError: Under ``'error'``, naming every bad image.
    """
    if policy not in (None, 'error', 'drop'):
        raise ValueError(f'policy must be None, "error" or "drop", got '
                         f'{policy!r}')
    if isinstance(load_cfgs, dict):
        load_cfgs = [load_cfgs]
    load_cfgs = list({_cfg_key(c): dict(c) for c in load_cfgs}.values())
    samples = _samples(dataset)
    paths = sorted({p for _, p in samples})
    cache: dict = {}  # rank 0's

    def plan() -> Tuple[Dict[Tuple[str, str], Optional[str]], list]:
        """Rank 0: cached results and what is left to decode."""
        cache.update(_read_cache(cache_file, logger))
        known, todo = {}, []
        for cfg in load_cfgs:
            key = _cfg_key(cfg)
            cached = cache.get(key, {})
            for path in paths:
                stamp = _stamp(path, cfg)
                hit = cached.get(path)
                if stamp is not None and hit and hit[:2] == stamp:
                    known[(key, path)] = hit[2]
                else:
                    todo.append((key, path, stamp))
        return known, todo

    known, todo = gather_or_raise(lambda: plan() if is_master() else None,
                                  'the image check')[0]
    by_key = {_cfg_key(c): c for c in load_cfgs}
    threads = num_threads or min(8, os.cpu_count() or 1)

    def decode_share() -> List[Optional[str]]:
        mine = shard(todo)
        if not mine:
            return []
        with ThreadPoolExecutor(max_workers=threads) as pool:
            results = pool.map(lambda t: _decode(t[1], by_key[t[0]]), mine)
            return list(
                track_progress(
                    results,
                    len(mine),
                    f'decoding the {what} images',
                    logger,
                    interval=max(1000,
                                 len(mine) // 10)))

    shares = gather_or_raise(decode_share, 'the image check')
    world = len(shares)
    for rank, share in enumerate(shares):
        for (key, path, _), reason in zip(todo[rank::world], share):
            known[(key, path)] = reason
    if todo and cache_file and is_master():
        for key, path, stamp in todo:
            if stamp is not None:
                cache.setdefault(key, {})[path] = stamp + [known[(key, path)]]
        # compact: one entry per image of the dataset
        atomic_write_text(
            cache_file,
            json.dumps(dict(format=CACHE_FORMAT, checks=cache)) + '\n')
    sync()
    bad = []
    for sid, path in samples:
        reason = next((known[(k, path)]
                       for k in by_key if known[(k, path)] is not None), None)
        if reason is not None:
            bad.append(BadImage(sid, path, reason))
    print_log(
        f'{what}: {len(paths)} image file(s) checked ({len(todo)} '
        f'decoding(s) now, {len(known) - len(todo)} result(s) of files '
        f'unchanged since an earlier check); {len(bad)} cannot be loaded',
        logger)
    if bad and policy == 'error':
        raise UndecodableImageError(undecodable_message({what: bad}))
    if bad and policy == 'drop':
        print_log(
            undecodable_message({what: bad},
                                'left out (annotation_policy="drop")'), logger,
            logging.WARNING)
    return bad
