"""ImageClassifierAdapter on mmpretrain classifiers of four families:
``LinearClsHead`` after a neck (ResNet) and after ConvNeXt's pooled,
normalised features (no neck), ``StackedLinearClsHead`` (MobileNetV3) and
``VisionTransformerClsHead`` (ViT).

* θ by rule (the weight of the head's last linear layer, found from the
  model) is the expected module's weight, on tiny models and on the demo
  configs (ResNet's stays ``head.fc.weight``);
* in float64: the adapter's per-image gradient equals autograd of the full
  ``ImageClassifier.loss``; the closed form's gradients, HVPs (and the
  explicit Hessian) and scores equal the autograd path's; the fast path's
  scores equal per-image references; a head whose output is not its final
  linear layer's takes autograd, on the batch where that shows;
* entropy, core-set, learning loss and random have what they need;
* two AL cycles of ISAL and of core-set on the MobileNetV3 demo config,
  of ISAL on the ViT and ConvNeXt ones.

Tolerances: ``assert_close64`` (1e-9 of the largest entry, float64).
"""
import copy
import json

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmpretrain.models import ImageClassifier
from mmpretrain.registry import MODELS
from torch import nn
from torch.func import functional_call
from torch.nn import functional as F

from mmal.influence import (ImageHessian, flat_dot, flatten, loss_grad,
                            unflatten)
from mmal.models import ImageClassifierAdapter, LearningLossModel
from mmal.structures import ALState
from mmal.testing import float64_mode
import classifier_reference
from classifier_reference import batched, random_like, randomise_batch_norm
from conftest import REPO, run_quietly, tiny_cls_config
from influence_reference import assert_close64, preprocess64

NUM_CLASSES = 3
SIZE = 32  # images are SIZE x SIZE (the tiny ViT's img_size)


def image_batches(num: int, seed: int, **kwargs) -> list:
    """:func:`classifier_reference.image_batches` of this file's size and
    classes."""
    return classifier_reference.image_batches(num, seed, SIZE, NUM_CLASSES,
                                              **kwargs)


LOSS_WEIGHT = 0.7
SCORE_THR = 0.5  # not used by classification (argmax pseudo labels)
GAP = dict(type='GlobalAveragePooling')
#: family -> (backbone, neck, head without num_classes / loss), the
#: expected final linear layer
FAMILIES = {
    'resnet': (dict(
        type='ResNet_CIFAR', depth=18, stem_channels=4,
        base_channels=4), GAP, dict(type='LinearClsHead',
                                    in_channels=32), 'head.fc'),
    'mobilenet_v3': (dict(type='MobileNetV3', arch='small_050'), GAP,
                     dict(
                         type='StackedLinearClsHead',
                         in_channels=288,
                         mid_channels=[16],
                         act_cfg=dict(type='HSwish')), 'head.layers.1.fc'),
    'vit': (dict(
        type='VisionTransformer',
        arch=dict(
            embed_dims=32, num_layers=2, num_heads=2, feedforward_channels=64),
        img_size=SIZE,
        patch_size=8), None,
            dict(
                type='VisionTransformerClsHead', in_channels=32,
                hidden_dim=16), 'head.layers.head'),
    # as mmpretrain's convnext configs: no neck, the backbone pools before
    # its final norm (gap_before_final_norm); layer scale 1 instead of 1e-6
    # so that the random blocks are not the identity
    'convnext': (dict(
        type='ConvNeXt',
        arch=dict(depths=[1, 1, 1, 1], channels=[8, 16, 24, 32]),
        gap_before_final_norm=True,
        layer_scale_init_value=1.0), None,
                 dict(type='LinearClsHead', in_channels=32), 'head.fc'),
}
NAMES = sorted(FAMILIES)


