"""Float64 influence computations through mmdet, for exact comparisons
(tests and benchmarks; runs never use it).

Two paths that compute the same gradient (batched vs batch-1, cached head
inputs vs a full pass) agree only up to float32 rounding, and that rounding
differs between CPU models, BLAS builds, thread counts and batch sizes.
Claims that two paths are *equal* are therefore checked in float64, where
the rounding is ~1e-16 and the tolerance can come from the magnitudes.

mmdet and mmcv do not run in float64 as they are:

* mmengine's and mmdet's data preprocessors call ``.float()`` on the images,
  and ``FCOSHead.forward_single`` calls ``.float()`` on ``bbox_pred``;
* mmcv 2.1's CPU ``nms`` refuses float64 boxes;
* some heads write values computed from the predictions into targets they
  built in the dtype of float32 priors or boxes.

:func:`float64_computation` casts the model to float64 and, while it is
active, lets ``Tensor.float()`` leave float64 tensors as they are and hands
mmcv's NMS kernel float32 copies of its boxes and scores, and an index put
casts its value to its target's dtype. The discrete
choices of a detector (NMS, hence predictions and proposals) are thus made
on float32-rounded values of float64 quantities: two paths whose float64
values agree to ~1e-16 round to the same float32 values (except at an exact
rounding boundary, with probability ~1e-9 per value), so they make the same
choices, and their losses and gradients are compared in float64.
"""
import contextlib
import importlib
from typing import Any, Dict, Iterator

import torch
from torch import nn

__all__ = ['float64_computation', 'float64_mode']


class _NmsInFloat32:
    """Stands for mmcv's compiled ops module: ``nms`` gets float32 copies."""

    def __init__(self, ext_module) -> None:
        self._ext = ext_module

    def __getattr__(self, name: str):
        return getattr(self._ext, name)

    def nms(self, boxes: torch.Tensor, scores: torch.Tensor, *args,
            **kwargs) -> torch.Tensor:
        return self._ext.nms(
            boxes.to(torch.float32), scores.to(torch.float32), *args, **kwargs)


@contextlib.contextmanager
def _keep_float64() -> Iterator[None]:
    """``Tensor.float()`` leaves float64 tensors alone (others as usual)."""
    original = torch.Tensor.float
    own = 'float' in vars(torch.Tensor)  # else inherited from TensorBase

    def float_(self: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        if self.dtype == torch.float64:
            return self
        return original(self, *args, **kwargs)

    torch.Tensor.float = float_
    try:
        yield
    finally:
        if own:
            torch.Tensor.float = original
        else:
            del torch.Tensor.float


@contextlib.contextmanager
def _nms_in_float32() -> Iterator[None]:
    nms_module = importlib.import_module('mmcv.ops.nms')  # not the function
    original = nms_module.ext_module
    nms_module.ext_module = _NmsInFloat32(original)
    try:
        yield
    finally:
        nms_module.ext_module = original


@contextlib.contextmanager
def _index_put_in_target_dtype() -> Iterator[None]:
    """``t[index] = value`` casts a floating ``value`` to ``t``'s dtype.

    mmdet's heads build some targets in the dtype of float32 priors or
    boxes and write values computed from the (float64) predictions into
    them (GFL's quality scores, the IoUs of RTMDet's and YOLOX's
    assigners): in float32 the dtypes agree, in float64 index put refuses
    them. The value is rounded as float32 code would round it.
    """
    original = torch.Tensor.__setitem__
    own = '__setitem__' in vars(torch.Tensor)

    def setitem(self, index, value):
        if isinstance(value, torch.Tensor) and value.dtype != self.dtype \
                and value.is_floating_point() and self.is_floating_point():
            value = value.to(self.dtype)
        return original(self, index, value)

    torch.Tensor.__setitem__ = setitem
    try:
        yield
    finally:
        if own:
            torch.Tensor.__setitem__ = original
        else:
            del torch.Tensor.__setitem__


@contextlib.contextmanager
def float64_computation(model: nn.Module) -> Iterator[nn.Module]:
    """Run ``model`` in float64 for the duration of the context.

    The parameters and buffers are cast in place (the ``Parameter`` objects
    stay the same) and cast back on exit; float32 -> float64 -> float32 is
    exact, so the model is unchanged afterwards. Not thread-safe: it patches
    ``torch.Tensor.float`` and mmcv's NMS for the whole process.

    Args:
        model (nn.Module): The model (unwrapped).

    Yields:
        nn.Module: ``model``, now in float64.
    """
    dtypes = {p.dtype for p in model.parameters()}
    if len(dtypes) != 1:
        raise TypeError('float64_computation needs a model with one '
                        f'parameter dtype, got {sorted(map(str, dtypes))}')
    dtype = dtypes.pop()
    model.double()
    try:
        with _keep_float64(), _nms_in_float32(), \
                _index_put_in_target_dtype():
            yield model
    finally:
        model.to(dtype)


@contextlib.contextmanager
def float64_mode(adapter: Any, model: nn.Module) -> Iterator[nn.Module]:
    """Every loss, gradient, HVP and score of ``adapter`` in float64.

    For checks that two paths compute the same numbers: in float32 they
    agree only up to rounding that depends on the CPU, the BLAS and the
    batch size, and a detector can turn such bits into other discrete
    choices. Inside the context the model runs in float64
    (:func:`float64_computation`: cast back on exit, losslessly; NMS
    decides on float32 copies) and the images that ``adapter.preprocess``
    returns (float32, as mmengine's preprocessors make them) are cast to
    float64. Contexts may nest.

    Args:
        adapter (BaseModelAdapter): The model's adapter.
        model (nn.Module): The model (possibly wrapped).

    Yields:
        nn.Module: The unwrapped model, in float64.
    """
    shadowed = vars(adapter).get('preprocess')  # a nested context's
    preprocess = adapter.preprocess

    def preprocess_in_float64(m: nn.Module, batch: Dict) -> Dict:
        data = preprocess(m, batch)
        data['inputs'] = data['inputs'].to(torch.float64)
        return data

    with float64_computation(adapter.unwrap(model)) as bare:
        adapter.preprocess = preprocess_in_float64
        try:
            yield bare
        finally:
            if shadowed is None:
                del adapter.preprocess
            else:
                adapter.preprocess = shadowed
