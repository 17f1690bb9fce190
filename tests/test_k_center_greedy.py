"""k-center greedy (:mod:`mmal.selectors.k_center_greedy`) against an
exhaustive reference, and a smoke test of its speed benchmark.

The reference (:func:`reference_picks`) is the definition spelled out in
numpy float64: at every step, for every candidate not picked yet, its
distance (``np.linalg.norm``) to each labeled and each picked point, the
smallest of them, and the candidate with the largest such distance (ties:
the lowest index, by a strict ``>`` in a loop over increasing indices).

Every comparison runs in float64. The function computes squared distances
as ``||u||² + ||c||² - 2 u·c``, which differs from ``||u - c||²`` by
rounding (about 1e-15 relatively), so on random points the picks agree
whenever no two candidates are closer than that: the reference reports the
smallest gap between the pick and the runner-up and the random cases check
it is far larger (1e-9 relative). On small integer points both sides are
exact, so exact ties (duplicates, equal distances on a grid) must be
broken the same way.
"""
import logging
import math

import numpy as np
import pytest
import torch

from mmal.selectors.k_center_greedy import (first_argmax, greedy_picks,
                                            initial_min_distances,
                                            k_center_greedy)
from mmal.utils import ConfigError
from scenarios.kcenter_speed import (KCenterSpeedOptions, make_features,
                                     report, run)

#: smallest relative gap between a pick and the runner-up on random points
MIN_GAP = 1e-9


def reference_picks(labeled: np.ndarray, unlabeled: np.ndarray,
                    num: int) -> tuple:
    """Exhaustive k-center greedy; returns ``(picks, smallest relative gap
    between the pick and the runner-up over the steps with finite values,
    each pick's distance to the chosen set when picked)``."""
    labeled = np.asarray(labeled, dtype=np.float64)
    unlabeled = np.asarray(unlabeled, dtype=np.float64)
    centers = list(labeled)
    picks, gap, radii = [], math.inf, []
    for _ in range(min(num, len(unlabeled))):
        values = {}
        for j in range(len(unlabeled)):
            if j in picks:
                continue
            values[j] = min(
                (float(np.linalg.norm(unlabeled[j] - c)) for c in centers),
                default=math.inf)
        best, best_value = None, -math.inf
        for j in sorted(values):
            if values[j] > best_value:  # strict: a tie keeps the lower j
                best, best_value = j, values[j]
        others = [v for j, v in values.items() if j != best]
        if others and math.isfinite(best_value):
            gap = min(gap, (best_value - max(others)) / max(best_value, 1))
        picks.append(best)
        radii.append(best_value)
        centers.append(unlabeled[best])
    return picks, gap, radii


def random_points(seed: int, m: int, n: int, d: int) -> tuple:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(m, d)), rng.normal(size=(n, d))


def as_tensors(*arrays) -> list:
    return [torch.from_numpy(np.asarray(a, dtype=np.float64)) for a in arrays]


@pytest.mark.parametrize('seed', [0, 1, 2])
@pytest.mark.parametrize('m,n,d,num', [(0, 12, 3, 12), (5, 20, 4, 7),
                                       (10, 30, 6, 30), (25, 40, 16, 10),
                                       (1, 15, 2, 15), (3, 9, 1, 4)])
def test_matches_reference_on_random_points(seed, m, n, d, num):
    labeled, unlabeled = random_points(seed, m, n, d)
    expected, gap, radii = reference_picks(labeled, unlabeled, num)
    assert gap > MIN_GAP  # no near-tie: rounding cannot reorder the picks
    got = k_center_greedy(*as_tensors(labeled, unlabeled), num)
    assert got == expected
    assert all(isinstance(j, int) for j in got)
    # distances from squared ones (errors ~1e-15 of the squared norms)
    picks, got_radii = k_center_greedy(
        *as_tensors(labeled, unlabeled), num, return_distances=True)
    assert picks == expected
    np.testing.assert_allclose(got_radii, radii, rtol=1e-9, atol=1e-6)


