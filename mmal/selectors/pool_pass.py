"""One inference pass over pool images, sharded and gathered by id."""
from typing import Any, Callable, Dict, Optional, Sequence

import torch
from torch import nn

from mmal.datasets import PoolSubsetDataset
from mmal.utils.distributed import gather_or_raise, shard
from mmal.utils.progress import track_progress
from .selection_context import SelectionContext

#: ``fn(model, data) -> one result per image`` of :func:`pool_pass`.
BatchFn = Callable[[nn.Module, Dict], Sequence[Any]]


def _to_cpu(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):  # own copy, not a view of the batch
        return obj.detach().cpu().clone()
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_cpu(o) for o in obj)
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    return obj


def pool_pass(context: SelectionContext,
              fn: BatchFn,
              view: Optional[PoolSubsetDataset] = None,
              ids: Optional[Sequence[str]] = None,
              batch_size: int = 8,
              desc: str = 'pool pass') -> Dict[str, Any]:
    """Apply ``fn`` to every image of a pool view, in batches, on every
    process, and gather the results by sample id.

    What a model-based selector needs from the pool in one call: the images
    of ``view`` (default: the unlabeled ones, without annotations) are
    split over the processes (every ``world_size``-th sorted id), loaded
    with the config's test pipeline, preprocessed by the model's data
    preprocessor and batched by padded shape
    (:meth:`SelectionContext.shape_batches`: an image in a batch is
    computed as it would be alone, up to float rounding); ``fn`` runs on
    each batch without autograd; the per-image results of every process
    are merged into one dict, the same on every process.

    Example (a selector that ranks by the top class probability)::

        probs = pool_pass(context, lambda model, data: [
            p.max() for p in context.adapter.predict_batch(model, data)])

    Args:
        context (SelectionContext): The cycle's context (model, adapter).
        fn (Callable): ``fn(model, data) -> sequence`` with one result per
            image of ``data`` (``inputs`` (B, C, H, W), ``data_samples``
            (B), ``sample_id`` (B)), in that order. Tensors are moved to
            the CPU before they are gathered.
        view (PoolSubsetDataset, optional): Defaults to
            ``context.unlabeled_view()``.
        ids (Sequence[str], optional): Ids of ``view`` to visit. Defaults
            to all of them.
        batch_size (int): Images per batch. Batches of 1 make every result
            bit-identical whatever the number of processes.
        desc (str): What the pass computes, for the progress lines.

    Returns:
        dict[str, Any]: Sample id -> ``fn``'s result for that image.
    """
    if context.model is None or context.adapter is None:
        raise ValueError('pool_pass needs the cycle\'s model and adapter in '
                         'the context (a selector with needs_model = True '
                         'and al_cfg.adapter set)')
    view = context.unlabeled_view() if view is None else view
    ids = sorted(view.sample_ids if ids is None else ids)

    def my_results() -> Dict[str, Any]:
        mine = shard(ids)
        items = track_progress(
            context.loader(view, mine), len(mine), desc, context.logger)
        out: Dict[str, Any] = {}
        with torch.no_grad():
            for data in context.shape_batches(items, batch_size):
                results = list(fn(context.model, data))
                if len(results) != len(data['sample_id']):
                    raise ValueError(
                        f'{desc}: fn returned {len(results)} results for a '
                        f'batch of {len(data["sample_id"])} images')
                for sid, res in zip(data['sample_id'], results):
                    out[sid] = _to_cpu(res)
        return out

    merged: Dict[str, Any] = {}
    for part in gather_or_raise(my_results, desc):
        merged.update(part)
    return merged
