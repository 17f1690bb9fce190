"""Tensor helpers of the per-image and batched influence passes.

Model outputs are nested lists / tuples / dicts of tensors whose first
dimension is the image; these helpers detach them, cut one image out of
them, turn a batch into per-image cache entries and measure their size.
"""
from typing import Any, Dict, List

import torch


def detach(obj: Any) -> Any:
    """``obj`` with every tensor detached (nested lists / tuples)."""
    if isinstance(obj, torch.Tensor):
        return obj.detach()
    if isinstance(obj, (list, tuple)):
        return type(obj)(detach(o) for o in obj)
    return obj


def image_slice(obj: Any, i: int, copy: bool = False) -> Any:
    """Image ``i`` of batched tensors (nested), keeping the batch dim.

    Args:
        obj: A tensor (B, ...) or nested lists / tuples of them.
        i (int): The image.
        copy (bool): Clone the slices, so that they do not keep the whole
            batch's storage alive.
    """
    if isinstance(obj, torch.Tensor):
        part = obj[i:i + 1]
        return part.clone() if copy else part
    if isinstance(obj, (list, tuple)):
        return type(obj)(image_slice(o, i, copy) for o in obj)
    if isinstance(obj, dict):
        return {k: image_slice(o, i, copy) for k, o in obj.items()}
    return obj


def per_image_entries(data: Dict, key: str, batched: Any) -> List[Dict]:
    """Cache entries of a batch: ``{key: image i's copy of batched,
    'sample': data_samples[i], 'sample_id': sample_id[i]}`` per image."""
    return [{
        key: image_slice(batched, i, copy=True),
        'sample': sample,
        'sample_id': sid
    } for i, (
        sid,
        sample) in enumerate(zip(data['sample_id'], data['data_samples']))]


def tensor_bytes(obj: Any) -> int:
    """Bytes held by the tensors in ``obj`` (nested lists / tuples / dicts)."""
    if isinstance(obj, torch.Tensor):
        return obj.numel() * obj.element_size()
    if isinstance(obj, (list, tuple)):
        return sum(tensor_bytes(o) for o in obj)
    if isinstance(obj, dict):
        return sum(tensor_bytes(o) for o in obj.values())
    return 0
