"""A deterministic synthetic classification dataset that needs no download.

One shape per image (``'circle'``, ``'cross'``, ``'square'``,
``'triangle'``) of random colour, size and position on a textured
background, with pixel noise, written as PNGs in mmpretrain's
folder-per-class layout, readable by :class:`mmal.CustomDataset` (or
mmpretrain's ``CustomDataset``) with ``data_root=out_dir`` and
``data_prefix='train'`` / ``'test'``::

    out_dir/train/<class>/<index:05d>.png
    out_dir/test/<class>/<index:05d>.png
    out_dir/meta.json

The colour says nothing about the class, so a model has to learn the shape.
The same arguments always give the same files; a second call with the same
arguments finds the complete dataset and returns at once.
"""
import colorsys
import os
import os.path as osp
import shutil
from typing import Dict, Sequence, Tuple

import cv2
import numpy as np

from mmal.utils.errors import ConfigError, DataError
from mmal.utils.fileio import atomic_write_json, read_json
from .synthetic import SHAPES_CLASSES, _background, _shape_mask

__all__ = ['SHAPES_CLS_CLASSES', 'generate_shapes_classification']

#: The classes of the dataset, in label order: sorted, as the folder names
#: are sorted by mmpretrain's folder-per-class loading.
SHAPES_CLS_CLASSES = ('circle', 'cross', 'square', 'triangle')

_META = 'meta.json'
_GENERATOR_VERSION = 1
_SPLITS = ('train', 'test')
# Shape side as a fraction of the image side, and pixel noise (std).
_SIDE_RANGE = (0.35, 0.85)
_NOISE_STD = 8.0


def _cross_mask(rng: np.random.Generator, x0: int, y0: int, side: int,
                size: int) -> np.ndarray:
    """A plus sign filling the ``side``-px square at ``(x0, y0)``;
    ``(size, size)`` uint8 mask."""
    mask = np.zeros((size, size), np.uint8)
    bar = max(2, int(round(side * rng.uniform(0.2, 0.35))))
    lo = x0 + (side - bar) // 2
    mask[y0:y0 + side, lo:lo + bar] = 255
    lo = y0 + (side - bar) // 2
    mask[lo:lo + bar, x0:x0 + side] = 255
    return mask


def _random_colour(rng: np.random.Generator) -> Tuple[int, int, int]:
    """A saturated BGR colour of any hue."""
    r, g, b = colorsys.hsv_to_rgb(
        rng.uniform(0, 1), rng.uniform(0.5, 1.0), rng.uniform(0.35, 1.0))
    return int(b * 255), int(g * 255), int(r * 255)


def _make_image(rng: np.random.Generator, name: str, size: int) -> np.ndarray:
    """One ``(size, size, 3)`` uint8 BGR image of the shape ``name``."""
    img = _background(rng, size)
    side = int(
        rng.integers(
            max(4, round(_SIDE_RANGE[0] * size)),
            round(_SIDE_RANGE[1] * size) + 1))
    x0 = int(rng.integers(0, size - side + 1))
    y0 = int(rng.integers(0, size - side + 1))
    if name == 'cross':
        mask = _cross_mask(rng, x0, y0, side, size)
    else:
        mask = _shape_mask(rng, SHAPES_CLASSES.index(name), x0, y0, side, size)
    img[mask > 0] = _random_colour(rng)
    noisy = img + rng.normal(0, _NOISE_STD, size=img.shape)
    return np.clip(noisy, 0, 255).astype(np.uint8)


def _read_meta(out_dir: str) -> dict:
    """The generator's ``meta.json`` in ``out_dir``; ``{}`` if absent or
    unreadable (then the dataset is written again)."""
    try:
        return read_json(osp.join(out_dir, _META))
    except (OSError, ValueError):
        return {}


def _is_complete(out_dir: str, meta: dict) -> bool:
    """Whether every class folder holds exactly the PNGs ``meta`` counts."""
    if not meta.get('complete'):
        return False
    for split in _SPLITS:
        for name, count in meta['num_per_class'][split].items():
            folder = osp.join(out_dir, split, name)
            if not osp.isdir(folder):
                return False
            pngs = [f for f in os.listdir(folder) if f.endswith('.png')]
            if len(pngs) != count:
                return False
    return True


def _result(out_dir: str, meta: dict, skipped: bool) -> dict:
    out = dict(
        out_dir=out_dir,
        classes=tuple(meta['classes']),
        num_images=dict(meta['num_images']),
        num_per_class={
            s: dict(v)
            for s, v in meta['num_per_class'].items()
        },
        skipped=skipped)
    for split in _SPLITS:
        out[split] = dict(data_root=out_dir, data_prefix=split)
    return out


