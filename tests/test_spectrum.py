"""Power-iteration spectrum and the LiSSA scale check, against eigvalsh."""

import pytest
import torch

from mmal.influence import (block_top_eigenvalues, hessian_vector_product,
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
    like = [torch.zeros(2, 3, dtype=torch.float64),
            torch.zeros(4, dtype=torch.float64)]

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


def test_fcos_head_spectrum_matches_explicit_hessian():
    """On a tiny FCOS, per image: power iteration against eigvalsh of each
    diagonal Hessian block, built column by column from HVPs with basis
    vectors (test_fcos_influence checks those HVPs against a Hessian of the
    whole network)."""
    import tempfile
    from mmal.models import FCOSAdapter
    from influence_reference import FCOS_TINY, tiny_detector
    model, adapter, context = tiny_detector(
        tempfile.mkdtemp(), 'isal_fcos_shapes.py', FCOSAdapter(), FCOS_TINY)
    params = [p for _, p in adapter.parameters(model)]
    batches = list(context.loader(context.labeled_view()))[:2]

    def hvp(batch, h):
        return hessian_vector_product(adapter.gt_loss(model, batch), params, h)

    got = block_top_eigenvalues(hvp, batches, params, iters=300)
    for batch, lam in zip(batches, got):
        for b, p in enumerate(params):
            cols = []
            for j in range(p.numel()):
                e = [torch.zeros_like(q) for q in params]
                e[b].view(-1)[j] = 1.0
                cols.append(hvp(batch, e)[b].reshape(-1))
            H = torch.stack(cols, 1).double()
            H = (H + H.T) / 2
            assert lam[b] == pytest.approx(_largest_magnitude(H), rel=1e-3,
                                           abs=1e-6), b
