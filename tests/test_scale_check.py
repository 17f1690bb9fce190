"""LiSSA under the scale check (``al_cfg.selector.scale_check``), on
explicit per-image Hessians: the scale follows a curvature above the
configured one and s_test is then ExactSolver's at that scale; a chain that
the check's few images did not prepare for is rerun with a larger scale, a
bounded number of times; the decisions are the same on every process."""
import json
import math

import pytest
import torch

from mmal.influence import (DivergenceError, ExactSolver, LiSSA, ScaleCheck,
                            flatten)
from matrix_problem import MatrixProblem


def _with_eigenvalues(eigs, gen):
    q, _ = torch.linalg.qr(
        torch.randn(len(eigs), len(eigs), generator=gen, dtype=torch.float64))
    return q @ torch.diag(torch.tensor(eigs, dtype=torch.float64)) @ q.T


def test_auto_scale_follows_a_curvature_above_the_configured_scale():
    """Block 'a' has eigenvalues 50..200, far above its configured scale 10;
    block 'b' (0.5..4) is safe at 10. Every image has the same Hessian, so
    the chain is a fixed linear iteration and converges to ExactSolver's
    solution at the scales it used."""
    gen = torch.Generator().manual_seed(0)
    a, b = [50.0, 120.0, 200.0], [0.5, 1.0, 2.0, 4.0]
    H = torch.block_diag(_with_eigenvalues(a, gen), _with_eigenvalues(b, gen))
    v = [
        torch.randn(3, generator=gen, dtype=torch.float64),
        torch.randn(4, generator=gen, dtype=torch.float64)
    ]
    damp, margin = 0.01, 1.5

    def problem(n):
        return MatrixProblem({f'{i:04d}': H for i in range(n)}, (3, 4))

    # the paper's behaviour, fixed scales: the chain diverges in block 'a'
    fixed = LiSSA(
        damp=damp, scale=[10.0, 10.0], depth=50, repeats=1, log_interval=0)
    with pytest.raises(DivergenceError, match="block 'a'") as err:
        ScaleCheck(mode='fixed').estimate(fixed, v, problem(50))
    assert err.value.blocks == [0]

    check = ScaleCheck(margin=margin)
    used = auto_scales_of(check, damp, v, problem(4))
    assert 200 * margin <= used[0] <= 2 * margin * 200  # near λ_max
    assert used[1] == 10.0  # the configured scale was safe: kept
    # The chain's error after K steps is (I - damp - H/scale)^K (v - s*):
    # at most q^K |v - s*| with q the iteration's contraction factor at
    # these scales, and |v - s*| <= |s*| (s* = c v per eigenvector with
    # c = scale / (λ + damp scale) >= 0.5). K makes q^K <= 1e-13; float64
    # rounding adds ~1e-16 |s*| / (1 - q) ~ 1e-14 |s*|.
    q = max(
        abs(1 - damp - lam / s) for eigs, s in zip((a, b), used)
        for lam in eigs)
    steps = math.ceil(math.log(1e-13) / math.log(q))
    lissa = LiSSA(
        damp=damp, scale=[10.0, 10.0], depth=steps, repeats=2, log_interval=0)
    s, report, record = check.estimate(lissa, v, problem(steps))
    assert record['used'] == used and lissa.scale == used
    assert record['retries'] == 0 and record['diverged'] == []
    assert record['configured'] == [10.0, 10.0]
    assert record['measured'][0] == pytest.approx(200.0, rel=0.05)
    assert report['warnings'] == []
    exact = flatten(ExactSolver(damp=damp, scale=used).estimate(v, problem(1)))
    assert float((flatten(s) - exact).norm()) <= 1e-12 * float(exact.norm())
    # and the Hessian still matters: far from the over-damped v / damp
    over_damped = flatten(v)[:3] / damp
    assert float(
        (exact[:3] - over_damped).norm()) > 0.9 * float(over_damped.norm())


def auto_scales_of(check, damp, v, problem):
    """The scales ``check`` picks (a chain of the problem's length)."""
    solver = LiSSA(
        damp=damp, scale=[10.0, 10.0], depth=1, repeats=1, log_interval=0)
    return check.estimate(solver, v, problem)[2]['used']


