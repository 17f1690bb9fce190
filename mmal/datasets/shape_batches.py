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


def same_shape_batches(preprocess: Callable[[Dict], Dict],
                       items: Iterable[Dict],
                       batch_size: int,
                       key: Callable[[Dict], str],
                       max_pending: Optional[int] = None) -> Iterator[Dict]:
    """Group preprocessed single images into batches of one padded shape.

    Each item is preprocessed on its own (batch size 1, as the per-image
    path does), then images of equal padded shape are concatenated. A batch
    is released when it is full; when more than ``max_pending`` images wait
    in partial batches, the largest partial batch is released, which bounds
    memory with many different shapes. The order of images changes; results
    are keyed by ``sample_id``.

    Args:
        preprocess (Callable): The model's data preprocessor in test mode,
            ``preprocess(batch_of_one) -> dict(inputs, data_samples)``.
        items (Iterable[dict]): Collated batches of one image (a batch-1
            loader).
        batch_size (int): Images per batch (>= 1).
        key (Callable): ``key(item) -> sample id`` of an item.
        max_pending (int, optional): Defaults to ``4 * batch_size``.

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
        return dict(
            inputs=torch.cat([g[0] for g in group]),
            data_samples=[g[1] for g in group],
            sample_id=[g[2] for g in group])

    for item in items:
        data = preprocess(item)
        inputs = data['inputs']
        if inputs.shape[0] != 1:
            raise ValueError('same_shape_batches takes batches of one image, '
                             f'got {inputs.shape[0]}')
        shape = tuple(inputs.shape[1:])
        pending.setdefault(shape, []).append(
            (inputs, data['data_samples'][0], key(item)))
        if len(pending[shape]) >= batch_size:
            yield release(shape)
        elif sum(len(g) for g in pending.values()) > max_pending:
            yield release(max(pending, key=lambda s: len(pending[s])))
    while pending:
        yield release(next(iter(pending)))