def tiny_classifier(family: str, seed: int = 0) -> ImageClassifier:
    """A random tiny classifier in eval mode: BN with random statistics and
    affine parameters, the head's linear layers drawn so that the logits
    are a few units (probabilities far from uniform)."""
    backbone, neck, head, _ = FAMILIES[family]
    torch.manual_seed(seed)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = ImageClassifier(
            backbone=backbone,
            neck=neck,
            head=dict(
                head,
                num_classes=NUM_CLASSES,
                loss=dict(type='CrossEntropyLoss', loss_weight=LOSS_WEIGHT)),
            data_preprocessor=dict(
                type='ClsDataPreprocessor',
                mean=[120., 110., 100.],
                std=[60., 50., 40.]))
    with torch.no_grad():
        randomise_batch_norm(model)
        for m in model.head.modules():
            if isinstance(m, nn.Linear):
                m.weight.normal_(0, 3 / m.in_features**0.5)
                m.bias.normal_(0, 0.5)
    return model.eval()


@pytest.fixture(scope='module')
def models():
    return {}


def model_of(models: dict, family: str) -> ImageClassifier:
    """The family's tiny classifier, built once per module."""
    if family not in models:
        models[family] = tiny_classifier(family)
    return models[family]


def model_loss_grad(model, batch: dict, param: nn.Parameter,
                    label: int) -> torch.Tensor:
    """``∇θ`` of mmpretrain's full ``ImageClassifier.loss`` (backbone to
    loss, no adapter) of one image on ``label``."""
    data = preprocess64(model, copy.deepcopy(batch))
    sample = data['data_samples'][0]
    sample.set_gt_label(label)
    loss = model.loss(data['inputs'], [sample])['loss']
    return torch.autograd.grad(loss, [param])[0]


def plain_loss(model, name: str, batch: dict, label: int):
    """``θ -> loss_weight * CE(model(x; θ), label)`` (the plain forward,
    ``mode='tensor'``, θ put in by ``functional_call``) and θ now."""
    inputs = preprocess64(model, copy.deepcopy(batch))['inputs']
    param = dict(model.named_parameters())[name]
    target = torch.tensor([label])

    def loss_fn(theta: torch.Tensor) -> torch.Tensor:
        logits = functional_call(
            model, {name: theta.reshape(param.shape)}, (inputs, ),
            dict(mode='tensor'),
            strict=False)
        return LOSS_WEIGHT * F.cross_entropy(logits, target)

    return loss_fn, param.detach().reshape(-1).clone()


def hvp_columns(hvp, like) -> torch.Tensor:
    """The matrix of ``hvp`` (its products with the basis vectors)."""
    n = sum(p.numel() for p in like)
    basis = torch.eye(n, dtype=torch.float64)
    return torch.stack([flatten(hvp(unflatten(e, like))) for e in basis],
                       dim=1)


def argmax_label(model, batch: dict) -> int:
    inputs = preprocess64(model, copy.deepcopy(batch))['inputs']
    with torch.no_grad():
        return int(model(inputs, mode='tensor').argmax())


# -- θ by rule ----------------------------------------------------------------
@pytest.mark.parametrize('family', NAMES)
def test_theta_by_rule_is_the_final_linear_weight(models, family):
    model = model_of(models, family)
    final = FAMILIES[family][3]
    adapter = ImageClassifierAdapter()
    assert adapter.param_names == [] and adapter.by_rule
    adapter.prepare(model)
    (name, param), = adapter.parameters(model)
    assert name == f'{final}.weight'
    assert param is model.get_submodule(final).weight
    assert adapter.head_info(model).final_linear == final
    assert adapter.head_only and adapter.uses_closed_form(model)
    # named explicitly: the same θ and closed form
    named = ImageClassifierAdapter(param_names=[name])
    named.prepare(model)
    assert named.param_names == [name] and named.uses_closed_form(model)
    # the closed form's f is the final layer's input: the head's pre_logits
    x = torch.randn(2, 3, SIZE, SIZE)
    with torch.no_grad():
        feats = model.extract_feat(x)
        f = adapter._pre_logits(model, feats)
        assert torch.equal(f, model.head.pre_logits(feats))
        assert torch.equal(adapter._logits(model, f), model.head(feats))