@pytest.mark.parametrize('seed', [0, 1, 2, 3])
@pytest.mark.parametrize('m', [0, 1, 4])
def test_exact_ties_on_an_integer_grid(seed, m):
    """Points on a 3x3 grid, many duplicated: equal distances everywhere,
    all computed exactly on both sides."""
    rng = np.random.default_rng(100 + seed)
    labeled = rng.integers(0, 3, size=(m, 2))
    unlabeled = rng.integers(0, 3, size=(25, 2))
    expected, _, radii = reference_picks(labeled, unlabeled, 25)
    picks, got_radii = k_center_greedy(
        *as_tensors(labeled, unlabeled), 25, return_distances=True)
    assert picks == expected  # exact: ties on integer squared distances
    # the squared radii are integers on both sides; the radii are their
    # square roots, which another sqrt kernel (AVX2, AVX-512) may round
    # differently in the last bit: 4 ulp of values <= sqrt(8)
    finite = [math.isfinite(r) for r in radii]
    assert [math.isfinite(r) for r in got_radii] == finite
    assert [round(r * r) for r, f in zip(got_radii, finite)
            if f] == [round(r * r) for r, f in zip(radii, finite) if f]
    np.testing.assert_allclose([r for r, f in zip(got_radii, finite) if f],
                               [r for r, f in zip(radii, finite) if f],
                               rtol=4 * np.finfo(np.float64).eps,
                               atol=0)


def test_ties_take_the_lowest_index():
    # no labeled point: all +inf, pick 0; then 1, 2, 3 are all at 1 (pick
    # 1); then 2 is at 1 and 3 (a copy of 1) at 0
    unlabeled = torch.tensor([[0., 0.], [1., 0.], [0., 1.], [1., 0.]],
                             dtype=torch.float64)
    assert k_center_greedy(unlabeled[:0], unlabeled, 4) == [0, 1, 2, 3]
    # labeled at the origin: 3 candidates at distance 2, the lowest first
    unlabeled = torch.tensor([[0., 1.], [2., 0.], [0., -2.], [-2., 0.]],
                             dtype=torch.float64)
    assert k_center_greedy(
        torch.zeros(1, 2, dtype=torch.float64), unlabeled, 1) == [1]
    assert first_argmax(torch.tensor([1., 3., 2., 3., 3.])) == 1


MIB_PER_FLOAT64 = 8 / 2**20


@pytest.mark.parametrize(
    'chunk_mb',
    [
        1e-9,  # one distance per block
        7 * MIB_PER_FLOAT64,  # 7 labeled rows x 1 unlabeled row
        23 * 5 * MIB_PER_FLOAT64,  # all labeled rows x 5 unlabeled rows
    ])
def test_chunking_does_not_change_the_result(chunk_mb):
    points = random_points(7, 23, 37, 5)
    labeled, unlabeled = as_tensors(*points)
    default = initial_min_distances(labeled, unlabeled)
    chunked = initial_min_distances(labeled, unlabeled, chunk_mb)
    # brute force: ||u - l||² for every pair, the smallest per row
    diff = unlabeled.numpy()[:, None, :] - labeled.numpy()[None, :, :]
    brute = (diff**2).sum(-1).min(1)
    scale = float((unlabeled**2).sum(1).max() + (labeled**2).sum(1).max())
    for x in (default, chunked):
        assert x.dtype == torch.float64 and x.shape == (37, )
        np.testing.assert_allclose(
            x.numpy(), brute, rtol=0, atol=1e-12 * scale)
    # the picks agree where no two candidates are within rounding
    _, gap, _ = reference_picks(*points, 20)
    assert gap > MIN_GAP
    assert k_center_greedy(labeled, unlabeled, 20, chunk_mb=chunk_mb) == \
        k_center_greedy(labeled, unlabeled, 20)


def test_num_above_n_gives_all_points():
    labeled, unlabeled = random_points(3, 4, 10, 3)
    expected, gap, _ = reference_picks(labeled, unlabeled, 10)
    assert gap > MIN_GAP
    got = k_center_greedy(*as_tensors(labeled, unlabeled), 25)
    assert got == expected and sorted(got) == list(range(10))


