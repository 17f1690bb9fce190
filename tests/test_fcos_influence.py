"""FCOS influence against slow, obviously-correct references.

* the adapter's frozen-trunk loss gives the same θ-gradient as mmdet's full
  ``model.loss``;
* its Hessian-vector product equals an explicit Hessian of the full loss;
* the selector's fused pseudo-label + gradient scores equal a per-image
  reference: ``model.predict`` at batch 1, pseudo labels, ``model.loss``
  through the whole network, autograd, dot product.
"""
import pytest
import torch

from mmal.models import FCOSAdapter
from influence_reference import (FCOS_TINY, check_gradients_against_full_loss,
                                 check_hvp_against_explicit_hessian,
                                 check_scores_against_reference, tiny_detector)

SCORE_THR = 0.1


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    # conv_cls bias 0: predictions above the threshold from the start
    return tiny_detector(
        tmp_path_factory.mktemp('infl'), 'isal_fcos_shapes.py', FCOSAdapter(),
        FCOS_TINY, lambda m: m.bbox_head.conv_cls.bias.zero_())


def test_parameters_are_the_three_last_conv_weights(setup):
    model, adapter, _ = setup
    names = [n for n, _ in adapter.parameters(model)]
    assert names == [
        'bbox_head.conv_cls.weight', 'bbox_head.conv_reg.weight',
        'bbox_head.conv_centerness.weight'
    ]
    assert all(
        p is dict(model.named_parameters())[n]
        for n, p in adapter.parameters(model))


def test_gt_loss_gradient_equals_full_model_loss(setup):
    model, adapter, context = setup
    for grads in check_gradients_against_full_loss(model, adapter, context):
        assert any(float(g.abs().sum()) > 0 for g in grads)


def test_hvp_equals_explicit_hessian(setup):
    model, adapter, context = setup
    batch = next(iter(context.loader(context.labeled_view())))
    H, sizes = check_hvp_against_explicit_hessian(model, adapter, batch)
    # FCOS's Hessian is block diagonal (each output has its own weights)
    cls_n = sizes[0]
    assert float(H[:cls_n, cls_n:].abs().max()) < 1e-6 * float(H.abs().max())


def test_scores_equal_per_image_reference(setup):
    model, adapter, context = setup
    check_scores_against_reference(model, adapter, context, SCORE_THR)


def test_focal_loss_wrapper_keeps_the_value_and_is_twice_differentiable():
    from mmdet.models.losses import FocalLoss

    from mmal.models.single_stage_adapter import TwiceDifferentiableFocalLoss
    gen = torch.Generator().manual_seed(0)
    pred = torch.randn(7, 3, generator=gen, requires_grad=True)
    target = torch.tensor([0, 1, 2, 3, 3, 1, 0])  # 3 = background
    loss = FocalLoss(use_sigmoid=True, gamma=2.0, alpha=0.25)
    wrapped = TwiceDifferentiableFocalLoss(loss)
    a = wrapped(pred, target, avg_factor=4.0)
    b = loss(pred, target, avg_factor=4.0)
    torch.testing.assert_close(a, b)
    (g, ) = torch.autograd.grad(a, pred, create_graph=True)
    (h, ) = torch.autograd.grad(g.sum(), pred)
    assert torch.isfinite(h).all() and float(h.abs().sum()) > 0
