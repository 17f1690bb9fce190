"""LiSSA against closed forms and against a literal copy of the official
update."""
import functools

import pytest
import torch

from mmal.influence import (DivergenceError, LiSSA, hessian_vector_product,
                            loss_grad)
from mmal.testing import official_lissa


def _spd(n, gen, low=0.5, high=4.0):
    q, _ = torch.linalg.qr(
        torch.randn(n, n, generator=gen, dtype=torch.float64))
    eig = torch.linspace(low, high, n, dtype=torch.float64)
    return q @ torch.diag(eig) @ q.T


def _blocks_to_flat(blocks):
    return torch.cat([b.reshape(-1) for b in blocks])


def _flat_to_blocks(flat, shapes):
    out, i = [], 0
    for s in shapes:
        n = int(torch.tensor(s).prod())
        out.append(flat[i:i + n].reshape(s))
        i += n
    return out


@pytest.mark.parametrize('block_diagonal', [True, False])
def test_fixed_point_is_damped_rescaled_inverse(block_diagonal):
    gen = torch.Generator().manual_seed(0)
    shapes = [(3, ), (2, 2)]
    sizes = [3, 4]
    if block_diagonal:
        H = torch.block_diag(_spd(3, gen), 30 * _spd(4, gen))
    else:
        H = _spd(7, gen)
    scales = [10.0, 200.0] if block_diagonal else [10.0, 20.0]
    damp = 0.01
    v = [torch.randn(s, generator=gen, dtype=torch.float64) for s in shapes]

    def hvp(_, h):
        return _flat_to_blocks(H @ _blocks_to_flat(h), shapes)

    solver = LiSSA(
        damp=damp, scale=scales, depth=3000, repeats=2, log_interval=0)
    chains = solver.sample_chains([str(i) for i in range(5000)], seed=0)
    s = _blocks_to_flat(solver.solve(v, hvp, chains))

    D = torch.diag(
        torch.cat([
            torch.full((n, ), sc, dtype=torch.float64)
            for n, sc in zip(sizes, scales)
        ]))
    expected = torch.linalg.solve(H + damp * D, D @ _blocks_to_flat(v))
    torch.testing.assert_close(s, expected, rtol=1e-6, atol=1e-8)
    if block_diagonal:  # per block: scale_b (H_b + damp scale_b I)^-1 v_b
        H0 = H[:3, :3]
        exp0 = scales[0] * torch.linalg.solve(
            H0 + damp * scales[0] * torch.eye(3, dtype=torch.float64), v[0])
        torch.testing.assert_close(s[:3], exp0, rtol=1e-6, atol=1e-8)
        # and it is not the undamped inverse the update is named after
        assert not torch.allclose(
            s[:3], torch.linalg.solve(H0, v[0]), rtol=1e-2)


F64 = dict(dtype=torch.float64)  # claims of equality are tested in float64


class _TinyHead(torch.nn.Module):
    """Two weight blocks on fixed features, with a non-quadratic loss."""

    def __init__(self):
        super().__init__()
        gen = torch.Generator().manual_seed(1)
        self.cls = torch.nn.Parameter(0.3 *
                                      torch.randn(3, 4, generator=gen, **F64))
        self.reg = torch.nn.Parameter(0.3 *
                                      torch.randn(2, 4, generator=gen, **F64))

    def loss(self, x, y, t):
        logits = x @ self.cls.T
        ce = torch.nn.functional.cross_entropy(logits, y)
        reg = torch.nn.functional.smooth_l1_loss(x @ self.reg.T, t)
        return ce + torch.sigmoid(logits).pow(2).mean() + reg


def _samples():
    gen = torch.Generator().manual_seed(2)
    data = {}
    for i in range(12):
        data[f'img{i:02d}'] = (torch.randn(5, 4, generator=gen, **F64),
                               torch.randint(0, 3, (5, ), generator=gen),
                               torch.randn(5, 2, generator=gen, **F64))
    return data