def test_empty_and_float32():
    points = random_points(4, 6, 9, 3)
    labeled, unlabeled = as_tensors(*points)
    assert k_center_greedy(labeled, unlabeled, 0) == []
    assert k_center_greedy(
        labeled, unlabeled, 0, return_distances=True) == ([], [])
    assert k_center_greedy(labeled, unlabeled[:0], 3) == []
    assert initial_min_distances(labeled[:0], unlabeled).isinf().all()
    # float32 stays float32 (and picks the same on well-separated points:
    # float32's squared distances err by ~1e-6 of the squared norms)
    _, gap, _ = reference_picks(*points, 5)
    assert gap > 1e-3
    f32 = [x.float() for x in (labeled, unlabeled)]
    assert initial_min_distances(*f32).dtype == torch.float32
    assert k_center_greedy(*f32, 5) == k_center_greedy(labeled, unlabeled, 5)


def test_greedy_picks_updates_in_place():
    labeled, unlabeled = as_tensors(*random_points(5, 3, 8, 2))
    min_sq = initial_min_distances(labeled, unlabeled)
    picks, picked_sq = greedy_picks(unlabeled, min_sq.clone(), 3)
    assert picks == k_center_greedy(labeled, unlabeled, 3)
    assert picked_sq[0] == min_sq.max()  # the first: farthest from labeled
    min_sq = initial_min_distances(labeled, unlabeled)
    greedy_picks(unlabeled, min_sq, 3)
    assert (min_sq[picks] == -math.inf).all()
    assert (min_sq >= 0).sum() == 5


def test_progress_messages(caplog):
    logger = logging.getLogger('test_k_center_greedy')
    labeled, unlabeled = as_tensors(*random_points(6, 2, 30, 2))
    with caplog.at_level(logging.INFO, logger=logger.name):
        k_center_greedy(labeled, unlabeled, 20, logger=logger)
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 10 and messages[-1].endswith('20/20 picks')


@pytest.mark.parametrize('labeled,unlabeled,num,match', [
    (torch.zeros(3), torch.zeros(4, 2), 1, 'labeled must be 2-D'),
    (torch.zeros(3, 2), torch.zeros(4, 2, 1), 1, 'unlabeled must be 2-D'),
    (torch.zeros(3, 3), torch.zeros(4, 2), 1, 'same feature dimension'),
    (torch.zeros(3, 2), torch.zeros(4, 2), -1, 'num must be an integer'),
    (torch.zeros(3, 2), torch.zeros(4, 2), 1.5, 'num must be an integer'),
    (torch.zeros(3, 2), torch.zeros(4, 2,
                                    dtype=torch.long), 1, 'floating point'),
    (torch.zeros(3, 2), torch.full((4, 2), math.nan), 1, 'NaN'),
])
def test_bad_inputs_raise(labeled, unlabeled, num, match):
    with pytest.raises(ValueError, match=match):
        k_center_greedy(labeled, unlabeled, num)


def test_bad_chunk_raises():
    with pytest.raises(ValueError, match='chunk_mb'):
        k_center_greedy(torch.zeros(3, 2), torch.zeros(4, 2), 1, chunk_mb=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
def test_cuda_matches_cpu():
    labeled, unlabeled = as_tensors(*random_points(8, 40, 300, 16))
    assert k_center_greedy(labeled.cuda(), unlabeled.cuda(), 50) == \
        k_center_greedy(labeled, unlabeled, 50)
    assert k_center_greedy(labeled, unlabeled, 50, device='cuda',
                           chunk_mb=1e-3) == \
        k_center_greedy(labeled, unlabeled, 50)


def test_speed_harness_smoke():
    opts = KCenterSpeedOptions(
        num_labeled=50,
        num_unlabeled=200,
        dim=8,
        num=10,
        threads=1,
        float64=True)
    res = run(opts)  # one thread; below, the session's thread count
    features = make_features(opts)
    _, gap, _ = reference_picks(*[f.numpy() for f in features], 10)
    assert gap > MIN_GAP
    assert res['picks'] == k_center_greedy(*features, 10)
    assert res['dtype'] == 'float64' and res['num'] == 10
    assert set(res['phases']) == {'initial_distances', 'picks'}
    assert res['total_seconds'] == pytest.approx(
        sum(p['seconds'] for p in res['phases'].values()))
    assert 'ms per pick' in report(res)
    with pytest.raises(ConfigError, match='num_unlabeled'):
        KCenterSpeedOptions(num_unlabeled=0)
