"""The labeled images' Hessians w.r.t. θ, as the s_test solvers use them."""
from typing import Iterator, List, Sequence

import torch

from mmal.influence import (HvpFn, ImageHessian, PlannedCache, flatten,
                            unflatten)
from mmal.utils.distributed import as_float64_sum, gather_or_raise, shard
from mmal.utils.tensor_utils import tensor_bytes
from .selection_context import SelectionContext


class LabeledHessian:
    """Hessian-vector products of labeled images' losses, per image or mean
    (a :class:`~mmal.influence.HessianProblem` on the cycle's model).

    Two paths compute the same products:

    * ``fast=True``: the θ-free part of the network runs once per image, in
      batches of images of equal shape, and its output is cached
      (:meth:`BaseModelAdapter.cache_entries`; for FCOS the head towers'
      outputs) under a byte budget, planned on the known access sequence
      (:class:`~mmal.influence.PlannedCache`). A product then runs only the
      last layers and the loss.
    * ``fast=False``: per image, the adapter's :meth:`gt_loss` (trunk
      without autograd, head with it) at batch size 1.

    Args:
        context (SelectionContext): The cycle's model, adapter and data.
        params (Sequence[Tensor]): θ, the adapter's parameters.
        fast (bool): Use the cached path.
        batch_size (int): Images per trunk batch on the fast path.
        cache_bytes (float): Cache budget on the fast path.
    """

    def __init__(self,
                 context: SelectionContext,
                 params: Sequence[torch.Tensor],
                 fast: bool = True,
                 batch_size: int = 8,
                 cache_bytes: float = 2 * 2**30) -> None:
        self.context = context
        self.params = list(params)
        self.fast = fast
        self.batch_size = batch_size
        self.cache_bytes = cache_bytes
        self.view = context.labeled_view()
        self.sample_ids = sorted(str(i) for i in self.view.sample_ids)
        self.seed = context.seed
        self.logger = context.logger
        self.block_names = [
            n for n, _ in context.adapter.parameters(context.model)
        ]
        self.cache_stats: List[dict] = []

    # -- per image ------------------------------------------------------------
    def image_hvps(self, ids: Sequence[str]) -> Iterator[HvpFn]:
        """One ``h -> H_z h`` per id of ``ids``, in order (this process)."""
        adapter, model = self.context.adapter, self.context.model
        loader = self.context.loader(self.view, list(ids))
        if not self.fast:
            for batch in loader:
                yield ImageHessian(
                    lambda b=batch: adapter.gt_loss(model, b), self.params)
            return
        cache = PlannedCache(
            list(ids), loader, self._compute, tensor_bytes, self.cache_bytes,
            self.batch_size)
        self.cache_stats.append(cache.stats)  # live: filled as it runs
        for entry in cache:
            yield adapter.cached_hvp(model, entry, self.params)

    def _compute(self, items) -> dict:
        return {
            entry['sample_id']: entry
            for entry in self.context.cache_entries([it for _, it in items],
                                                    self.batch_size)
        }

    # -- means over images, summed over processes ---------------------------
    def mean_hvp_operator(self, ids: Sequence[str], uses: int) -> HvpFn:
        """``h -> mean_{z in ids} H_z h``, for up to ``uses`` calls.

        Collective: every process calls it with the same ``h``; each takes
        its share of ``ids`` (:func:`shard`), the float64 partial sums are
        added in rank order.
        """
        mine = shard(list(ids))
        stream = self.image_hvps(mine * uses)

        def apply(h: List[torch.Tensor]) -> List[torch.Tensor]:

            def partial():
                acc = [
                    torch.zeros_like(p, dtype=torch.float64)
                    for p in self.params
                ]
                for _ in mine:
                    acc = [
                        a + x.double() for a, x in zip(acc,
                                                       next(stream)(h))
                    ]
                return [a.cpu() for a in acc]

            total = as_float64_sum(
                gather_or_raise(partial, 'Hessian-vector product'), [
                    torch.zeros(p.shape, dtype=torch.float64)
                    for p in self.params
                ])
            return [t / len(ids) for t in total]

        return apply

    def mean_hessian(self, ids: Sequence[str]) -> torch.Tensor:
        """The explicit mean Hessian over ``ids``, (n, n) float64 on CPU.

        Column ``j`` of an image's Hessian is its product with the basis
        vector ``e_j``; each image's gradient graph is built once. Images
        are split over processes, the sums added in rank order.
        """
        like = self.params
        n = sum(p.numel() for p in like)

        def partial():
            acc = torch.zeros(n, n, dtype=torch.float64)
            for hess in self.image_hvps(shard(list(ids))):
                for j in range(n):
                    e = torch.zeros(n, dtype=torch.float64)
                    e[j] = 1
                    acc[:, j] += flatten(hess(unflatten(e, like)))
            return [acc]

        H = as_float64_sum(
            gather_or_raise(partial, 'explicit Hessian'),
            [torch.zeros(n, n, dtype=torch.float64)])[0]
        H = H / len(ids)
        return (H + H.T) / 2  # exact up to rounding; symmetric for solve
