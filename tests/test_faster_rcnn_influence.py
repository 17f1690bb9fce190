"""Faster R-CNN influence against slow, obviously-correct references.

A tiny Faster R-CNN (4-channel RPN conv, 8-d RoI fcs) on generated shapes:

* θ is exactly the RPN's and the RoI head's last-layer weights;
* the adapter's frozen-trunk loss gives the same θ-gradient as mmdet's full
  ``model.loss`` with the same sampling draws, and it is deterministic;
* its Hessian-vector product equals an explicit Hessian of the full loss;
* the fused pseudo-label + gradient scores equal a per-image reference
  (``model.predict`` at batch 1, pseudo labels, ``model.loss``, autograd);
* two runs of two cycles with the same seed select the same images.
"""
import os.path as osp

import pytest
import torch

from mmal.influence import loss_grad
from mmal.models import FasterRCNNAdapter
from mmal.structures import ALState
from mmal.utils.fileio import read_json
from conftest import select_cycle0, tiny_config, train_cycle0
from families import hessian_blocks
from influence_reference import (FRCNN_TINY, check_gradients_against_full_loss,
                                 check_hvp_against_explicit_hessian,
                                 check_scores_against_reference, full_loss,
                                 tiny_detector)

SCORE_THR = 0.1
NAMES = [
    'rpn_head.rpn_cls.weight', 'rpn_head.rpn_reg.weight',
    'roi_head.bbox_head.fc_cls.weight', 'roi_head.bbox_head.fc_reg.weight'
]


def _config(**extra):
    return tiny_config('isal_faster-rcnn_shapes.py', **extra)


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    # fc_cls x30: confident boxes from the start, so there are pseudo labels
    return tiny_detector(
        tmp_path_factory.mktemp('frcnn'),
        'isal_faster-rcnn_shapes.py',
        FasterRCNNAdapter(),
        FRCNN_TINY,
        lambda m: m.roi_head.bbox_head.fc_cls.weight.mul_(30),
        seed=7)


def _params(model, adapter):
    return [p for _, p in adapter.parameters(model)]


def test_parameters_are_the_rpn_and_roi_last_layer_weights(setup):
    model, adapter, context = setup
    assert [n for n, _ in adapter.parameters(model)] == NAMES
    named = dict(model.named_parameters())
    assert all(p is named[n] for n, p in adapter.parameters(model))
    assert adapter.lissa_scale == [1000.0, 1000.0, 5000.0, 1000.0]
    batch = next(iter(context.loader(context.labeled_view())))
    grads = loss_grad(adapter.gt_loss(model, batch), _params(model, adapter))
    assert [g.shape for g in grads] == [named[n].shape for n in NAMES]
    # every block gets a gradient from this image's loss
    assert all(float(g.abs().sum()) > 0 for g in grads)


def test_gt_loss_gradient_equals_full_model_loss(setup):
    model, adapter, context = setup
    check_gradients_against_full_loss(model, adapter, context)


def test_sampling_is_random_but_gradients_are_seeded_per_image(setup):
    model, adapter, context = setup
    params = _params(model, adapter)
    batch = next(iter(context.loader(context.labeled_view())))
    data = model.data_preprocessor(batch, False)
    # mmdet's loss alone draws anchors and proposals at random...
    draws = []
    for s in (0, 1):
        torch.manual_seed(s)
        draws.append(loss_grad(full_loss(model, data), params))
    assert not torch.equal(draws[0][0], draws[1][0])  # RPN anchors
    assert not torch.equal(draws[0][2], draws[1][2])  # RoI proposals
    # ...the adapter's does not depend on the global RNG state...
    torch.manual_seed(0)
    a = loss_grad(adapter.gt_loss(model, batch), params)
    torch.manual_seed(1)
    b = loss_grad(adapter.gt_loss(model, batch), params)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    # ...and leaves it as it found it
    torch.manual_seed(3)
    before = torch.rand(1)
    torch.manual_seed(3)
    adapter.gt_loss(model, batch)
    assert torch.equal(torch.rand(1), before)
    # the draws follow the selection seed
    other = FasterRCNNAdapter()
    other.prepare(model, seed=8)
    c = loss_grad(other.gt_loss(model, batch), params)
    assert not torch.equal(a[0], c[0]) and not torch.equal(a[2], c[2])


def test_hvp_equals_explicit_hessian(setup):
    model, adapter, context = setup
    batch = next(iter(context.loader(context.labeled_view())))
    H, sizes = check_hvp_against_explicit_hessian(model, adapter, batch)
    # the classification blocks have curvature; the L1 box losses do not;
    # mmdet detaches the proposals, so RPN and RoI blocks do not couple
    block = hessian_blocks(H, sizes)
    assert block[0][0].any() and block[2][2].any()
    assert not block[1][1].any() and not block[3][3].any()
    assert not any(block[i][j].any() for i in (0, 1) for j in (2, 3))


def test_scores_equal_per_image_reference(setup):
    model, adapter, context = setup
    check_scores_against_reference(model, adapter, context, SCORE_THR)


def test_two_cycles_end_to_end_and_same_seed_same_selection(
        frcnn_run, tmp_path):
    """The session's two-cycle run; a new run with the same seed trains
    the same cycle-0 model and selects the same images."""
    state = ALState.load(osp.join(frcnn_run, 'al_state.json'))
    sel = read_json(osp.join(frcnn_run, 'cycle_0', 'selection.json'))
    assert [r['cycle'] for r in state.cycles] == [0, 1]
    assert all('metric' in r for r in state.cycles)
    assert sel['selector'] == 'InfluenceSelector'
    assert len(sel['selected']) == 4 and sel['info']['num_scored'] > 0
    assert sorted(state.pool.ids_labeled_in(1)) == sorted(sel['selected'])
    cfg = _config()
    again = select_cycle0(cfg, train_cycle0(cfg, str(tmp_path / 'b')))
    assert again['selected'] == sel['selected']
    assert again['scores'] == sel['scores']
