"""Per-block Hessian spectrum by power iteration: is a LiSSA scale safe?

The official LiSSA update ``h_b <- v_b + (1 - damp) h_b - (H_z h)_b / s_b``
is a contraction in block ``b`` only while every eigenvalue ``λ`` of the
sampled image's Hessian block satisfies ``-damp < λ / s_b < 2 - damp``. A
scale below ``λ_max / (2 - damp)`` makes the chain grow geometrically; one
below ``λ_max`` still overshoots on that direction each step. On the
negative side the chain grows along ``λ < -damp * s_b``: only a larger
``damp * s_b`` (scale or damp) bounds it, at the price of a more damped
``s_test``.
"""
import math
from typing import Any, Dict, Iterable, List, Sequence

import torch

from .hessian_problem import ItemHvpFn


def block_top_eigenvalues(hvp_fn: ItemHvpFn,
                          items: Iterable[Any],
                          like: Sequence[torch.Tensor],
                          iters: int = 20,
                          seed: int = 0) -> List[List[float]]:
    """Largest-magnitude eigenvalue of each block of each item's Hessian.

    One power iteration per block, run on all blocks at once (one HVP per
    step for every block). This is exact for block-diagonal Hessians (FCOS
    and Faster R-CNN heads: each output layer has its own weights and loss;
    the tests check it on explicit Hessians).

    Args:
        hvp_fn (Callable): ``hvp_fn(item, h) -> H_item h`` (blocks).
        items (Iterable): The items (e.g. loaded labeled images).
        like (Sequence[Tensor]): One tensor per block, for shapes/devices.
        iters (int): Power-iteration steps.
        seed (int): Seed of the start vectors.

    Returns:
        list[list[float]]: Per item, per block, the signed Rayleigh
        quotient ``x^T H_b x`` of the final unit vector ``x``.
    """
    out = []
    for i, item in enumerate(items):
        gen = torch.Generator().manual_seed(seed * 100003 + i)
        x = [
            torch.randn(t.shape, generator=gen, dtype=t.dtype).to(t.device)
            for t in like
        ]
        x = [b / b.norm().clamp_min(1e-30) for b in x]
        lam = [0.0] * len(x)
        for _ in range(iters):
            hx = [t.detach() for t in hvp_fn(item, x)]
            lam = [float((a * b).sum()) for a, b in zip(x, hx)]
            norms = [b.norm() for b in hx]
            x = [b / n if n > 0 else a for a, b, n in zip(x, hx, norms)]
        out.append(lam)
    return out


def scale_report(eigenvalues: Sequence[Sequence[float]],
                 scales: Sequence[float], damp: float,
                 names: Sequence[str]) -> Dict[str, Any]:
    """Compare measured per-block eigenvalues with the LiSSA scales.

    Args:
        eigenvalues: Per image, per block (from
            :func:`block_top_eigenvalues`).
        scales: The LiSSA scale of each block.
        damp: The LiSSA damping.
        names: Block names, for messages.

    Returns:
        dict: ``max_eigenvalue`` (largest positive per block),
        ``min_eigenvalue`` (most negative; power iteration only sees a
        negative eigenvalue when it dominates the block, 0 otherwise),
        ``safe_scale`` (per block: the largest measured ``|λ|``, rounded
        up; at or above it no eigenvalue overshoots on the positive side;
        0 for a block with no curvature), ``warnings`` (messages for blocks
        whose scale would make the chain diverge).
    """
    blocks = list(zip(*eigenvalues))
    top = [max(max(b), 0.0) for b in blocks]
    low = [min(min(b), 0.0) for b in blocks]
    warnings = []
    for name, lam, neg, s in zip(names, top, low, scales):
        if lam / s >= 2 - damp:
            warnings.append(
                f'{name}: LiSSA scale {s} < λ_max / (2 - damp) = '
                f'{lam / (2 - damp):.4g} (λ_max = {lam:.4g}): the chain '
                f'will diverge; use a scale >= {lam:.4g}')
        if -neg / s >= damp:
            warnings.append(
                f'{name}: a negative eigenvalue {neg:.4g} <= -damp * scale '
                f'= {-damp * s:.4g}: the chain can grow along it; it stays '
                f'bounded when damp * scale > {-neg:.4g} (a scale > '
                f'{-neg / damp:.4g}, or a larger damp; both damp s_test '
                'more)')
    return dict(
        max_eigenvalue=top,
        min_eigenvalue=low,
        safe_scale=[round_up(max(lam, -neg)) for lam, neg in zip(top, low)],
        warnings=warnings)


def auto_scales(configured: Sequence[float],
                eigenvalues: Sequence[Sequence[float]],
                margin: float) -> List[float]:
    """The scale rule of ``scale_check=dict(mode='auto')``, per block.

    ``scale_b = max(configured_b, round_up(margin * ρ_b))`` with ``ρ_b``
    the largest measured ``|λ|`` of block ``b`` (over the checked images).
    ``ρ_b`` bounds the largest positive eigenvalue also when a negative one
    dominates the block (power iteration sees only the dominant one), so
    the positive side never overshoots. The configured scale stays a floor:
    where it is already safe, the paper's scale is used unchanged. A scale
    far above ``ρ_b`` would raise the effective damping ``damp * scale``
    until ``s_test ≈ v / damp``, which is why the rule stays within
    ``margin`` (times at most 1.1 from rounding) of ``ρ_b``.

    Args:
        configured: The configured scale of each block.
        eigenvalues: Per image, per block (signed, from
            :func:`block_top_eigenvalues`).
        margin: The factor above ``ρ_b`` (>= 1).

    Returns:
        list[float]: The scale of each block.
    """
    return [
        max(float(c), round_up(margin * r))
        for c, r in zip(configured, block_radius(eigenvalues))
    ]


def block_radius(eigenvalues: Sequence[Sequence[float]]) -> List[float]:
    """Per block, the largest measured ``|λ|`` over the checked images.

    Args:
        eigenvalues: Per image, per block (signed, from
            :func:`block_top_eigenvalues`).

    Returns:
        list[float]: One value per block.
    """
    return [max(abs(x) for x in b) for b in zip(*eigenvalues)]


def round_up(x: float) -> float:
    """``x`` rounded up to two significant digits (0.0 for x <= 0)."""
    if x <= 0:
        return 0.0
    step = 10.0**(math.floor(math.log10(x)) - 1)
    return round(math.ceil(x / step - 1e-9) * step, 12)  # no 6.3000000001
