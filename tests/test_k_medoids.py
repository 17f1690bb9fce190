"""PPAL's diversity selection (:mod:`mmal.selectors.k_medoids`) against
brute-force references.

* :func:`farthest_first` against an exhaustive check of its defining
  property: at every step the pick is, among the points not picked yet,
  one whose distance to the nearest picked point (recomputed from scratch
  with loops) is the largest, the lowest index among equals.
* :func:`k_medoids` against :func:`reference_k_medoids`, the algorithm of
  the spec written literally with loops: exactly ``n_iter`` iterations
  (no convergence test), assignment by a strict ``<`` over the medoids in
  list order, each cluster's new medoid by a strict ``<`` over its
  members in increasing index order (sums in float64), an empty cluster
  keeping its medoid.

On integer distances every sum is exact on both sides, so exact ties
(many, on a small grid) must be broken the same way; on random real
distances the sums differ only by rounding (~1e-16 relative), far below
the gaps between them.
"""
import math

import numpy as np
import pytest
import torch

import mmal.selectors.k_medoids as km
from mmal.selectors.ccms import ccms_distances
from mmal.selectors.k_medoids import (farthest_first, k_medoids,
                                      nearest_medoid, update_medoids)


def check_farthest_first(dist: np.ndarray, picks: list, first: int) -> None:
    """The farthest-first property at every step, exhaustively."""
    n = len(dist)
    assert picks[0] == first and len(set(picks)) == len(picks)
    for t in range(1, len(picks)):
        chosen = picks[:t]
        value = {
            q: min(float(dist[c, q]) for c in chosen)
            for q in range(n) if q not in chosen
        }
        p = picks[t]
        for q, v in value.items():
            assert value[p] > v or (value[p] == v and p <= q), (t, p, q)


def reference_k_medoids(dist: np.ndarray, medoids: list, n_iter: int):
    """Literal alternating k-medoids: (medoids, assignment to them)."""
    n = len(dist)

    def assign(meds):
        out = []
        for p in range(n):
            best, best_pos = math.inf, None
            for pos, m in enumerate(meds):
                if dist[p, m] < best:  # strict: ties keep the first
                    best, best_pos = dist[p, m], pos
            out.append(best_pos)
        return out

    meds = list(medoids)
    for _ in range(n_iter):
        a = assign(meds)
        new = []
        for c in range(len(meds)):
            members = [p for p in range(n) if a[p] == c]
            if not members:
                new.append(meds[c])  # mmal's rule (the official asserts)
                continue
            best, best_p = math.inf, None
            for p in members:
                total = sum(float(dist[p, q]) for q in members)
                if total < best:  # strict: ties keep the lowest index
                    best, best_p = total, p
            new.append(best_p)
        meds = new
    return meds, assign(meds)


def euclidean(seed: int, n: int, d: int = 3) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=(n, d))
    return np.sqrt(((x[:, None] - x[None])**2).sum(-1))


def grid_l1(seed: int, n: int) -> np.ndarray:
    """L1 distances of points on a 4x4 grid, many duplicated: integers,
    many exact ties (and zero distances between copies)."""
    x = np.random.default_rng(100 + seed).integers(0, 4, size=(n, 2))
    return np.abs(x[:, None] - x[None]).sum(-1).astype(np.float64)


@pytest.mark.parametrize('seed', range(4))
@pytest.mark.parametrize('make', [euclidean, grid_l1])
def test_farthest_first_property(seed, make):
    dist = make(seed, 25)
    for first in (0, 7, 24):
        picks = farthest_first(dist, 25, first)
        check_farthest_first(dist, picks, first)
        assert sorted(picks) == list(range(25))
        assert farthest_first(dist, 6, first) == picks[:6]
        assert farthest_first(dist.astype(np.float32), 6, first) == \
            picks[:6]


def test_farthest_first_ties_and_sizes():
    dist = np.ones((4, 4)) - np.eye(4)  # every distance 1
    assert farthest_first(dist, 4, 2) == [2, 0, 1, 3]
    assert farthest_first(dist, 9, 1) == [1, 0, 2, 3]  # capped at N
    assert farthest_first(dist, 0, 99) == []
    with pytest.raises(ValueError):
        farthest_first(dist, 2, 4)
    with pytest.raises(ValueError):
        farthest_first(dist, -1, 0)
    with pytest.raises(ValueError):
        farthest_first(dist[:3], 2, 0)


@pytest.mark.parametrize('seed', range(4))
@pytest.mark.parametrize('make,n,k', [(euclidean, 30, 5), (euclidean, 12, 12),
                                      (grid_l1, 30, 4), (grid_l1, 25, 8)])
