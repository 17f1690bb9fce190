"""k-center greedy selection (core-set active learning).

The greedy 2-approximation of the k-center problem that Sener & Savarese
(ICLR 2018, "Active Learning for Convolutional Neural Networks: A Core-Set
Approach") use to pick the images to label: repeatedly pick the unlabeled
point farthest from every point chosen so far (the labeled set and the
earlier picks).

The computation never builds an ``n x n`` or ``n x m`` matrix:

* :func:`initial_min_distances` finds each unlabeled point's squared
  distance to its nearest labeled point block by block (blocks of
  unlabeled rows x labeled rows of at most ``chunk_mb`` MiB of distances);
* :func:`greedy_picks` makes the picks; each costs one matrix-vector
  product ``unlabeled @ c`` (it reads the ``n x d`` features once) and a
  few passes over ``n`` numbers;
* :func:`k_center_greedy` checks the inputs and runs both.
"""
import math
import numbers
from typing import List, Optional, Tuple, Union

import torch
from mmengine.logging import print_log

#: share of the picks between two progress messages
LOG_EVERY = 0.1


def _check_features(labeled: torch.Tensor, unlabeled: torch.Tensor,
                    num: int) -> None:
    """Raise ValueError unless the inputs are valid for
    :func:`k_center_greedy`."""
    for name, x in (('labeled', labeled), ('unlabeled', unlabeled)):
        if not isinstance(x, torch.Tensor):
            raise ValueError(f'k_center_greedy: {name} must be a tensor, got '
                             f'{type(x).__name__}')
        if x.dim() != 2:
            raise ValueError(f'k_center_greedy: {name} must be 2-D (points, '
                             f'features), got shape {tuple(x.shape)}')
        if not x.is_floating_point():
            raise ValueError(f'k_center_greedy: {name} must be floating '
                             f'point, got {x.dtype}')
    if labeled.shape[1] != unlabeled.shape[1]:
        raise ValueError(
            'k_center_greedy: labeled and unlabeled must have the same '
            f'feature dimension, got {labeled.shape[1]} and '
            f'{unlabeled.shape[1]}')
    if isinstance(num, bool) or not isinstance(num, numbers.Integral) or \
            num < 0:
        raise ValueError(
            f'k_center_greedy: num must be an integer >= 0, got {num!r}')


def _check_finite(x: torch.Tensor, name: str) -> None:
    """Raise ValueError where ``x`` holds NaN or infinity (they would make
    the distances, hence the picks, meaningless)."""
    if x.numel() and not bool(torch.isfinite(x).all()):
        raise ValueError(f'k_center_greedy: {name} holds NaN or infinite '
                         'values')


def squared_norms(x: torch.Tensor) -> torch.Tensor:
    """``||x_i||²`` per row, as a sum of products (exact for small
    integers, unlike squaring ``vector_norm``; no ``n x d`` temporary).

    Args:
        x (Tensor): Points, shape (n, d).

    Returns:
        Tensor: Shape (n, ), dtype and device of ``x``.
    """
    return torch.einsum('ij,ij->i', x, x)


