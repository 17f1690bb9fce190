"""What an s_test solver is given: the labeled set's Hessians."""
from typing import (Any, Callable, Iterator, List, Protocol, Sequence,
                    runtime_checkable)

import torch

#: ``h -> H h`` on parameter blocks.
HvpFn = Callable[[List[torch.Tensor]], List[torch.Tensor]]
#: ``hvp_fn(item, h) -> H_item h``: the product with one item's Hessian,
#: the item (an image, an id, a Hessian) given by the caller.
ItemHvpFn = Callable[[Any, List[torch.Tensor]], List[torch.Tensor]]


@runtime_checkable
class HessianProblem(Protocol):
    """The labeled images' Hessians w.r.t. θ, as the solvers use them.

    :class:`mmal.selectors.LabeledHessian` implements it on a model;
    tests implement it with explicit matrices. A solver's
    ``estimate(v, problem)`` reads only what is listed here.

    Attributes:
        sample_ids (list[str]): The labeled ids, sorted.
        seed (int): Seeds the solver's sampling of images.
        block_names (list[str]): Names of θ's blocks (for messages).
        logger: mmengine logger (or its name) for progress lines.
    """

    sample_ids: List[str]
    seed: int
    block_names: List[str]
    logger: Any

    def image_hvps(self, ids: Sequence[str]) -> Iterator[HvpFn]:
        """One ``h -> H_z h`` per id of ``ids``, in order (this process)."""

    def mean_hvp_operator(self, ids: Sequence[str], uses: int) -> HvpFn:
        """``h -> mean_{z in ids} H_z h`` for up to ``uses`` calls
        (collective: every process calls it with the same ``h``)."""

    def mean_hessian(self, ids: Sequence[str]) -> torch.Tensor:
        """The explicit mean Hessian over ``ids``, (n, n) float64 on CPU,
        ``n`` the number of entries of θ (collective)."""
