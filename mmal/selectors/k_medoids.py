"""PPAL's diversity selection on a precomputed distance matrix.

Stage 2 of PPAL (Yang, Huang & Crowley, "Plug and Play Active Learning
for Object Detection", CVPR 2024) picks the budget's images among the
candidates by clustering them with the CCMS distance
(:func:`mmal.selectors.ccms.ccms_distances`) and taking the cluster
medoids. The official code (``DiversitySampler.kmeans`` of
``ChenhongyiYang/PPAL``; written here from its behaviour, not its code)
does it in two steps, both here:

1. :func:`farthest_first`: k-center greedy seeding (farthest-first
   traversal) from a given first point;
2. :func:`k_medoids`: alternating (Voronoi) k-medoids from those seeds.

Both take the full ``N x N`` matrix as a NumPy array (float32 or float64),
which must be **symmetric** (as CCMS is): rows ``dist[c]`` are read where
the official reads columns ``dist[:, c]`` (a contiguous row is far faster
to read than a column). Neither builds another ``N x N`` or ``N x K``
array: the temporaries are bounded by :data:`CHUNK_ELEMENTS` entries.
"""
import numbers
from typing import List, Sequence, Tuple

import numpy as np

#: largest number of distances one temporary block holds (128 MiB of
#: float64)
CHUNK_ELEMENTS = 2**24


def _check_dist(dist: np.ndarray, fn: str) -> int:
    """Raise ValueError unless ``dist`` is a square 2-D real array; return
    N."""
    if not isinstance(dist, np.ndarray) or dist.ndim != 2 or \
            dist.shape[0] != dist.shape[1] or \
            not np.issubdtype(dist.dtype, np.floating):
        raise ValueError(f'{fn}: dist must be a square 2-D floating point '
                         f'array, got {getattr(dist, "shape", type(dist))}')
    return dist.shape[0]


def _check_int(fn: str, name: str, value, low: int) -> int:
    """``value`` as an int; ValueError unless it is an integer >= low."""
    if isinstance(value, (bool, np.bool_)) or \
            not isinstance(value, numbers.Integral) or value < low:
        raise ValueError(f'{fn}: {name} must be an integer >= {low}, got '
                         f'{value!r}')
    return int(value)


def farthest_first(dist: np.ndarray, k: int, first: int) -> List[int]:
    """k-center greedy seeding (farthest-first traversal) on distances.

    Picks ``first``, then ``k - 1`` times the point whose distance to its
    nearest picked point is the largest (``np.argmax``: ties go to the
    lowest index; a picked point is never picked again). Each point's
    distance to the picked set is updated incrementally, ``min_d =
    min(min_d, dist[j])`` after picking ``j``: O(N k) in all, the same
    picks as the official's recomputation from scratch (O(N k^2)). The
    official draws ``first`` from the unseeded global NumPy RNG; here the
    caller passes it.

    Args:
        dist (np.ndarray): Symmetric distances, shape (N, N), floating
            point, no NaN.
        k (int): Number of points, >= 0; at most N are picked.
        first (int): The first point, in ``[0, N)`` (unused when k = 0).

    Returns:
        list[int]: ``min(k, N)`` distinct indices, in pick order, starting
        with ``first``.

    Raises:
        ValueError: If ``dist`` is not a square floating point array, ``k``
            is not an integer >= 0 or ``first`` is out of range.
    """
    n = _check_dist(dist, 'farthest_first')
    k = min(_check_int('farthest_first', 'k', k, 0), n)
    if k == 0:
        return []
    first = _check_int('farthest_first', 'first', first, 0)
    if first >= n:
        raise ValueError(f'farthest_first: first must be < N = {n}, got '
                         f'{first}')
    min_d = dist[first].astype(np.float64)  # a copy
    min_d[first] = -np.inf
    picks = [first]
    for _ in range(k - 1):
        j = int(np.argmax(min_d))
        picks.append(j)
        np.minimum(min_d, dist[j], out=min_d)
        min_d[j] = -np.inf
    return picks