def _underestimated(check, n=40):
    """Block 'a': the checked images have eigenvalues <= 1, the others 10,
    so the measured scale (1.5) is too small for the chains; block 'b' is
    safe everywhere."""
    gen = torch.Generator().manual_seed(3)
    ids = [f'{i:03d}' for i in range(n)]
    picked = set(check.pick(ids, seed=0))
    low = torch.block_diag(
        _with_eigenvalues([0.2, 0.5, 1.0], gen),
        _with_eigenvalues([0.1, 0.2, 0.3, 0.5], gen))
    high = torch.block_diag(
        _with_eigenvalues([2.0, 5.0, 10.0], gen), low[3:, 3:])
    problem = MatrixProblem({i: low if i in picked else high
                             for i in ids}, (3, 4))
    v = [
        torch.randn(3, generator=gen, dtype=torch.float64),
        torch.randn(4, generator=gen, dtype=torch.float64)
    ]
    return problem, v


def _retry_solver():
    return LiSSA(
        damp=0.01, scale=[0.1, 1.0], depth=40, repeats=3, log_interval=0)


def test_a_diverged_chain_is_rerun_with_a_larger_scale():
    check = ScaleCheck(num_images=2, margin=1.5, growth=2.0, max_retries=3)
    problem, v = _underestimated(check)
    solver = _retry_solver()
    s, report, record = check.estimate(solver, v, problem)
    assert report['safe_scale'][0] == 1.0  # what the two checked images show
    # 1.5 diverges (|1 - 0.01 - 10/1.5| > 1), 3 too, 6 contracts
    assert [d['scales'] for d in record['diverged']] == [[1.5, 1.0],
                                                         [3.0, 1.0]]
    assert all(d['blocks'] == ['a'] for d in record['diverged'])
    assert record['retries'] == 2 and record['used'] == [6.0, 1.0]
    assert all(torch.isfinite(t).all() for t in s)
    # the result is that of a plain run at the final scales: nothing of the
    # diverged attempts is left in it
    plain = _retry_solver()
    plain.scale = [6.0, 1.0]
    torch.testing.assert_close(
        flatten(s), flatten(plain.estimate(v, problem)), rtol=1e-12, atol=0)


def test_retries_are_bounded_and_the_error_names_the_scales_tried():
    check = ScaleCheck(num_images=2, max_retries=1)
    problem, v = _underestimated(check)
    with pytest.raises(DivergenceError) as err:
        check.estimate(_retry_solver(), v, problem)
    msg = str(err.value)
    assert "'a' at scales [1.5, 3.0]" in msg and '1 retries' in msg
    assert 'max_retries' in msg and 'damp' in msg
    assert err.value.blocks == [0]
    # fixed: the configured scales, no retry
    with pytest.raises(DivergenceError, match=r"'a' at scales \[0.1\]"):
        ScaleCheck(
            num_images=2, mode='fixed').estimate(_retry_solver(), v, problem)


def _retry_worker(rank, world, init_file, out_dir):
    import torch.distributed as dist
    dist.init_process_group(
        'gloo', init_method=f'file://{init_file}', rank=rank, world_size=world)
    check = ScaleCheck(num_images=2, max_retries=3)
    problem, v = _underestimated(check)
    s, _, record = check.estimate(_retry_solver(), v, problem)
    with open(f'{out_dir}/rank{rank}.json', 'w') as f:
        json.dump(dict(s=flatten(s).tolist(), record=record), f)
    dist.destroy_process_group()


@pytest.mark.two_processes
def test_retries_decide_alike_on_every_process(tmp_path):
    """3 chains split 2 + 1 over 2 processes: the same retries, scales and
    s_test as one process (no process waits for another's retry)."""
    import torch.multiprocessing as mp
    check = ScaleCheck(num_images=2, max_retries=3)
    problem, v = _underestimated(check)
    s, _, record = check.estimate(_retry_solver(), v, problem)
    mp.spawn(
        _retry_worker,
        args=(2, str(tmp_path / 'init'), str(tmp_path)),
        nprocs=2)
    for rank in range(2):
        with open(tmp_path / f'rank{rank}.json') as f:
            out = json.load(f)
        assert out['record'] == record
        torch.testing.assert_close(
            torch.tensor(out['s'], dtype=torch.float64),
            flatten(s),
            rtol=1e-12,
            atol=0)
