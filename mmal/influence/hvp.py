"""Gradients and Hessian-vector products of a scalar loss."""
from typing import List, Sequence

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
    return [torch.zeros_like(p) if g is None else g
            for g, p in zip(grads, params)]


def hessian_vector_product(loss: torch.Tensor,
                           params: Sequence[torch.Tensor],
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