def generate_shapes_classification(
        out_dir: str,
        num_train: int = 600,
        num_test: int = 200,
        img_size: int = 32,
        seed: int = 0,
        classes: Sequence[str] = SHAPES_CLS_CLASSES) -> dict:
    """Write a small synthetic classification dataset (deterministic).

    Each ``img_size x img_size`` PNG holds one shape with a side of
    35%..85% of the image, of a random colour, at a random position, on a
    striped or smooth random background, plus Gaussian pixel noise (std 8).
    Labels are balanced: image ``k`` of a split has class
    ``k % len(classes)`` of a seeded permutation.

    Args:
        out_dir (str): Output folder (created). If it holds a dataset of
            this generator with other arguments, that one is replaced.
        num_train (int): Number of training images (>= number of classes).
        num_test (int): Number of test images (>= number of classes).
        img_size (int): Image side in pixels (>= 16).
        seed (int): Seed; the splits use independent streams.
        classes (Sequence[str]): Shape names, a subset of
            :data:`SHAPES_CLS_CLASSES` (at least 2).

    Returns:
        dict: ``out_dir`` (absolute), ``classes`` (sorted: the label order
        of folder-per-class loading), ``num_images`` (``{split: n}``),
        ``num_per_class`` (``{split: {class: n}}``), ``train`` / ``test``
        (``data_root`` and ``data_prefix`` for ``mmal.CustomDataset``) and
        ``skipped`` (True if a complete matching dataset was found and
        nothing was written).

    Raises:
        ConfigError: For unknown classes or too few images or pixels.
        DataError: If ``out_dir`` holds ``train/`` or ``test/`` that this
            generator did not write (nothing is deleted then).
    """
    names = tuple(sorted(set(classes)))
    unknown = [c for c in names if c not in SHAPES_CLS_CLASSES]
    if unknown or len(names) < 2:
        raise ConfigError(
            f'classes must be at least 2 of {SHAPES_CLS_CLASSES}, got '
            f'{tuple(classes)}.')
    if min(num_train, num_test) < len(names) or img_size < 16:
        raise ConfigError(
            f'Need num_train and num_test >= {len(names)} (one image per '
            f'class) and img_size >= 16; got {num_train}, {num_test}, '
            f'{img_size}.')
    args = dict(
        num_train=int(num_train),
        num_test=int(num_test),
        img_size=int(img_size),
        seed=int(seed),
        classes=list(names),
        version=_GENERATOR_VERSION)
    out_dir = osp.abspath(out_dir)
    meta = _read_meta(out_dir)
    if meta.get('args') == args and _is_complete(out_dir, meta):
        return _result(out_dir, meta, skipped=True)

    if meta.get('generator') == __name__:
        # ours (other arguments, or interrupted): start afresh so that no
        # stale image stays in a class folder
        for split in _SPLITS:
            shutil.rmtree(osp.join(out_dir, split), ignore_errors=True)
    else:
        foreign = [
            osp.join(out_dir, s) for s in _SPLITS
            if osp.isdir(osp.join(out_dir, s))
            and os.listdir(osp.join(out_dir, s))
        ]
        if foreign:
            raise DataError(
                f'{foreign[0]} exists and was not written by '
                f'{__name__} (no {_META}); refusing to write the demo '
                'dataset over it. Choose an empty out_dir.')
    os.makedirs(out_dir, exist_ok=True)
    meta = dict(generator=__name__, args=args, complete=False)
    atomic_write_json(osp.join(out_dir, _META), meta)

    num_images: Dict[str, int] = {}
    num_per_class: Dict[str, Dict[str, int]] = {}
    for split_idx, (split,
                    n) in enumerate(zip(_SPLITS, (num_train, num_test))):
        rng = np.random.default_rng([seed, split_idx])
        labels = rng.permutation(np.arange(n) % len(names))
        for name in names:
            os.makedirs(osp.join(out_dir, split, name), exist_ok=True)
        for k, label in enumerate(labels):
            name = names[int(label)]
            img = _make_image(rng, name, img_size)
            path = osp.join(out_dir, split, name, f'{k:05d}.png')
            if not cv2.imwrite(path, img):
                raise OSError(f'Could not write {path}')
        num_images[split] = int(n)
        num_per_class[split] = {
            name: int(np.sum(labels == i))
            for i, name in enumerate(names)
        }

    # marked complete last: an interrupted run is redone by the next call
    meta.update(
        classes=list(names),
        num_images=num_images,
        num_per_class=num_per_class,
        complete=True)
    atomic_write_json(osp.join(out_dir, _META), meta)
    return _result(out_dir, meta, skipped=False)