def nearest_medoid(dist: np.ndarray, medoids: np.ndarray) -> np.ndarray:
    """Each point's nearest medoid (the official ``np.argmin(dist[:,
    medoids], axis=1)``).

    Ties go to the first medoid in list order. Rows ``dist[medoids]`` are
    read in blocks of at most :data:`CHUNK_ELEMENTS` distances.

    Args:
        dist (np.ndarray): Symmetric distances, shape (N, N).
        medoids (np.ndarray): Indices into ``dist``, shape (K, ), K >= 1.

    Returns:
        np.ndarray: Shape (N, ), int64: a position in ``medoids``.
    """
    n = dist.shape[0]
    rows = max(1, CHUNK_ELEMENTS // max(n, 1))
    best = np.full(n, np.inf)
    assign = np.zeros(n, dtype=np.int64)
    for c0 in range(0, len(medoids), rows):
        block = dist[medoids[c0:c0 + rows]]  # (K_b, N)
        pos = block.argmin(axis=0)  # ties: the first row
        value = block[pos, np.arange(n)]
        better = value < best  # strict: ties keep the earlier block
        best[better] = value[better]
        assign[better] = pos[better] + c0
    return assign


def _best_members(dist: np.ndarray, members: np.ndarray) -> np.ndarray:
    """For each row of ``members`` (clusters of the same size s, member
    indices ascending), the member with the smallest float64 sum of
    distances to the cluster's members (ties: the first, i.e. lowest
    index).

    Args:
        dist (np.ndarray): Distances, shape (N, N).
        members (np.ndarray): Shape (n_s, s), s >= 1.

    Returns:
        np.ndarray: Shape (n_s, ), the new medoids.
    """
    count, size = members.shape
    if size == 1:
        return members[:, 0]
    out = np.empty(count, dtype=np.int64)
    per_block = CHUNK_ELEMENTS // (size * size)
    if per_block >= 1:  # whole clusters, several at a time
        for c0 in range(0, count, per_block):
            m = members[c0:c0 + per_block]
            sums = dist[m[:, :, None], m[:, None, :]].sum(
                axis=2, dtype=np.float64)
            out[c0:c0 + per_block] = m[np.arange(len(m)), sums.argmin(1)]
        return out
    rows = max(1, CHUNK_ELEMENTS // size)  # one large cluster at a time
    for c, m in enumerate(members):
        sums = np.concatenate([
            dist[np.ix_(m[r0:r0 + rows], m)].sum(axis=1, dtype=np.float64)
            for r0 in range(0, size, rows)
        ])
        out[c] = m[sums.argmin()]
    return out


def update_medoids(dist: np.ndarray, assign: np.ndarray,
                   medoids: np.ndarray) -> np.ndarray:
    """One medoid update: each cluster's new medoid is the member with the
    smallest sum of distances to the cluster's members (float64 sums; ties:
    the lowest index); an empty cluster keeps its medoid.

    Clusters of the same size are handled together (one gathered
    ``(clusters, s, s)`` block of at most :data:`CHUNK_ELEMENTS`
    distances).

    Args:
        dist (np.ndarray): Symmetric distances, shape (N, N).
        assign (np.ndarray): Each point's cluster, a position in
            ``medoids``, shape (N, ).
        medoids (np.ndarray): The current medoids, shape (K, ).

    Returns:
        np.ndarray: The new medoids, shape (K, ), int64.
    """
    k = len(medoids)
    new = np.asarray(medoids, dtype=np.int64).copy()
    order = np.argsort(assign, kind='stable')  # members ascending
    sizes = np.bincount(assign, minlength=k)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    for size in np.unique(sizes[sizes > 0]):
        clusters = np.nonzero(sizes == size)[0]
        members = order[starts[clusters][:, None] + np.arange(size)]
        new[clusters] = _best_members(dist, members)
    return new


def k_medoids(dist: np.ndarray,
              medoids: Sequence[int],
              n_iter: int = 100) -> Tuple[List[int], np.ndarray]:
    """Alternating (Voronoi) k-medoids from the given medoids.

    Each iteration, as the official (``DiversitySampler.kmeans``):

    1. assign each point to its nearest medoid (``np.argmin``: ties go to
       the first medoid in list order), :func:`nearest_medoid`;
    2. replace each cluster's medoid with the member whose sum of
       distances to the cluster's members is the smallest (ties: the
       lowest index), :func:`update_medoids`.

    The official runs exactly ``n_iter`` iterations; here the loop stops
    as soon as an update changes no medoid, which gives the same result
    (the iteration is a function of the medoids alone). Sums are in
    float64 (the official sums float32 rows in float32), which can break
    near-ties of the sums differently.

    **Difference**: a cluster that gets no point (its medoid lost its own
    point to an earlier medoid at the same distance, e.g. 0) makes the
    official fail an assertion; here it keeps its old medoid. The returned
    medoids may then repeat (that medoid can become the medoid of the
    cluster it was assigned to) and the later copy gets no point.

    Args:
        dist (np.ndarray): Symmetric distances, shape (N, N), floating
            point, no NaN.
        medoids (Sequence[int]): The initial medoids, e.g.
            :func:`farthest_first`, indices in ``[0, N)``.
        n_iter (int): Most iterations, >= 0. Defaults to 100 (official).

    Returns:
        tuple[list[int], np.ndarray]: The final medoids (K, same order as
        the clusters), and each point's cluster (its nearest final medoid,
        ties: the first in list order), a position in the medoid list,
        shape (N, ), int64 (all -1 when K = 0).

    Raises:
        ValueError: If ``dist`` is not a square floating point array, a
            medoid is out of range or ``n_iter`` is not an integer >= 0.
    """
    n = _check_dist(dist, 'k_medoids')
    n_iter = _check_int('k_medoids', 'n_iter', n_iter, 0)
    current = np.array(
        [_check_int('k_medoids', 'a medoid', m, 0) for m in medoids],
        dtype=np.int64)
    if len(current) and current.max() >= n:
        raise ValueError(f'k_medoids: medoids must be < N = {n}, got '
                         f'{int(current.max())}')
    if len(current) == 0:
        return [], np.full(n, -1, dtype=np.int64)
    assign = nearest_medoid(dist, current)
    for _ in range(n_iter):
        new = update_medoids(dist, assign, current)
        if np.array_equal(new, current):
            break
        current = new
        assign = nearest_medoid(dist, current)
    return current.tolist(), assign
