"""Closed-form softmax cross-entropy influence math against autograd.

The reference is autograd, image by image, on an ``nn.Linear(D, C)`` (with
a random bias) in float64 and ``loss_weight * F.cross_entropy``: gradients
by ``torch.autograd.grad``, Hessian-vector products by double backward,
explicit Hessians by ``torch.func.hessian``. The closed forms agree with it
to ~1e-15; ``assert_close64`` allows 1e-9 of the largest entry (see
``influence_reference``). The "mistake" tests show that this tolerance
rejects the usual slips (the true label for the pseudo label, a Hessian
without ``p pᵀ``).
"""
import pytest
import torch
from torch import nn
from torch.func import functional_call
from torch.nn import functional as F

from mmal.influence import (softmax_ce_directional, softmax_ce_grad_sum,
                            softmax_ce_grads, softmax_ce_hessian,
                            softmax_ce_hvp, softmax_ce_hvps)
from mmal.utils.errors import DataError
from influence_reference import assert_close64

N, D, C = 6, 3, 4
CASES = [(0, 1.0), (1, 0.7), (2, 2.5)]  # (seed, loss_weight)


def _case(seed, scale=1.0):
    """A float64 linear layer with a bias, features, logits and labels."""
    torch.manual_seed(seed)
    fc = nn.Linear(D, C).double()
    with torch.no_grad():
        fc.bias.normal_()
    feats = scale * torch.randn(N, D, dtype=torch.float64)
    with torch.no_grad():
        logits = fc(feats)
    labels = torch.randint(C, (N, ))
    return fc, feats, logits, labels


def _image_loss(fc, feat, label, loss_weight):
    """``W -> loss_weight * CE(fc(feat; W), label)`` for one image."""

    def loss(weight):
        logits = functional_call(fc, {
            'weight': weight,
            'bias': fc.bias
        }, (feat[None], ))
        return loss_weight * F.cross_entropy(logits, label[None])

    return loss


def _weight(fc):
    return fc.weight.detach().clone().requires_grad_(True)


def _ref_grads(fc, feats, labels, loss_weight):
    """(N, C, D) per-image gradients by autograd."""
    out = []
    for feat, label in zip(feats, labels):
        weight = _weight(fc)
        loss = _image_loss(fc, feat, label, loss_weight)(weight)
        out.append(torch.autograd.grad(loss, weight)[0])
    return torch.stack(out)


def _ref_hvps(fc, feats, labels, vec, loss_weight):
    """(N, C, D) per-image ``H_n V`` by double backward."""
    out = []
    for feat, label in zip(feats, labels):
        weight = _weight(fc)
        loss = _image_loss(fc, feat, label, loss_weight)(weight)
        grad = torch.autograd.grad(loss, weight, create_graph=True)[0]
        out.append(torch.autograd.grad((grad * vec).sum(), weight)[0])
    return torch.stack(out)


def _ref_hessian(fc, feats, labels, loss_weight):
    """(C*D, C*D) summed Hessian by ``torch.func.hessian``."""
    total = torch.zeros(C * D, C * D, dtype=torch.float64)
    for feat, label in zip(feats, labels):
        loss = _image_loss(fc, feat, label, loss_weight)
        hess = torch.func.hessian(loss)(fc.weight.detach())
        total += hess.detach().reshape(C * D, C * D)
    return total


@pytest.mark.parametrize('seed,loss_weight', CASES)
def test_grads_match_autograd(seed, loss_weight):
    fc, feats, logits, labels = _case(seed)
    ref = _ref_grads(fc, feats, labels, loss_weight)
    grads = softmax_ce_grads(feats, logits, labels, loss_weight)
    assert grads.shape == (N, C, D)
    assert_close64(grads, ref)
    assert_close64(
        softmax_ce_grad_sum(feats, logits, labels, loss_weight), ref.sum(0))


@pytest.mark.parametrize('seed,loss_weight', CASES)
def test_hvp_matches_double_backward(seed, loss_weight):
    fc, feats, logits, labels = _case(seed)
    vec = torch.randn(C, D, dtype=torch.float64)
    ref = _ref_hvps(fc, feats, labels, vec, loss_weight)
    assert_close64(softmax_ce_hvps(feats, logits, vec, loss_weight), ref)
    assert_close64(softmax_ce_hvp(feats, logits, vec, loss_weight), ref.sum(0))


@pytest.mark.parametrize('seed,loss_weight', CASES)
def test_directional_matches_autograd(seed, loss_weight):
    fc, feats, logits, labels = _case(seed)
    direction = torch.randn(C, D, dtype=torch.float64)
    ref = (_ref_grads(fc, feats, labels, loss_weight) * direction).sum((1, 2))
    out = softmax_ce_directional(feats, logits, labels, direction, loss_weight)
    assert out.shape == (N, )
    assert_close64(out, ref)