def initial_min_distances(labeled: torch.Tensor,
                          unlabeled: torch.Tensor,
                          chunk_mb: float = 256.0) -> torch.Tensor:
    """Squared distance of each unlabeled point to its nearest labeled one.

    ``||u - l||² = ||u||² + ||l||² - 2 u·l`` (clamped at 0), computed for
    one block of unlabeled rows x labeled rows at a time (a matrix
    product), each block of distances at most ``chunk_mb`` MiB (at least
    one distance); the minimum runs over the labeled blocks. Neither an
    ``n x m`` nor an ``n x n`` matrix is built.

    Args:
        labeled (Tensor): Labeled features, shape (m, d); m may be 0.
        unlabeled (Tensor): Unlabeled features, shape (n, d), on the same
            device and of the same dtype.
        chunk_mb (float): Size bound of one block of distances, MiB.
            Defaults to 256.

    Returns:
        Tensor: Shape (n, ), squared distances, dtype and device of
        ``unlabeled``; ``+inf`` everywhere when m = 0.
    """
    n, m = unlabeled.shape[0], labeled.shape[0]
    out = torch.full((n, ),
                     math.inf,
                     dtype=unlabeled.dtype,
                     device=unlabeled.device)
    if m == 0 or n == 0:
        return out
    budget = max(1, int(chunk_mb * 2**20) // unlabeled.element_size())
    cols = min(m, budget)  # labeled rows per block
    rows = min(n, max(1, budget // cols))  # unlabeled rows per block
    buffer = torch.empty(
        rows * cols, dtype=unlabeled.dtype,
        device=unlabeled.device)  # reused by every block
    sq_labeled = squared_norms(labeled)
    for i in range(0, n, rows):
        u = unlabeled[i:i + rows]
        best = out[i:i + rows]
        for j in range(0, m, cols):
            lab = labeled[j:j + cols]
            block = buffer[:u.shape[0] * lab.shape[0]].view(
                u.shape[0], lab.shape[0])
            # ||l||² - 2 u·l; ||u||² is the same along a row: added after
            torch.addmm(
                sq_labeled[j:j + cols].unsqueeze(0),
                u,
                lab.T,
                alpha=-2,
                out=block)
            torch.minimum(best, block.amin(dim=1), out=best)
        best.add_(squared_norms(u)).clamp_min_(0)
    return out


def first_argmax(values: torch.Tensor) -> int:
    """Index of the largest value; ties: the lowest such index.

    Spelled out (the largest value, then the first index holding it)
    because ``torch.argmax`` does not promise which of tied indices it
    returns on every device.

    Args:
        values (Tensor): Shape (n, ), n >= 1, no NaN.

    Returns:
        int: The index.
    """
    return int(torch.nonzero(values == values.max())[0, 0])


def greedy_picks(unlabeled: torch.Tensor,
                 min_sq_dist: torch.Tensor,
                 num: int,
                 logger=None) -> Tuple[List[int], torch.Tensor]:
    """The greedy picks, given each point's squared distance to its
    nearest labeled point.

    Each step picks ``j* = first_argmax(min_sq_dist)`` (ties: the lowest
    index), then ``min_sq_dist = min(min_sq_dist, ||unlabeled -
    unlabeled[j*]||²)`` (one matrix-vector product and a few passes over
    ``n`` numbers; squared norms computed once) and sets
    ``min_sq_dist[j*] = -inf`` so that ``j*`` is never picked again.

    Args:
        unlabeled (Tensor): Unlabeled features, shape (n, d).
        min_sq_dist (Tensor): Shape (n, ), same dtype and device, e.g.
            :func:`initial_min_distances`; **updated in place** (the
            picked points end at ``-inf``).
        num (int): Number of picks; at most n are made.
        logger (optional): See :func:`k_center_greedy`.

    Returns:
        tuple[list[int], Tensor]: The picks (``min(num, n)`` distinct
        indices into ``unlabeled``, in pick order) and each pick's squared
        distance to the chosen set when it was picked, shape (k, ).
    """
    n = unlabeled.shape[0]
    num = min(num, n)
    sq_norms = squared_norms(unlabeled)
    dist = torch.empty_like(min_sq_dist)
    picked_sq_dist = torch.empty_like(min_sq_dist[:num])
    every = max(1, math.ceil(num * LOG_EVERY))
    picks = []
    for step in range(num):
        j = first_argmax(min_sq_dist)
        picks.append(j)
        picked_sq_dist[step] = min_sq_dist[j]
        # ||u||² - 2 u·c + ||c||², clamped at 0
        torch.addmv(sq_norms, unlabeled, unlabeled[j], alpha=-2, out=dist)
        dist.add_(sq_norms[j]).clamp_min_(0)
        torch.minimum(min_sq_dist, dist, out=min_sq_dist)
        min_sq_dist[j] = -math.inf
        if logger is not None and ((step + 1) % every == 0 or step + 1 == num):
            print_log(f'k-center greedy: {step + 1}/{num} picks', logger)
    return picks, picked_sq_dist


def k_center_greedy(
    labeled: torch.Tensor,
    unlabeled: torch.Tensor,
    num: int,
    device: Optional[Union[str, torch.device]] = None,
    chunk_mb: float = 256.0,
    logger=None,
    return_distances: bool = False
) -> Union[List[int], Tuple[List[int], List[float]]]:
    """Pick ``num`` unlabeled points by k-center greedy (core-set).

    Let ``min_dist[j]`` be the Euclidean distance of unlabeled point ``j``
    to its nearest labeled point (``+inf`` when there is none). Then
    ``num`` times: pick ``j* = argmax_j min_dist[j]``, the point farthest
    from everything chosen so far, and lower ``min_dist`` to the distances
    to ``unlabeled[j*]`` where they are smaller; a picked point is never
    picked again.

    Tie rule: among points with the same largest ``min_dist`` the lowest
    index is picked (deterministic on every device). In particular with no
    labeled point (m = 0) every ``min_dist`` is ``+inf`` and the first pick
    is index 0.

    Squared distances replace the distances (same order, hence the same
    picks), computed as ``||u||² + ||c||² - 2 u·c`` (matrix products,
    clamped at 0) in the dtype of ``unlabeled`` on ``device``. Rounding of
    that formula can reorder points whose distances are nearly equal; in
    float64 it agrees with the direct ``||u - c||`` except at near-ties.
    Memory: the features, a few vectors of length n and one block of
    distances of at most ``chunk_mb`` MiB (see
    :func:`initial_min_distances`); no ``n x n`` or ``n x m`` matrix.
    Time: ``n * m * d`` multiply-adds for the initial distances, then per
    pick one pass over the ``n x d`` unlabeled features.

    Args:
        labeled (Tensor): Features of the labeled points, shape (m, d);
            m may be 0. Cast to the dtype of ``unlabeled``.
        unlabeled (Tensor): Features of the candidates, shape (n, d),
            floating point.
        num (int): Number of picks (>= 0); capped at n.
        device (str | torch.device, optional): Where to compute. Defaults
            to the device of ``unlabeled``.
        chunk_mb (float): Size bound of one block of initial distances,
            MiB. Defaults to 256.
        logger (optional): Where progress goes (mmengine ``print_log``),
            about every 10% of the picks. Defaults to None: silent.
        return_distances (bool): Also return each pick's distance to the
            chosen set when it was picked. Defaults to False.

    Returns:
        list[int] | tuple[list[int], list[float]]: ``min(num, n)``
        distinct indices into ``unlabeled``, in pick order; with
        ``return_distances`` also each pick's Euclidean distance to its
        nearest labeled or earlier picked point (non-increasing; ``inf``
        for the first pick when m = 0).

    Raises:
        ValueError: If a feature tensor is not 2-D floating point or holds
            NaN / infinity, the feature dimensions differ, ``num`` is not
            an integer >= 0, or ``chunk_mb`` is not positive.
    """
    _check_features(labeled, unlabeled, num)
    if not chunk_mb > 0:
        raise ValueError(
            f'k_center_greedy: chunk_mb must be > 0, got {chunk_mb!r}')
    num = int(num)
    if num == 0 or unlabeled.shape[0] == 0:
        return ([], []) if return_distances else []
    device = unlabeled.device if device is None else torch.device(device)
    with torch.no_grad():
        unlabeled = unlabeled.detach().to(device)
        labeled = labeled.detach().to(device=device, dtype=unlabeled.dtype)
        _check_finite(labeled, 'labeled')
        _check_finite(unlabeled, 'unlabeled')
        min_sq_dist = initial_min_distances(labeled, unlabeled, chunk_mb)
        picks, picked_sq_dist = greedy_picks(unlabeled, min_sq_dist, num,
                                             logger)
    if return_distances:
        return picks, picked_sq_dist.sqrt().tolist()
    return picks