def test_k_medoids_matches_reference(seed, make, n, k):
    dist = make(seed, n)
    init = farthest_first(dist, k, seed % n)
    for n_iter in (0, 1, 2, 100):
        expected, expected_assign = reference_k_medoids(dist, init, n_iter)
        medoids, assign = k_medoids(dist, init, n_iter)
        assert medoids == expected
        assert assign.dtype == np.int64 and assign.tolist() == expected_assign
        assert all(isinstance(m, int) for m in medoids)
    # float32 distances: the same on exact (integer) distances
    if make is grid_l1:
        assert k_medoids(dist.astype(np.float32), init)[0] == expected


def test_k_medoids_on_ccms_distances():
    """End to end on a CCMS matrix (float32) of random detections."""
    g = torch.Generator().manual_seed(3)
    n = 24
    labels = [torch.randint(0, 3, (6, ), generator=g) for _ in range(n)]
    scores = [torch.rand(6, generator=g) for _ in range(n)]
    feats = [torch.randn(6, 8, generator=g) for _ in range(n)]
    dist = ccms_distances(labels, scores, feats).numpy()
    init = farthest_first(dist, 6, 5)
    check_farthest_first(dist, init, 5)
    expected, expected_assign = reference_k_medoids(dist, init, 100)
    medoids, assign = k_medoids(dist, init)
    assert medoids == expected and assign.tolist() == expected_assign


def test_empty_cluster_keeps_its_medoid():
    """Points 0 and 1 coincide: with medoids [0, 1], point 1 goes to
    medoid 0 (tie at distance 0, the first in list order) and cluster 1
    is empty; it keeps medoid 1 (the official would fail its
    assertion)."""
    x = np.array([0., 0., 1., 5., 6.])
    dist = np.abs(x[:, None] - x[None])
    medoids, assign = k_medoids(dist, [0, 1, 3])
    assert assign[1] == 0 and 1 not in assign.tolist()
    assert medoids == reference_k_medoids(dist, [0, 1, 3], 100)[0]
    assert medoids[1] == 1 and medoids[2] in (3, 4)
    # medoids [1, 0] of the same point: cluster 1 (medoid 0) is empty and
    # keeps 0, which cluster 0 elects too (equal sums: the lowest index)
    dist = np.abs(x[:3, None] - x[None, :3])
    medoids, assign = k_medoids(dist, [1, 0])
    assert medoids == reference_k_medoids(dist, [1, 0], 100)[0] == [0, 0]
    assert assign.tolist() == [0, 0, 0]


def test_k_medoids_stops_at_a_fixed_point(monkeypatch):
    dist = euclidean(9, 40)
    init = farthest_first(dist, 6, 0)
    calls = []
    real = km.update_medoids
    monkeypatch.setattr(km, 'update_medoids',
                        lambda *a: calls.append(1) or real(*a))
    medoids, _ = k_medoids(dist, init, 100)
    assert 1 <= len(calls) < 100  # stopped early
    assert medoids == reference_k_medoids(dist, init, 100)[0]


@pytest.mark.parametrize('chunk', [1, 7, 50])
def test_blocks_do_not_change_the_result(monkeypatch, chunk):
    """Tiny blocks: medoids and clusters read a few distances at a time,
    large clusters row by row."""
    for dist, k in ((euclidean(4, 30), 3), (grid_l1(5, 30), 5)):
        init = farthest_first(dist, k, 1)
        expected = k_medoids(dist, init)
        monkeypatch.setattr(km, 'CHUNK_ELEMENTS', chunk)
        got = k_medoids(dist, init)
        monkeypatch.undo()
        assert got[0] == expected[0]
        assert np.array_equal(got[1], expected[1])


def test_helpers():
    dist = grid_l1(1, 20)
    meds = np.array([3, 0, 7])
    assign = nearest_medoid(dist, meds)
    ref = [int(np.argmin(dist[p, meds])) for p in range(20)]
    assert assign.tolist() == ref
    new = update_medoids(dist, assign, meds)
    for c in range(3):
        members = np.nonzero(assign == c)[0]
        sums = dist[np.ix_(members, members)].sum(1)
        assert new[c] == members[np.argmin(sums)]


def test_k_medoids_bad_inputs_and_no_medoid():
    dist = euclidean(0, 5)
    medoids, assign = k_medoids(dist, [])
    assert medoids == [] and assign.tolist() == [-1] * 5
    for bad in (dict(medoids=[5]), dict(medoids=[-1]), dict(n_iter=-1),
                dict(dist=dist[:4]), dict(dist=dist.astype(int))):
        kw = dict(dist=dist, medoids=[0, 1])
        kw.update(bad)
        with pytest.raises(ValueError):
            k_medoids(**kw)
