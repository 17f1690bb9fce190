"""Batches of images that are exactly what each image is on its own.

mmdet pads the images of a batch to the largest one, so an image in a batch
of mixed sizes sees other borders than at batch size 1 (the per-image
definition of ISAL's losses). Images whose padded shape is the same are
batched as they are: the network then computes, image by image, what it
computes at batch size 1.
"""
from collections import OrderedDict
from typing import Callable, Dict, Iterable, Iterator, List, Optional

import torch
from torch import nn


def padded_shape(inputs: torch.Tensor, divisor: int) -> tuple:
    """``(C, H', W')`` of a raw image (C, H, W) padded alone to a multiple
    of ``divisor``."""
    c, h, w = inputs.shape
    return (c, -(-h // divisor) * divisor, -(-w // divisor) * divisor)


def pad_divisor(preprocessor: nn.Module) -> Optional[int]:
    """The ``pad_size_divisor`` of a data preprocessor whose test-mode
    output for a batch of images of one padded shape is, image by image,
    its output for each image alone: mmengine's ``ImgDataPreprocessor``
    (mmdet's ``DetDataPreprocessor``) and mmpretrain's
    ``ClsDataPreprocessor`` normalise each image, then pad it at the
    bottom and right to the batch's shape. None for any other (its
    batches are then preprocessed image by image)."""
    from mmengine.model import ImgDataPreprocessor
    known = isinstance(preprocessor, ImgDataPreprocessor) or type(
        preprocessor).__name__ == 'ClsDataPreprocessor'
    divisor = getattr(preprocessor, 'pad_size_divisor', None)
    return int(divisor) if known and divisor else None


def same_shape_batches(preprocess: Callable[[Dict], Dict],
                       items: Iterable[Dict],
                       batch_size: int,
                       key: Callable[[Dict], str],
                       max_pending: Optional[int] = None,
                       divisor: Optional[int] = None) -> Iterator[Dict]:
    """Group single images into preprocessed batches of one padded shape.

    Images whose padded shape is the same are batched, so that each image
    of a batch is what it is alone (batch size 1, as the per-image path
    computes it). A batch is released when it is full; when more than
    ``max_pending`` images wait in partial batches, the largest partial
    batch is released, which bounds memory with many different shapes.
    The order of images changes; results are keyed by ``sample_id``.

    Two ways to know an image's padded shape:

    * ``divisor`` given (:func:`pad_divisor` of the model's
      preprocessor): from its raw size, rounded up to the divisor; a
      batch is preprocessed in one call;
    * ``divisor=None`` (any preprocessor): each image is preprocessed on
      its own and the results are concatenated (slower for small images).

    Args:
        preprocess (Callable): The model's data preprocessor in test mode,
            ``preprocess(collated batch) -> dict(inputs, data_samples)``.
        items (Iterable[dict]): Collated batches of one image (a batch-1
            loader).
        batch_size (int): Images per batch (>= 1).
        key (Callable): ``key(item) -> sample id`` of an item.
        max_pending (int, optional): Defaults to ``4 * batch_size``.
        divisor (int, optional): The preprocessor's ``pad_size_divisor``
            (see above).

    Yields:
        dict: ``inputs`` (B, C, H, W), ``data_samples`` (list of B) and
        ``sample_id`` (list of B), B <= ``batch_size``.
    """
    if batch_size < 1:
        raise ValueError(f'batch_size must be >= 1, got {batch_size}')
    max_pending = max_pending or 4 * batch_size
    pending: 'OrderedDict[tuple, List]' = OrderedDict()

    def release(shape) -> Dict:
        group = pending.pop(shape)
        if divisor is None:  # preprocessed one by one
            return dict(
                inputs=torch.cat([g[0] for g in group]),
                data_samples=[g[1] for g in group],
                sample_id=[g[2] for g in group])
        data = preprocess(
            dict(
                inputs=[g[0] for g in group],
                data_samples=[g[1] for g in group]))
        return dict(
            inputs=data['inputs'],
            data_samples=list(data['data_samples']),
            sample_id=[g[2] for g in group])

    for item in items:
        if len(item['inputs']) != 1:
            raise ValueError('same_shape_batches takes batches of one image,'
                             f' got {len(item["inputs"])}')
        if divisor is None:
            data = preprocess(item)
            entry = (data['inputs'], data['data_samples'][0], key(item))
            shape = tuple(data['inputs'].shape[1:])
        else:
            entry = (item['inputs'][0], item['data_samples'][0], key(item))
            shape = padded_shape(item['inputs'][0], divisor)
        pending.setdefault(shape, []).append(entry)
        if len(pending[shape]) >= batch_size:
            yield release(shape)
        elif sum(len(g) for g in pending.values()) > max_pending:
            yield release(max(pending, key=lambda s: len(pending[s])))
    while pending:
        yield release(next(iter(pending)))