@pytest.mark.parametrize('seed,loss_weight', CASES)
def test_hessian_matches_autograd(seed, loss_weight):
    fc, feats, logits, labels = _case(seed)
    hess = softmax_ce_hessian(feats, logits, loss_weight)
    # The CE Hessian does not depend on the label: any labels give it.
    for targets in (labels, (labels + 1) % C):
        assert_close64(hess, _ref_hessian(fc, feats, targets, loss_weight))
    # Row-major flattening, consistent with the HVP.
    vec = torch.randn(C, D, dtype=torch.float64)
    assert_close64((hess @ vec.reshape(-1)).reshape(C, D),
                   softmax_ce_hvp(feats, logits, vec, loss_weight))


def test_large_logits_stay_exact():
    """Saturated softmax (logits of several hundred): no overflow."""
    fc, feats, logits, labels = _case(3, scale=300.0)
    assert logits.abs().max() > 100
    direction = torch.randn(C, D, dtype=torch.float64)
    ref = _ref_grads(fc, feats, labels, 1.0)
    assert_close64(softmax_ce_grads(feats, logits, labels), ref)
    assert_close64(
        softmax_ce_directional(feats, logits, labels, direction),
        (ref * direction).sum((1, 2)))
    assert_close64(
        softmax_ce_hessian(feats, logits),
        _ref_hessian(fc, feats, labels, 1.0))


def test_batch_loss_convention_of_mmpretrain():
    """The per-image loss is mmpretrain's: the batch loss of
    ``CrossEntropyLoss(loss_weight)`` (averaged over the batch, as
    ``ClsHead`` does) times N has the summed gradient."""
    losses = pytest.importorskip('mmpretrain.models.losses')
    fc, feats, _, labels = _case(4)
    loss_module = losses.CrossEntropyLoss(loss_weight=1.7)
    weight = _weight(fc)
    logits = functional_call(fc, {
        'weight': weight,
        'bias': fc.bias
    }, (feats, ))
    loss = loss_module(logits, labels, avg_factor=N)
    ref = N * torch.autograd.grad(loss, weight)[0]
    assert_close64(
        softmax_ce_grad_sum(feats, logits.detach(), labels, 1.7), ref)


def test_pseudo_labels_are_used_not_true_labels():
    """Scoring with the pseudo label ŷ = argmax: the directional
    derivative matches autograd with target ŷ, and the one with the true
    label is far off (beyond the tolerance) where they differ."""
    fc, feats, logits, labels = _case(5)
    pseudo = logits.argmax(1)
    labels[0] = (pseudo[0] + 1) % C  # at least one image disagrees
    direction = torch.randn(C, D, dtype=torch.float64)
    out = softmax_ce_directional(feats, logits, pseudo, direction)
    assert_close64(out, (_ref_grads(fc, feats, pseudo, 1.0) * direction).sum(
        (1, 2)))
    wrong = softmax_ce_directional(feats, logits, labels, direction)
    with pytest.raises(AssertionError):
        assert_close64(wrong, out)


def test_tolerance_rejects_a_hessian_without_p_pT():
    """``diag(p) ⊗ f fᵀ`` alone (forgetting ``- p pᵀ``) fails the check
    that the closed form passes: the comparison can fail."""
    fc, feats, logits, labels = _case(6)
    ref = _ref_hessian(fc, feats, labels, 1.0)
    probs = torch.softmax(logits, 1)
    wrong = torch.einsum('na,nd,ne->ade', probs, feats, feats)
    wrong = torch.block_diag(*wrong)
    with pytest.raises(AssertionError):
        assert_close64(wrong, ref)
    assert_close64(softmax_ce_hessian(feats, logits), ref)


def test_hessian_is_symmetric_psd():
    _, feats, logits, _ = _case(7)
    hess = softmax_ce_hessian(feats, logits, 2.0)
    assert_close64(hess, hess.T)
    eig = torch.linalg.eigvalsh(hess)
    assert eig.min() > -1e-12 * eig.max()
    # Shifting every class's row of W by the same vector leaves the
    # softmax unchanged: such directions are in the null space.
    shift = torch.randn(D, dtype=torch.float64).expand(C, D)
    assert softmax_ce_hvp(feats, logits,
                          shift).abs().max() < (1e-12 * eig.max() *
                                                shift.abs().max())


def test_float32_inputs_stay_float32():
    _, feats, logits, labels = _case(8)
    feats, logits = feats.float(), logits.float()
    vec = torch.randn(C, D)
    assert softmax_ce_grads(feats, logits, labels).dtype == torch.float32
    assert softmax_ce_hvp(feats, logits, vec).dtype == torch.float32
    assert softmax_ce_directional(feats, logits, labels,
                                  vec).dtype == torch.float32


def test_bad_inputs_are_named():
    _, feats, logits, labels = _case(9)
    labels[2] = C
    with pytest.raises(DataError, match=r'image 2 .* label 4'):
        softmax_ce_grads(feats, logits, labels)
    with pytest.raises(ValueError, match=r'vec must be \(C, D\)'):
        softmax_ce_hvp(feats, logits, torch.zeros(D, C, dtype=feats.dtype))
    with pytest.raises(ValueError, match='same N'):
        softmax_ce_hessian(feats[:-1], logits)
