"""Closed-form influence math for a final linear layer under softmax CE.

For a classifier whose last layer is ``logits = W f + b`` (``W``: (C, D),
e.g. mmpretrain's ``LinearClsHead.fc``) and whose loss per image is
``loss_weight * CE(softmax(logits), y)``, everything influence needs w.r.t.
θ = ``W`` has a closed form in the image's features ``f`` (D,) and
probabilities ``p = softmax(logits)`` (C,):

- gradient: ``∇W l = loss_weight * (p - e_y) fᵀ``;
- Hessian-vector product: ``H V = loss_weight * ((diag p - p pᵀ) V f) fᵀ``
  (independent of ``y``);
- directional derivative: ``∇W l · S = loss_weight * (p - e_y)ᵀ S f``.

The functions below evaluate them for a batch of N images at once, without
autograd, in the dtype of the inputs. Apart from the per-image
``(N, C, D)`` variants and the explicit Hessian, memory is O(N·(C + D)).

Hard (integer) labels only: label smoothing or soft targets change the
gradient (``p - q`` for a target distribution ``q``); callers with such
losses must use the autograd path (:mod:`mmal.influence.hvp`).
"""
from typing import Optional

import torch
from torch.nn import functional as F

from mmal.utils.errors import DataError


def _check_inputs(feats: torch.Tensor,
                  logits: torch.Tensor,
                  labels: Optional[torch.Tensor] = None,
                  weight_like: Optional[torch.Tensor] = None,
                  name: str = 'vec') -> None:
    """Check the shapes (and label range) shared by the functions here.

    Raises:
        ValueError: shapes that do not fit ``feats`` (N, D), ``logits``
            (N, C), ``labels`` (N,) and ``weight_like`` (C, D).
        DataError: a label outside ``[0, C)``; the message names the first
            offending image (its row) and its label.
    """
    if feats.dim() != 2 or logits.dim() != 2 or len(feats) != len(logits):
        raise ValueError(
            'linear_softmax: feats must be (N, D) and logits (N, C) with the '
            f'same N, got {tuple(feats.shape)} and {tuple(logits.shape)}')
    num_classes = logits.shape[1]
    if weight_like is not None and tuple(
            weight_like.shape) != (num_classes, feats.shape[1]):
        raise ValueError(
            f'linear_softmax: {name} must be (C, D) = '
            f'{(num_classes, feats.shape[1])}, got {tuple(weight_like.shape)}')
    if labels is None:
        return
    if labels.shape != (len(logits), ):
        raise ValueError(
            f'linear_softmax: labels must be (N,) = ({len(logits)},), got '
            f'{tuple(labels.shape)}')
    bad = (labels < 0) | (labels >= num_classes)
    if bool(bad.any()):
        row = int(bad.nonzero()[0, 0])
        raise DataError(
            f'linear_softmax: image {row} (row of the batch) has label '
            f'{int(labels[row])}, outside [0, {num_classes}) classes')


def softmax_ce_residuals(logits: torch.Tensor,
                         labels: torch.Tensor) -> torch.Tensor:
    """``∂CE/∂logits = p - e_y`` per image.

    Args:
        logits (Tensor): (N, C) logits.
        labels (Tensor): (N,) integer class indices.

    Returns:
        Tensor: (N, C) ``softmax(logits) - one_hot(labels)``, in the dtype of
        ``logits``.
    """
    one_hot = F.one_hot(labels.long(), logits.shape[1]).to(logits.dtype)
    return torch.softmax(logits, dim=1) - one_hot


def softmax_ce_grads(feats: torch.Tensor,
                     logits: torch.Tensor,
                     labels: torch.Tensor,
                     loss_weight: float = 1.0) -> torch.Tensor:
    """Per-image gradients ``∇W l = loss_weight * (p - e_y) fᵀ``.

    Args:
        feats (Tensor): (N, D) inputs of the linear layer.
        logits (Tensor): (N, C) its outputs (bias included).
        labels (Tensor): (N,) integer targets (true or pseudo labels).
        loss_weight (float): Factor of the cross-entropy. Defaults to 1.0.

    Returns:
        Tensor: (N, C, D) gradients w.r.t. ``W``, one per image.
    """
    _check_inputs(feats, logits, labels)
    res = softmax_ce_residuals(logits, labels)
    return loss_weight * res[:, :, None] * feats[:, None, :]


