"""Exact and conjugate-gradient s_test solvers against closed forms.

All solvers solve ``(H + damp D) s = D v`` (``D`` = per-block scales), the
fixed point of LiSSA's official update; the checks:

* on explicit matrices: ``torch.linalg.solve`` of the mean Hessian;
* LiSSA with long chains on a fixed Hessian converges to ExactSolver's s;
* on a tiny FCOS head: the explicit mean Hessian equals the mean of
  explicit full-network Hessians (``functional_call``), the fast and
  per-image paths build the same one, and CG equals the exact solve;
* a config selects the solver for a whole active-learning run.
"""
import pytest
import torch

from mmal.influence import ConjugateGradient, ExactSolver, LiSSA, flatten
from mmal.models import FCOSAdapter
from mmal.selectors import InfluenceSelector
from mmal.selectors.labeled_hessian import LabeledHessian
from mmal.testing import float64_mode
from conftest import copy_run, select_cycle0, tiny_config, train_cycle0
from influence_reference import (assert_close64,
                                 check_hvp_against_explicit_hessian,
                                 tiny_detector)
from matrix_problem import MatrixProblem

SMALLER_FCOS = {  # a 144-weight θ: explicit Hessians stay cheap
    'model.bbox_head.feat_channels': 2,
    'model.bbox_head.norm_cfg.num_groups': 1,
}


def _problem(n_images=5, sizes=(3, 4), negative=False):
    gen = torch.Generator().manual_seed(0)
    n = sum(sizes)
    hessians = {}
    for i in range(n_images):
        a = torch.randn(n, n, generator=gen, dtype=torch.float64)
        h = a @ a.T / n
        if negative:
            h = h - 0.3 * torch.eye(n, dtype=torch.float64)
        hessians[str(i)] = h
    v = [torch.randn(s, generator=gen, dtype=torch.float64) for s in sizes]
    return MatrixProblem(hessians, sizes), v


def _expected(problem, v, damp, scales):
    H = problem.mean_hessian(problem.sample_ids)
    d = torch.cat([
        torch.full((t.numel(), ), s, dtype=torch.float64)
        for t, s in zip(v, scales)
    ])
    return torch.linalg.solve(H + damp * torch.diag(d), d * flatten(v))


@pytest.mark.parametrize('scales', [[1.0, 1.0], [3.0, 40.0]])
def test_exact_and_cg_solve_the_damped_scaled_system(scales):
    problem, v = _problem()
    expected = _expected(problem, v, 0.01, scales)
    exact = ExactSolver(damp=0.01, scale=scales).estimate(v, problem)
    torch.testing.assert_close(flatten(exact), expected)
    cg = ConjugateGradient(damp=0.01, scale=scales, max_iters=50, tol=1e-10)
    ours = cg.estimate(v, problem)
    torch.testing.assert_close(flatten(ours), expected, rtol=1e-7, atol=1e-9)
    assert cg.info['iterations'] <= 7 + 1  # CG: at most n steps (n = 7)
    assert cg.info['relative_residual'] < 1e-9


def test_lissa_converges_to_the_exact_solution():
    problem, v = _problem(n_images=1)  # one fixed Hessian: no noise
    scales = [12.0, 12.0]
    exact = ExactSolver(damp=0.05, scale=scales).estimate(v, problem)
    lissa = LiSSA(damp=0.05, scale=scales, depth=1, repeats=1, log_interval=0)
    h = lissa.run_chain(v, lambda f, x: f(x), problem.image_hvps(['0'] * 2000))
    torch.testing.assert_close(
        flatten(h), flatten(exact), rtol=1e-6, atol=1e-8)


def test_subsets_are_seeded_and_bounded():
    problem, v = _problem(n_images=6)
    solver = ExactSolver(num_images=3)
    a = solver.subset(problem.sample_ids, 3, seed=1)
    assert a == solver.subset(list(reversed(problem.sample_ids)), 3, seed=1)
    assert len(a) == 3 and a == sorted(a)
    assert solver.subset(problem.sample_ids, None, 1) == problem.sample_ids
    before = problem.hvp_calls
    ConjugateGradient(num_images=2, max_iters=3).estimate(v, problem)
    assert problem.hvp_calls - before <= 2 * 3  # 2 images x 3 iterations


def test_bad_settings_fail_clearly():
    problem, v = _problem()
    with pytest.raises(ValueError, match='max_dim=4'):
        ExactSolver(max_dim=4).estimate(v, problem)
    with pytest.raises(ValueError, match='damp'):
        ConjugateGradient(damp=1.5)
    with pytest.raises(ValueError, match='scales must be > 0'):
        ExactSolver(scale=[1.0, 0.0])
    with pytest.raises(ValueError, match='3 scales'):
        ExactSolver(scale=[1.0, 2.0, 3.0]).estimate(v, problem)