DEMO_THETA = {
    # config -> (θ's name, shape)
    'isal_resnet18-small_shapes-cls.py': ('head.fc.weight', (4, 128)),
    'isal_mobilenet-v3-small_shapes-cls.py': ('head.layers.1.fc.weight',
                                              (4, 1280)),
    'isal_vit-tiny_shapes-cls.py': ('head.layers.head.weight', (4, 64)),
    'isal_convnext-tiny_shapes-cls.py': ('head.fc.weight', (4, 128)),
}


@pytest.mark.parametrize('name', sorted(DEMO_THETA))
def test_demo_configs_find_theta_by_rule(name):
    """The demo configs name no adapter settings (θ, scale): the model's
    last linear weight is found, and the closed form applies."""
    cfg = Config.fromfile(f'{REPO}/configs/{name}')
    adapter_cfg = cfg.al_cfg.get('adapter')  # None: from the model's type
    assert adapter_cfg is None or dict(adapter_cfg) == dict(
        type='mmal.ImageClassifierAdapter')
    model_cfg = cfg.model.to_dict()
    model_cfg['data_preprocessor'] = cfg.data_preprocessor.to_dict()
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = MODELS.build(model_cfg).eval()
    adapter = ImageClassifierAdapter()
    adapter.prepare(model)
    (theta, param), = adapter.parameters(model)
    assert (theta, tuple(param.shape)) == DEMO_THETA[name]
    assert adapter.uses_closed_form(model)


# -- float64: gradients, HVPs and scores ------------------------------------
@pytest.mark.parametrize('family', NAMES)
def test_gradients_and_hvps_equal_autograd_of_the_model_loss(models, family):
    """Per labeled image: the closed form's gradient equals autograd of
    mmpretrain's full ``model.loss`` and of the adapter's loss; its HVP
    matrix equals the autograd one and the explicit Hessian of the plain
    forward + CE."""
    model = model_of(models, family)
    closed = ImageClassifierAdapter()
    closed.prepare(model)
    auto = ImageClassifierAdapter(closed_form=False)
    auto.prepare(model)
    assert not auto.uses_closed_form(model)
    name, = closed.param_names
    labeled = image_batches(2, seed=1)
    with float64_mode(closed, model), float64_mode(auto, model):
        params = [p for _, p in closed.parameters(model)]
        ours = closed.cache_entries(model, batched(model, closed, labeled))
        ref = auto.cache_entries(model, batched(model, auto, labeled))
        assert all('linear' in e for e in ours)
        assert all('feats' in e and 'linear' not in e for e in ref)
        by_id = {b['sample_id'][0]: b for b in labeled}
        for entry, entry_ref in zip(ours, ref):
            assert entry['sample_id'] == entry_ref['sample_id']
            batch = by_id[entry['sample_id']]
            label = int(batch['data_samples'][0].gt_label)
            grad, = closed.cached_gt_grad(model, entry, params)
            whole = model_loss_grad(model, batch, params[0], label)
            assert float(whole.abs().max()) > 1e-3  # not a vanishing check
            assert_close64(grad, whole)
            assert_close64(
                grad,
                loss_grad(closed.gt_loss(model, copy.deepcopy(batch)),
                          params)[0])
            assert_close64(grad,
                           auto.cached_gt_grad(model, entry_ref, params)[0])
            H = hvp_columns(closed.cached_hvp(model, entry, params), params)
            assert_close64(
                H,
                hvp_columns(
                    ImageHessian(
                        lambda b=batch: auto.gt_loss(model, copy.deepcopy(b)),
                        params), params))
            assert float(H.abs().max()) > 1e-4
            loss_fn, theta = plain_loss(model, name, batch, label)
            assert_close64(H, torch.func.hessian(loss_fn)(theta).detach())
    assert all(p.dtype == torch.float32 for p in model.parameters())


