"""Power-iteration spectrum and the LiSSA scale check, against eigvalsh."""

import pytest
import torch

from mmal.influence import (ImageHessian, auto_scales, block_top_eigenvalues,
                            scale_report)


def _sym(n, gen, shift=0.0):
    a = torch.randn(n, n, generator=gen, dtype=torch.float64)
    return a @ a.T / n + shift * torch.eye(n, dtype=torch.float64)


def _largest_magnitude(h):
    ev = torch.linalg.eigvalsh(h)
    return float(ev[ev.abs().argmax()])


def test_power_iteration_matches_eigvalsh_per_block():
    gen = torch.Generator().manual_seed(0)
    # per item: a positive block, and one with a dominant negative eigenvalue
    items = [(_sym(6, gen), _sym(4, gen, shift=-3.0)) for _ in range(3)]
    like = [
        torch.zeros(2, 3, dtype=torch.float64),
        torch.zeros(4, dtype=torch.float64)
    ]

    def hvp(item, h):
        return [(item[0] @ h[0].reshape(-1)).reshape(2, 3), item[1] @ h[1]]

    got = block_top_eigenvalues(hvp, items, like, iters=300)
    for item, lam in zip(items, got):
        assert lam[0] == pytest.approx(_largest_magnitude(item[0]), rel=1e-6)
        assert lam[1] == pytest.approx(_largest_magnitude(item[1]), rel=1e-6)
        assert lam[1] < 0


def test_scale_report_warns_exactly_when_a_chain_would_diverge():
    eig = [[120.0, 4.0, -3.0], [174.0, 2.0, 20.0]]
    names = ['cls', 'reg', 'ctr']
    ok = scale_report(eig, [500.0, 50.0, 1000.0], 0.01, names)
    assert ok['warnings'] == []
    assert ok['max_eigenvalue'] == [174.0, 4.0, 20.0]
    assert ok['min_eigenvalue'] == [0.0, 0.0, -3.0]
    assert ok['safe_scale'] == [180.0, 4.0, 20.0]  # rounded up, never down
    bad = scale_report(eig, [80.0, 50.0, 100.0], 0.01, names)
    # cls: 174 / 80 > 2 - damp; ctr: -3 <= -0.01 * 100
    assert len(bad['warnings']) == 2
    assert bad['warnings'][0].startswith('cls: LiSSA scale 80.0 <')
    assert bad['warnings'][1].startswith('ctr: a negative eigenvalue -3')
    # the two remedies of the negative side, as LiSSA's own error says
    assert 'a scale > 300' in bad['warnings'][1]
    assert 'larger damp' in bad['warnings'][1]


def test_a_dominant_negative_eigenvalue_gets_its_magnitude_as_safe_scale():
    """Power iteration sees only the dominant eigenvalue: when it is
    negative, the largest positive one is at most its magnitude."""
    rep = scale_report([[-30.0, 0.0], [-12.0, 0.0]], [5.0, 5.0], 0.01,
                       ['cls', 'reg'])
    assert rep['max_eigenvalue'] == [0.0, 0.0]
    assert rep['min_eigenvalue'] == [-30.0, 0.0]
    assert rep['safe_scale'] == [30.0, 0.0]  # not 1.0; no curvature: 0


def test_auto_scale_rule_per_block():
    """scale_b = max(configured_b, round_up(margin * max |λ_b|))."""
    configured = [100.0, 8000.0, 5000.0]
    eig = [[308.0, 21.0, 35.0], [120.0, -5.0, -40.0]]
    # cls: 1.5 * 308 = 462 -> 470; reg, ctr: the configured floor
    assert auto_scales(configured, eig, 1.5) == [470.0, 8000.0, 5000.0]
    # a low floor: every block follows its curvature; a dominant negative
    # eigenvalue counts by magnitude (ctr: 1.5 * 40); margin 1 -> |λ|
    assert auto_scales([1.0] * 3, eig, 1.5) == [470.0, 32.0, 60.0]
    assert auto_scales([1.0] * 3, eig, 1.0) == [310.0, 21.0, 40.0]
    # no curvature measured: the configured scale
    assert auto_scales([7.0], [[0.0], [0.0]], 1.5) == [7.0]
    used_scales = auto_scales(configured, eig, 1.5)
    for used, conf, lam in zip(used_scales, configured, (308.0, 21.0, 40.0)):
        assert used >= max(conf, 1.5 * lam)
        assert used == conf or used <= 1.1 * 1.5 * lam  # 2 digits, up


def test_fcos_head_spectrum_matches_explicit_hessian():
    """On a tiny FCOS, per image: power iteration against eigvalsh of each
    diagonal Hessian block, built column by column from HVPs with basis
    vectors (test_fcos_influence checks those HVPs against a Hessian of the
    whole network). Each image's gradient graph is built once
    (``ImageHessian``) and shared by its power iteration and its columns."""
    import tempfile

    from mmal.models import FCOSAdapter
    from influence_reference import FCOS_TINY, tiny_detector
    model, adapter, context = tiny_detector(tempfile.mkdtemp(),
                                            'isal_fcos_shapes.py',
                                            FCOSAdapter(), FCOS_TINY)
    params = [p for _, p in adapter.parameters(model)]
    batches = list(context.loader(context.labeled_view()))[:2]
    hessians = [
        ImageHessian(lambda b=b: adapter.gt_loss(model, b), params)
        for b in batches
    ]

    def hvp(i, h):
        return hessians[i](h)

    got = block_top_eigenvalues(hvp, range(len(batches)), params, iters=300)
    for i, lam in enumerate(got):
        for b, p in enumerate(params):
            cols = []
            for j in range(p.numel()):
                e = [torch.zeros_like(q) for q in params]
                e[b].view(-1)[j] = 1.0
                cols.append(hvp(i, e)[b].reshape(-1))
            H = torch.stack(cols, 1).double()
            H = (H + H.T) / 2
            assert lam[b] == pytest.approx(
                _largest_magnitude(H), rel=1e-3, abs=1e-6), b