def test_matches_literal_official_update_on_same_sequence():
    model, data = _TinyHead(), _samples()
    params = [model.cls, model.reg]
    v = [torch.zeros_like(p) for p in params]
    for sid in sorted(data)[:4]:  # reference gradient: a sum of per-image ones
        v = [
            a + g for a, g in zip(v, loss_grad(model.loss(*data[sid]), params))
        ]
    scale = [5.0, 50.0]
    solver = LiSSA(damp=0.01, scale=scale, depth=9, repeats=3, log_interval=0)
    chains = solver.sample_chains(list(data), seed=7)

    def hvp(sid, h):
        return hessian_vector_product(model.loss(*data[sid]), params, h)

    ours = solver.solve(v, hvp, chains)
    # the official loop, literally (mmal.testing.official_isal), on the
    # same chains: each step a full forward of the image's loss
    ref = official_lissa(
        v, params, [[functools.partial(model.loss, *data[sid]) for sid in c]
                    for c in chains], 0.01, scale)
    assert len(ref) == 2
    for a, b in zip(ours, ref):  # float64: the same sums in another order
        assert a.dtype == torch.float64
        torch.testing.assert_close(
            a, b, rtol=1e-10, atol=1e-10 * float(b.abs().max()))
    # the chains really differ from each other (independent sampling)
    assert chains[0] != chains[1]


def test_chains_depend_on_ids_and_seed_only():
    solver = LiSSA(depth=5, repeats=3)
    ids = [f'id{i}' for i in range(20)]
    a = solver.sample_chains(ids, seed=3)
    b = solver.sample_chains(list(reversed(ids)), seed=3)
    assert a == b
    assert solver.sample_chains(ids, seed=4) != a
    assert all(len(c) == 5 and len(set(c)) == 5 for c in a)
    short = solver.sample_chains(ids[:3], seed=3)
    assert all(sorted(c) == sorted(ids[:3]) for c in short)
    with pytest.raises(ValueError):
        solver.sample_chains([], seed=0)


def test_divergence_is_detected_with_block_name():
    H = torch.diag(torch.tensor([100.0, 1.0]))
    solver = LiSSA(
        damp=0.01, scale=[1.0, 1.0], depth=50, repeats=1, log_interval=0)
    v = [torch.tensor([1.0]), torch.tensor([1.0])]

    def hvp(_, h):
        out = H @ torch.cat(h)
        return [out[:1], out[1:]]

    with pytest.raises(DivergenceError, match="block 'cls'.*scale"):
        solver.solve(v, hvp, [range(50)], block_names=['cls', 'reg'])


def test_scale_count_must_match_blocks():
    solver = LiSSA(scale=[1.0, 2.0, 3.0], depth=1, repeats=1)
    with pytest.raises(ValueError, match='3 scales'):
        solver.solve([torch.ones(1)], lambda i, h: h, [[0]])


def test_hvp_matches_explicit_hessian():
    model, data = _TinyHead(), _samples()
    x, y, t = data['img03']
    params = [model.cls, model.reg]
    shapes = [p.shape for p in params]

    def flat_loss(theta):
        cls, reg = _flat_to_blocks(theta, shapes)
        logits = x @ cls.T
        ce = torch.nn.functional.cross_entropy(logits, y)
        regl = torch.nn.functional.smooth_l1_loss(x @ reg.T, t)
        return ce + torch.sigmoid(logits).pow(2).mean() + regl

    theta = _blocks_to_flat([p.detach() for p in params])
    H = torch.autograd.functional.hessian(flat_loss, theta)
    vec = [torch.randn(s, **F64) for s in shapes]
    ours = hessian_vector_product(model.loss(x, y, t), params, vec)
    expected = H @ _blocks_to_flat(vec)
    assert expected.dtype == torch.float64
    torch.testing.assert_close(
        _blocks_to_flat(ours),
        expected,
        rtol=1e-10,
        atol=1e-10 * float(expected.abs().max()))
