"""Gradients and Hessian-vector products of a scalar loss."""
from typing import Callable, List, Optional, Sequence

import torch

from .params import flat_dot


def loss_grad(loss: torch.Tensor,
              params: Sequence[torch.Tensor],
              create_graph: bool = False) -> List[torch.Tensor]:
    """Gradient of ``loss`` w.r.t. ``params``.

    Parameters the loss does not depend on get a zero gradient.

    Returns:
        list[Tensor]: One tensor per parameter, same shapes.
    """
    grads = torch.autograd.grad(
        loss, list(params), create_graph=create_graph, allow_unused=True)
    return [
        torch.zeros_like(p) if g is None else g for g, p in zip(grads, params)
    ]


def hessian_vector_product(loss: torch.Tensor, params: Sequence[torch.Tensor],
                           vec: Sequence[torch.Tensor]) -> List[torch.Tensor]:
    """``H v`` with ``H`` the Hessian of ``loss`` w.r.t. ``params``.

    Computed by double back-propagation (Pearlmutter's trick):
    ``H v = d/dθ <dL/dθ, v>``.

    Args:
        loss (Tensor): Scalar loss, built with autograd enabled.
        params (Sequence[Tensor]): Parameters θ (blocks).
        vec (Sequence[Tensor]): ``v``, same shapes as ``params``.

    Returns:
        list[Tensor]: ``H v`` block by block, same shapes as ``params``.
    """
    grads = loss_grad(loss, params, create_graph=True)
    dot = flat_dot(grads, [v.detach() for v in vec])
    if not dot.requires_grad:  # the loss is linear (or constant) in θ
        return [torch.zeros_like(p) for p in params]
    return loss_grad(dot, params)


class ImageHessian:
    """Products with one image's Hessian, its gradient graph built once.

    The first product builds ``∇θ l`` with ``create_graph=True``; each
    product is then one backward of ``<∇θ l, h>`` through that graph, so
    several products (power iteration, Hessian columns) share the forward
    pass. Call it like ``hessian_vector_product``'s result:
    ``image_hessian(h) -> H h``.

    Args:
        loss_fn (Callable[[], Tensor]): Builds the image's scalar loss.
        params (Sequence[Tensor]): Parameters θ (blocks).
    """

    def __init__(self, loss_fn: Callable[[], torch.Tensor],
                 params: Sequence[torch.Tensor]) -> None:
        self.loss_fn = loss_fn
        self.params = list(params)
        self._grads: Optional[List[torch.Tensor]] = None

    def __call__(self, vec: Sequence[torch.Tensor]) -> List[torch.Tensor]:
        if self._grads is None:
            self._grads = loss_grad(
                self.loss_fn(), self.params, create_graph=True)
        dot = flat_dot(self._grads, [v.detach() for v in vec])
        if not dot.requires_grad:  # the loss is linear (or constant) in θ
            return [torch.zeros_like(p) for p in self.params]
        grads = torch.autograd.grad(
            dot, self.params, retain_graph=True, allow_unused=True)
        return [
            torch.zeros_like(p) if g is None else g
            for g, p in zip(grads, self.params)
        ]