@pytest.mark.parametrize('family', NAMES)
def test_fast_path_scores_equal_per_image_references(models, family):
    """Batched scores along a random direction: the closed form, the
    batched autograd pass (OutputProbe) and, per image, autograd of the
    adapter's pseudo loss and of the plain forward with the argmax
    label."""
    model = model_of(models, family)
    closed = ImageClassifierAdapter()
    closed.prepare(model)
    auto = ImageClassifierAdapter(closed_form=False)
    auto.prepare(model)
    name, = closed.param_names
    unlabeled = image_batches(4, seed=2, labeled=False, prefix='u')
    with float64_mode(closed, model), float64_mode(auto, model):
        params = [p for _, p in closed.parameters(model)]
        s = random_like(params, 3)
        data = batched(model, closed, unlabeled)
        fast = closed.directional_scores(model, data, s, SCORE_THR)
        batched_autograd = auto.directional_scores(
            model, batched(model, auto, unlabeled), s, SCORE_THR)
        by_id = {b['sample_id'][0]: b for b in unlabeled}
        per_image, plain = [], []
        for sid, sample in zip(data['sample_id'], data['data_samples']):
            batch = by_id[sid]
            label = argmax_label(model, batch)
            assert int(sample.gt_label) == label  # the pseudo label
            loss, num = auto.pseudo_loss(model, copy.deepcopy(batch),
                                         SCORE_THR)
            assert num == 1
            per_image.append(float(flat_dot(s, loss_grad(loss, params))))
            loss_fn, theta = plain_loss(model, name, batch, label)
            plain.append(
                float(flatten(s) @ torch.func.grad(loss_fn)(theta).detach()))
    assert [n for _, n in fast] == [n for _, n in batched_autograd] == [1] * 4
    ours = torch.tensor([v for v, _ in fast], dtype=torch.float64)
    ref = torch.tensor(per_image, dtype=torch.float64)
    assert float(ref.abs().max()) > 1e-3
    assert_close64(ours, ref)
    assert_close64(ours, torch.tensor(plain, dtype=torch.float64))
    assert_close64(
        torch.tensor([v for v, _ in batched_autograd], dtype=torch.float64),
        ref)


def test_a_head_not_ending_in_its_linear_layer_takes_autograd(models):
    """A ``StackedLinearClsHead`` whose last block gets an activation after
    its fc: θ by rule is still that fc's weight, but the head's output is
    no longer the fc's. An adapter prepared before the change sees it on
    the next batch (autograd entries); one prepared after it never takes
    the closed form; the gradients equal autograd of ``model.loss``."""
    model = tiny_classifier('mobilenet_v3', seed=4)
    before = ImageClassifierAdapter()
    before.prepare(model)
    assert before.uses_closed_form(model)
    model.head.layers[-1].act = nn.ReLU()
    after = ImageClassifierAdapter()
    after.prepare(model)
    assert after.param_names == ['head.layers.1.fc.weight']
    assert after.head_info(model).final_linear is None
    assert not after.uses_closed_form(model)
    labeled = image_batches(2, seed=5)
    unlabeled = image_batches(2, seed=6, labeled=False, prefix='u')
    with float64_mode(before, model):
        params = [p for _, p in before.parameters(model)]
        entries = before.cache_entries(model, batched(model, before, labeled))
        assert all('feats' in e and 'linear' not in e for e in entries)
        for entry, batch in zip(entries, labeled):
            label = int(batch['data_samples'][0].gt_label)
            assert_close64(
                before.cached_gt_grad(model, entry, params)[0],
                model_loss_grad(model, batch, params[0], label))
        s = random_like(params, 7)
        found = before.directional_scores(model,
                                          batched(model, before, unlabeled), s,
                                          SCORE_THR)
        ref = []
        for batch in unlabeled:
            loss, _ = before.pseudo_loss(model, copy.deepcopy(batch),
                                         SCORE_THR)
            ref.append(float(flat_dot(s, loss_grad(loss, params))))
    assert_close64(
        torch.tensor([v for v, _ in found], dtype=torch.float64),
        torch.tensor(ref, dtype=torch.float64))


