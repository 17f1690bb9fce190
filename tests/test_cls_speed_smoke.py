"""The classifier speed benchmark
(``tools/benchmarks/scenarios/cls_influence_speed.py``) on a few images of
the demo ResNet-18 and, more briefly, of the other demo models
(MobileNetV3-Small, the tiny ViT and ConvNeXt), in float64.

Its per-image reference scores are checked against an independent
computation (the plain forward ``model(x, mode='tensor')``,
``F.cross_entropy`` on the argmax class, ``torch.autograd.grad`` to θ found
from the modules, dot product with the direction), and its batched scores
against its reference. In float64 two paths that compute the same number
agree to ~1e-15; the tolerance is ``RTOL`` = 1e-9 of the largest score.
"""
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from mmal.models import ImageClassifierAdapter
from mmal.testing.benchmark import torch_threads
from mmal.utils import ConfigError, register_all_modules
from scenarios.cls_influence_speed import (COMPARED, MODELS, ClsSpeedOptions,
                                           benchmark_model, direction_for,
                                           final_linear, preprocess_batch,
                                           random_items, report, run)

RTOL = 1e-9
OPTS = dict(
    small=True,
    num_images=4,
    batch_size=3,
    reference_images=2,
    float64=True,
    threads=1,
    seed=3)
PHASES = ('predict', 'extract_feat', 'last_closed_form', 'last_autograd',
          'last_reference', 'all_fast', 'all_reference')


@pytest.fixture(scope='module')
def result():
    register_all_modules()
    return run(ClsSpeedOptions(**OPTS))


def plain_scores(theta: str, num: int, opts: dict = OPTS) -> dict:
    """``∇θ CE(model(x), argmax) · S`` per image by plain autograd on the
    benchmark's model, images and direction (float64)."""
    with torch_threads(opts['threads']):  # the same calibration rounding
        model = benchmark_model(
            opts.get('model', 'resnet18'), opts['small'], opts['seed'])
    if theta == 'last':
        params = [final_linear(model).weight]
        adapter = ImageClassifierAdapter()
    else:
        params = [
            m.weight for m in model.modules()
            if isinstance(m, (nn.Conv2d, nn.Linear))
        ]
        adapter = ImageClassifierAdapter(param_types=('Conv2d', 'Linear'))
    direction = [
        d.double() for d in direction_for(model, adapter, opts['seed'])
    ]
    model.double()
    weight = float(model.head.loss_module.loss_weight)
    out = {}
    for item in random_items(opts['num_images'], opts['seed'])[:num]:
        logits = model(preprocess_batch(model, item)['inputs'], mode='tensor')
        loss = weight * F.cross_entropy(logits, logits.argmax(1))
        grads = torch.autograd.grad(loss, params)
        out[item['sample_id'][0]] = float(
            sum((g * d).sum() for g, d in zip(grads, direction)))
    return out


def assert_scores_close(ours: dict, ref: dict) -> None:
    assert sorted(ours) == sorted(ref)
    scale = max(abs(x) for x in ref.values())
    for key, value in ref.items():
        assert abs(ours[key] - value) <= RTOL * scale, key


@pytest.mark.parametrize('theta,num', [('last', OPTS['num_images']),
                                       ('all', OPTS['reference_images'])])
def test_reference_scores_equal_plain_autograd(result, theta, num):
    assert_scores_close(result['scores'][f'{theta}_reference'],
                        plain_scores(theta, num))


def test_results_are_complete(result):
    assert set(result['phases']) == set(PHASES)
    for m in result['phases'].values():
        assert m['seconds'] > 0 and m['peak_mib'] > 0
    ref = result['phases']['all_reference']
    assert ref['images'] == OPTS['reference_images']
    assert ref['seconds_scaled'] == pytest.approx(
        ref['seconds'] * OPTS['num_images'] / OPTS['reference_images'])
    assert result['dtype'] == 'float64' and result['theta']['closed_form']
    assert result['predicted_classes'] > 1  # the calibrated head
    assert set(result['agreement']) == {f'{a}_vs_{b}' for a, b in COMPARED}
    text = report(result)
    assert 'closed form' in text and 'per-image' in text


@pytest.mark.parametrize('fast', ['last_closed_form', 'last_autograd'])
def test_last_layer_batched_scores_equal_per_image(result, fast):
    c = result['agreement'][f'{fast}_vs_last_reference']
    assert c['num_compared'] == OPTS['num_images']
    assert c['max_abs_diff_over_max_abs'] <= RTOL
    assert c['same_ranking']


def test_all_weights_batched_scores_equal_per_image(result):
    c = result['agreement']['all_fast_vs_all_reference']
    assert c['num_compared'] == OPTS['reference_images']
    assert c['max_abs_diff_over_max_abs'] <= RTOL
    assert c['same_ranking']


#: the other models: 3 images in batches of 2, the all-weights reference on
#: the first
OTHER = dict(
    OPTS, small=False, num_images=3, batch_size=2, reference_images=1, seed=5)


@pytest.mark.parametrize('model', [m for m in MODELS if m != 'resnet18'])
def test_the_other_demo_models(model):
    """``--model``: each phase runs; the scores equal plain autograd's
    (last layer: all images; all weights: the first) and the batched ones
    the per-image ones."""
    register_all_modules()
    opts = dict(OTHER, model=model)
    res = run(ClsSpeedOptions(**opts))
    assert set(res['phases']) == set(PHASES)
    assert res['theta']['closed_form'] and res['model'].endswith(
        'random weights, calibrated head')
    assert res['predicted_classes'] > 1
    for fast, ref in COMPARED:
        c = res['agreement'][f'{fast}_vs_{ref}']
        assert c['max_abs_diff_over_max_abs'] <= RTOL, (fast, c)
    assert_scores_close(res['scores']['last_reference'],
                        plain_scores('last', OTHER['num_images'], opts))
    assert_scores_close(res['scores']['all_reference'],
                        plain_scores('all', OTHER['reference_images'], opts))
    assert 'closed form' in report(res)


@pytest.mark.parametrize('bad', [
    dict(amp=True),
    dict(amp=True, device='cuda', float64=True),
    dict(reference_images=5, num_images=4),
    dict(num_images=0),
    dict(threads=0),
    dict(model='vit-tiny', small=True),
    dict(model='resnet50')
])
def test_bad_options_are_config_errors(bad):
    with pytest.raises(ConfigError):
        ClsSpeedOptions(**bad)