def test_cg_stops_on_negative_curvature():
    problem, v = _problem(negative=True, n_images=1)
    cg = ConjugateGradient(damp=0.0, max_iters=50, tol=1e-12)
    s = cg.estimate(v, problem)
    assert all(torch.isfinite(t).all() for t in s)
    assert cg.info['relative_residual'] > 1e-6  # it did not pretend


@pytest.fixture(scope='module')
def fcos(tmp_path_factory):
    return tiny_detector(
        tmp_path_factory.mktemp('solv'),
        'isal_fcos_shapes.py',
        FCOSAdapter(),
        SMALLER_FCOS,
        num_labeled=3)


def test_explicit_mean_hessian_of_a_real_head(fcos):
    model, adapter, context = fcos
    with float64_mode(adapter,
                      model):  # exact comparisons (see influence_reference)
        params = [p for _, p in adapter.parameters(model)]
        fast = LabeledHessian(context, params, fast=True, batch_size=2)
        slow = LabeledHessian(context, params, fast=False)
        H_fast = fast.mean_hessian(fast.sample_ids)
        H_slow = slow.mean_hessian(slow.sample_ids)
        loader = context.loader(context.labeled_view(), fast.sample_ids)
        explicit = [
            check_hvp_against_explicit_hessian(model, adapter, b)[0]
            for b in loader
        ]
        H_ref = sum(explicit) / len(explicit)
        assert_close64(H_slow, H_ref)
        assert_close64(H_fast, H_slow)
        # CG on the same operator reaches the exact solution, once the
        # damping makes the system positive definite (focal loss has
        # negative curvature)
        low = float(torch.linalg.eigvalsh(H_ref)[0])
        assert low < 0
        scale = 2 * (1 - low)  # damp * scale = 1 - low > -low
        gen = torch.Generator().manual_seed(0)
        v = [torch.randn(p.shape, generator=gen).double() for p in params]
        scales = [scale] * 3
        exact = ExactSolver(damp=0.5, scale=scales).estimate(v, fast)
        d = torch.full((H_ref.shape[0], ), scale, dtype=torch.float64)
        ref = torch.linalg.solve(H_ref + 0.5 * torch.diag(d), d * flatten(v))
        assert_close64(flatten(exact), ref)
        cg = ConjugateGradient(
            damp=0.5, scale=scales, max_iters=200, tol=1e-12)
        ours = cg.estimate(v, fast)
    # CG stops at a relative residual of 1e-12; the system's condition
    # number (damp * scale = 1 - low dominates) bounds the error
    cond = float(torch.linalg.cond(H_ref + 0.5 * torch.diag(d)))
    assert float((flatten(ours) -
                  flatten(exact)).norm()) <= (10 * cond * 1e-12 *
                                              float(flatten(exact).norm()))


@pytest.fixture(scope='module')
def smaller_cycle0(tmp_path_factory):
    """Cycle 0 of the tiny ISAL demo with a 144-weight θ, trained and
    evaluated (the solvers below select on copies of it)."""
    return train_cycle0(
        tiny_config(**SMALLER_FCOS), str(tmp_path_factory.mktemp('smaller')))


@pytest.mark.parametrize('solver',
                         ['mmal.ExactSolver', 'mmal.ConjugateGradient'])
def test_a_config_selects_the_solver(smaller_cycle0, tmp_path, solver):
    """``al_cfg.selector.solver`` picks the s_test solver of the run's
    selection (a setting: the same trained model selects again)."""
    cfg = tiny_config(**SMALLER_FCOS)
    cfg.al_cfg.selector.solver = dict(type=solver, num_images=4)
    work_dir = copy_run(smaller_cycle0, str(tmp_path / 'run'), rewind=True)
    info = select_cycle0(cfg, work_dir)['info']
    assert info['scale_check'] is None  # LiSSA only
    assert info['solver'] == solver.split('.')[1]
    assert all(x > 0 for x in info['s_test_norm'])


def test_the_selector_fills_the_adapters_scales(fcos):
    _, _, context = fcos
    for kind in ('mmal.ExactSolver', 'mmal.ConjugateGradient', 'mmal.LiSSA'):
        solver = InfluenceSelector(solver=dict(
            type=kind)).build_solver(context)
        assert solver.scale == [100.0, 8000.0, 5000.0]