# -- the baselines' needs -----------------------------------------------------
LL_FEATURES = {
    # family -> (feature_modules, in_channels)
    'resnet': ([f'backbone.layer{i}' for i in range(1, 5)], None),
    'mobilenet_v3': ([
        'backbone.layer1', 'backbone.layer3', 'backbone.layer8',
        'backbone.layer12'
    ], [8, 16, 24, 288]),
    'vit': (['backbone'], [32]),  # the class token, (B, 32)
    # the stages' maps, channels from one pass
    'convnext': ([f'backbone.stages.{i}' for i in range(4)], None),
}


@pytest.mark.parametrize('family', NAMES)
def test_entropy_coreset_and_learning_loss_inputs(models, family):
    """Entropy: the softmax of the head's output; core-set: the head's
    ``pre_logits``; learning loss: a module on the family's features,
    trained on the adapter's per-image losses."""
    model = model_of(models, family)
    adapter = ImageClassifierAdapter()
    adapter.prepare(model)
    batches = image_batches(4, seed=8)
    data = batched(model, adapter, batches)
    with torch.no_grad():
        logits = model(data['inputs'], mode='tensor')
        feats = model.extract_feat(data['inputs'])
    preds = adapter.predict_batch(model, data)
    assert torch.allclose(torch.stack(preds), logits.softmax(1))
    assert adapter.prediction_entropy(preds[0]) > 0
    embedding = adapter.embed(model, data['inputs'])
    assert torch.equal(embedding, model.head.pre_logits(feats))
    assert embedding.shape == (4, adapter._final_module(model).in_features)
    modules, channels = LL_FEATURES[family]
    wrapped = LearningLossModel(
        copy.deepcopy(model), feature_modules=modules, in_channels=channels)
    losses = wrapped.loss(data['inputs'], data['data_samples'])
    assert set(losses) == {'loss_task', 'loss_ranking'}
    assert torch.isfinite(losses['loss_ranking'])
    assert wrapped.predict_loss(data['inputs']).shape == (4, )


# -- end to end --------------------------------------------------------------
@pytest.mark.parametrize('selector, config, theta', [
    ('isal', 'isal_mobilenet-v3-small_shapes-cls.py',
     'head.layers.1.fc.weight'),
    ('coreset', 'isal_mobilenet-v3-small_shapes-cls.py', None),
    ('isal', 'isal_vit-tiny_shapes-cls.py', 'head.layers.head.weight'),
    ('isal', 'isal_convnext-tiny_shapes-cls.py', 'head.fc.weight'),
])
def test_two_cycles_on_mobilenet_v3_vit_and_convnext(tmp_path, selector,
                                                     config, theta):
    """ISAL (θ by rule, closed form) and core-set (the head's
    ``pre_logits``) through the driver on the MobileNetV3, ViT and ConvNeXt
    demo configs, which name no adapter."""
    cfg = tiny_cls_config(config)
    assert cfg.al_cfg.get('adapter') is None
    if selector == 'coreset':
        cfg.al_cfg.selector = dict(type='mmal.CoresetSelector')
    run_quietly(cfg, str(tmp_path))
    state = ALState.load(f'{tmp_path}/al_state.json')
    initial = state.pool.ids_labeled_in(0)
    selected = state.pool.ids_labeled_in(1)
    assert len(initial) == 8 and len(selected) == 4
    assert not set(initial) & set(selected)
    assert state.record(1)['images'] == 12
    with open(f'{tmp_path}/cycle_0/selection.json') as f:
        selection = json.load(f)
    assert sorted(selection['selected']) == sorted(selected)
    if selector == 'isal':
        info = selection['info']
        assert info['num_scored'] == 24 and info['fast_path']
        assert info['lissa_scales']['block_names'] == [theta]