def softmax_ce_grad_sum(feats: torch.Tensor,
                        logits: torch.Tensor,
                        labels: torch.Tensor,
                        loss_weight: float = 1.0) -> torch.Tensor:
    """Sum over the images of ``∇W l``: ``loss_weight * (P - Y)ᵀ F``.

    Same arguments as :func:`softmax_ce_grads`; the (N, C, D) per-image
    gradients are never built.

    Returns:
        Tensor: (C, D) summed gradient w.r.t. ``W``.
    """
    _check_inputs(feats, logits, labels)
    res = softmax_ce_residuals(logits, labels)
    return loss_weight * (res.T @ feats)


def _hvp_coefficients(feats: torch.Tensor, logits: torch.Tensor,
                      vec: torch.Tensor) -> torch.Tensor:
    """``a_n = (diag p_n - p_n p_nᵀ) V f_n`` per image, (N, C)."""
    probs = torch.softmax(logits, dim=1)
    weighted = probs * (feats @ vec.T)  # p ⊙ (V f)
    return weighted - probs * weighted.sum(dim=1, keepdim=True)


def softmax_ce_hvp(feats: torch.Tensor,
                   logits: torch.Tensor,
                   vec: torch.Tensor,
                   loss_weight: float = 1.0) -> torch.Tensor:
    """Sum over the images of ``H_z V`` (Hessians w.r.t. ``W``).

    ``H_z V = loss_weight * ((diag p - p pᵀ) V f) fᵀ``; the labels do not
    enter.

    Args:
        feats (Tensor): (N, D) inputs of the linear layer.
        logits (Tensor): (N, C) its outputs (bias included).
        vec (Tensor): (C, D) the vector ``V``, shaped like ``W``.
        loss_weight (float): Factor of the cross-entropy. Defaults to 1.0.

    Returns:
        Tensor: (C, D) ``sum_n H_n V``.
    """
    _check_inputs(feats, logits, weight_like=vec, name='vec')
    coef = _hvp_coefficients(feats, logits, vec)
    return loss_weight * (coef.T @ feats)


def softmax_ce_hvps(feats: torch.Tensor,
                    logits: torch.Tensor,
                    vec: torch.Tensor,
                    loss_weight: float = 1.0) -> torch.Tensor:
    """Per-image Hessian-vector products ``H_n V``.

    Same arguments as :func:`softmax_ce_hvp`.

    Returns:
        Tensor: (N, C, D) ``H_n V``, one per image.
    """
    _check_inputs(feats, logits, weight_like=vec, name='vec')
    coef = _hvp_coefficients(feats, logits, vec)
    return loss_weight * coef[:, :, None] * feats[:, None, :]


def softmax_ce_directional(feats: torch.Tensor,
                           logits: torch.Tensor,
                           labels: torch.Tensor,
                           direction: torch.Tensor,
                           loss_weight: float = 1.0) -> torch.Tensor:
    """Per-image ``∇W l · S = loss_weight * (p - e_y)ᵀ S f``.

    Args:
        feats, logits, labels, loss_weight: See :func:`softmax_ce_grads`.
        direction (Tensor): (C, D) the direction ``S``, shaped like ``W``.

    Returns:
        Tensor: (N,) directional derivatives, one per image.
    """
    _check_inputs(
        feats, logits, labels, weight_like=direction, name='direction')
    res = softmax_ce_residuals(logits, labels)
    return loss_weight * (res * (feats @ direction.T)).sum(dim=1)


def softmax_ce_hessian(feats: torch.Tensor,
                       logits: torch.Tensor,
                       loss_weight: float = 1.0) -> torch.Tensor:
    """Explicit Hessian w.r.t. ``W`` of the summed loss of the images.

    ``H = loss_weight * sum_n kron(diag p_n - p_n p_nᵀ, f_n f_nᵀ)``, with
    ``W`` flattened row-major like ``W.reshape(-1)`` (index ``c * D + d``).
    Memory is O(N·C² + C²·D²): meant for tests and tiny heads.

    Args:
        feats (Tensor): (N, D) inputs of the linear layer.
        logits (Tensor): (N, C) its outputs (bias included).
        loss_weight (float): Factor of the cross-entropy. Defaults to 1.0.

    Returns:
        Tensor: (C*D, C*D) symmetric positive semi-definite Hessian.
    """
    _check_inputs(feats, logits)
    probs = torch.softmax(logits, dim=1)
    curv = torch.diag_embed(probs) - probs[:, :, None] * probs[:, None, :]
    hess = torch.einsum('nab,nd,ne->adbe', curv, feats, feats)
    dim = logits.shape[1] * feats.shape[1]
    return loss_weight * hess.reshape(dim, dim)
