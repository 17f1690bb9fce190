"""ISAL on the detectors people train today (RetinaNet, ATSS, GFL, RTMDet,
YOLOX, Cascade R-CNN): the adapter chosen from the model's type, θ found by
rule, and the float64 checks FCOS and Faster R-CNN have
(tests/test_fcos_influence.py), each against a slow, obviously-correct
reference:

* the adapter's frozen-trunk loss gives the θ-gradient of mmdet's full
  ``model.loss``;
* its Hessian-vector product equals an explicit Hessian of the full loss;
* the fast path's scores (cached towers or trunk, batched) equal the
  per-image reference (``model.predict`` at batch 1, pseudo labels,
  ``model.loss`` through the whole network, autograd).
"""
import pytest
import torch

from mmal.models.auto_adapter import adapter_for
from mmal.registry import AL_ADAPTERS
from mmal.testing.scenario import confident
from conftest import tiny_config
from families import FAMILIES, hessian_blocks
from influence_reference import (check_gradients_against_full_loss,
                                 check_hvp_against_explicit_hessian,
                                 check_scores_against_reference, tiny_detector)

SCORE_THR = 0.1


@pytest.fixture(scope='module', params=sorted(FAMILIES))
def family(request, tmp_path_factory):
    name = request.param
    config, overrides, theta = FAMILIES[name]
    cfg = tiny_config(config, **overrides)
    adapter = AL_ADAPTERS.build(adapter_for(cfg.model, 'mmdet'))
    model, adapter, context = tiny_detector(
        tmp_path_factory.mktemp(name), config, adapter, overrides, confident)
    return name, theta, model, adapter, context


def test_theta_is_the_weights_of_the_heads_output_layers(family):
    name, theta, model, adapter, _ = family
    assert type(adapter).__name__ == 'SingleStageAdapter'
    names = [n for n, _ in adapter.parameters(model)]
    assert names == theta
    params = dict(model.named_parameters())
    assert all(p is params[n] for n, p in adapter.parameters(model))


def test_gt_loss_gradient_equals_full_model_loss(family):
    _, _, model, adapter, context = family
    grads = check_gradients_against_full_loss(model, adapter, context)
    assert any(float(g.abs().sum()) > 0 for gs in grads for g in gs)


def test_hvp_equals_explicit_hessian(family):
    _, _, model, adapter, context = family
    batch = next(iter(context.loader(context.labeled_view())))
    H, sizes = check_hvp_against_explicit_hessian(model, adapter, batch)
    assert float(H.abs().max()) > 0


def test_scores_equal_per_image_reference(family):
    _, _, model, adapter, context = family
    check_scores_against_reference(model, adapter, context, SCORE_THR)


def test_towers_replay_only_where_they_reproduce_the_head(family):
    """Per-level towers (RTMDet, YOLOX) are never replayed: the fast path
    caches the trunk instead; shared towers replay exactly."""
    name, _, model, adapter, context = family
    head = model.bbox_head
    if name in ('rtmdet', 'yolox'):
        assert not adapter._has_towers(head)
        return
    assert adapter._has_towers(head)
    batch = next(iter(context.loader(context.labeled_view())))
    data = adapter.preprocess(model, batch)
    with torch.no_grad():
        feats = adapter.extract_features(model, data['inputs'])
        ok, towers = adapter._checked_towers(head, feats)
    assert ok and all(len(levels) == 3 for levels in towers.values())


# -- two-stage: Cascade R-CNN -------------------------------------------------
CASCADE_TINY = {
    'demo_data.num_train': 16,  # 10 unlabeled images: the reference is slow
    'model.rpn_head.feat_channels': 4,
    'model.roi_head.bbox_head': [
        dict(h, fc_out_channels=8) for h in tiny_config(
            'isal_cascade-rcnn_shapes.py').model.roi_head.bbox_head
    ],
    'model.train_cfg.rcnn': [
        dict(stage, sampler=dict(stage['sampler'], num=16)) for stage in
        tiny_config('isal_cascade-rcnn_shapes.py').model.train_cfg.rcnn
    ],
}


def _confident_stages(model):
    """Every stage's classifier x30: confident boxes, so pseudo labels."""
    for head in model.roi_head.bbox_head:
        head.fc_cls.weight.mul_(30)


@pytest.fixture(scope='module')
def cascade(tmp_path_factory):
    cfg = tiny_config('isal_cascade-rcnn_shapes.py', **CASCADE_TINY)
    adapter = AL_ADAPTERS.build(adapter_for(cfg.model, 'mmdet'))
    return tiny_detector(
        tmp_path_factory.mktemp('cascade'),
        'isal_cascade-rcnn_shapes.py',
        adapter,
        CASCADE_TINY,
        _confident_stages,
        seed=7)


def test_cascade_theta_is_the_rpn_and_every_stages_output_layers(cascade):
    model, adapter, _ = cascade
    assert type(adapter).__name__ == 'TwoStageAdapter'
    assert [n for n, _ in adapter.parameters(model)
            ] == ['rpn_head.rpn_cls.weight', 'rpn_head.rpn_reg.weight'] + [
                f'roi_head.bbox_head.{i}.fc_{b}.weight' for i in range(3)
                for b in ('cls', 'reg')
            ]


def test_cascade_gradient_equals_full_model_loss(cascade):
    model, adapter, context = cascade
    grads = check_gradients_against_full_loss(model, adapter, context)
    # every stage's output layers get a gradient
    assert all(float(g.abs().sum()) > 0 for g in grads[0][2:])


def test_cascade_hvp_equals_explicit_hessian(cascade):
    """The HVP against the explicit Hessian of the full ``model.loss``
    over all of θ (312 entries: 4-channel RPN, 8-d fcs)."""
    model, adapter, context = cascade
    batch = next(iter(context.loader(context.labeled_view())))
    H, sizes = check_hvp_against_explicit_hessian(model, adapter, batch)
    block = hessian_blocks(H, sizes)
    # the RPN's and every stage's classifier have curvature: each stage's
    # loss reaches the HVP...
    assert all(block[i][i].any() for i in (0, 2, 4, 6))
    # ...and no two layers of θ couple: the RPN's and each head's terms
    # are separate losses, mmdet detaches the proposals, and each stage
    # refines the boxes of the next without autograd
    assert not any(block[i][j].any() for i in range(8)
                   for j in range(8) if i != j)


def test_cascade_scores_equal_per_image_reference(cascade):
    model, adapter, context = cascade
    check_scores_against_reference(model, adapter, context, SCORE_THR)
