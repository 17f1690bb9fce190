"""The selector speed benchmark
(``tools/benchmarks/scenarios/selector_speed.py``) on a few 64x64 images of
the FCOS and the classification demos.

Besides the structure of the results, the benchmark's entropy phase is
checked against an independent per-image computation in float64: the
model's own batch-1 ``model.predict`` (mmdet / mmpretrain), and the
entropy written out here (detection: the largest binary entropy of a
predicted box's score; classification: the softmax entropy). In float64
two paths that compute the same number agree to ~1e-15 relative; the
tolerance is ``RTOL`` = 1e-9 of the largest entropy.

The PPAL diversity mode (``ppal_diversity``) runs on 40 synthetic images
of 10 detections; its seeds and medoids are checked against the functions
called directly on the same detections.
"""
import importlib.util
import math
import os.path as osp

import numpy as np
import pytest
import torch

from mmal.selectors.ccms import ccms_distances
from mmal.selectors.k_medoids import farthest_first, k_medoids
from mmal.testing import float64_mode
from mmal.utils import ConfigError, register_all_modules
from scenarios.selector_speed import (BOX_PHASES, DENSE_PHASES, EXPECTED,
                                      PHASES, PPAL_SCORE_THR, TARGETS,
                                      TRAIN_STEPS, SelectorSpeedOptions,
                                      build_setup, entropy_pass,
                                      ppal_detections, report, run)

RTOL = 1e-9
CONFIGS = ('configs/isal_fcos_shapes.py',
           'configs/isal_resnet18-small_shapes-cls.py')
# batch 5: 12 images make two full batches and a partial one
OPTS = dict(num_images=12, img_size=64, batch_size=5, repeat=1, threads=1)


def options(config: str) -> SelectorSpeedOptions:
    return SelectorSpeedOptions(config=config, **OPTS)


@pytest.fixture(scope='module', params=CONFIGS)
def result(request, tmp_path_factory):
    register_all_modules()
    res = run(options(request.param), str(tmp_path_factory.mktemp('run')))
    return request.param, res


def entropy_of(res) -> float:
    """The entropy of one ``model.predict`` result, in float64."""
    if 'pred_instances' in res:  # detection: the most uncertain box
        s = res.pred_instances.scores.double()
        if len(s) == 0:
            return None
        return float((-s * s.log() - (1 - s) * (1 - s).log()).max())
    p = res.pred_score.double()
    return float(-(p * p.log()).sum())


def test_results_are_complete(result):
    config, res = result
    detects = 'fcos' in config
    assert set(res['phases']) == set(PHASES) - (
        set() if detects else set(BOX_PHASES + DENSE_PHASES))
    for m in res['phases'].values():
        assert m['seconds'] > 0 and m['warmup_s'] > 0 and m['peak_mib'] > 0
        assert len(m['seconds_all']) == OPTS['repeat']
        assert m['images_per_s'] == pytest.approx(OPTS['num_images'] /
                                                  m['seconds'])
    t = {k: m['seconds'] for k, m in res['phases'].items()}
    assert set(res['targets_met']) == {
        k
        for k in TARGETS if detects or k.split('/')[0] not in DENSE_PHASES
    }
    assert set(res['ratios']) == {
        f'{k}/plain'
        for k in t if k != 'plain'
    } | ({'ppal_dcus/plain_ppal_cfg'} if detects else set())
    assert res['expected'] == (EXPECTED if detects else {})
    for key in res['ratios']:
        num, den = key.split('/')
        assert res['ratios'][key] == pytest.approx(t[num] / t[den])
    for key in res['targets_met']:
        assert res['targets_met'][key] == (res['ratios'][key] <= TARGETS[key])
    assert res['image_size'] == '64x64' and res['batch_size'] == 5
    assert res['feature_dim'] > 0
    if detects:  # the zeroed cls bias makes the detector predict
        assert res['boxes_per_image'] > 0
        # reference boxes (score >= 0.1): the noisy passes ran
        assert res['stability_scored'] > 0
    else:
        assert res['boxes_per_image'] is None
        assert res['stability_scored'] is None
    tr = res['training']  # learning loss's training overhead
    assert tr['steps'] == TRAIN_STEPS and tr['batch_size'] == 5
    for m in (tr['plain'], tr['learning_loss']):
        assert m['seconds_per_step'] == pytest.approx(m['seconds'] /
                                                      TRAIN_STEPS)
    assert tr['ratio'] == pytest.approx(tr['learning_loss']['seconds'] /
                                        tr['plain']['seconds'])
    text = report(res)
    assert 'entropy pass' in text and 'core-set features' in text
    assert 'learning loss pass' in text and 'training step' in text
    assert ('stability pass' in text) == detects


def test_entropies_cover_every_image(result):
    _, res = result
    ids = res['unlabeled_ids']
    assert len(ids) == OPTS['num_images'] == len(set(ids))
    assert sorted(res['entropies']) == sorted(ids)
    assert res['num_unscored'] == sum(v is None
                                      for v in res['entropies'].values())


@pytest.mark.parametrize('config', CONFIGS)
def test_entropy_phase_equals_per_image_predict(config, tmp_path):
    """The benchmark's entropy phase (batches of 5, float64) against batch-1
    ``model.predict`` and the entropy formula, image by image."""
    register_all_modules()
    threads = torch.get_num_threads()
    torch.set_num_threads(OPTS['threads'])  # as run() does
    try:
        check_entropies(config, str(tmp_path))
    finally:
        torch.set_num_threads(threads)


def check_entropies(config: str, work_dir: str) -> None:
    model, adapter, context = build_setup(options(config), work_dir)
    view = context.unlabeled_view()
    with float64_mode(adapter, model) as bare, torch.no_grad():
        ours = entropy_pass(context, OPTS['batch_size'])
        ref = {}
        for item in context.loader(view):
            data = bare.data_preprocessor(item, False)
            pred = bare.predict(data['inputs'].double(),
                                data['data_samples'])[0]
            ref[item['sample_id'][0]] = entropy_of(pred)
    assert sorted(ours) == sorted(ref) == sorted(view.sample_ids)
    scored = [k for k, v in ref.items() if v is not None]
    assert scored, 'no image has a prediction: nothing is compared'
    assert sorted(k for k, v in ours.items()
                  if v is not None) == sorted(scored)
    top = max(ref[k] for k in scored)
    assert 0 < top <= math.log(4) + 1e-12
    for key in scored:
        assert abs(ours[key] - ref[key]) <= RTOL * top, key


@pytest.mark.parametrize('bad', [
    dict(num_images=0),
    dict(batch_size=0),
    dict(repeat=0),
    dict(img_size=8),
    dict(threads=0),
    dict(num_workers=-1),
    dict(device='tpu'),
    dict(amp=True),
    dict(ppal_diversity=1),
    dict(ppal_boxes=0),
    dict(ppal_classes=0),
    dict(ppal_dim=0),
    dict(ppal_valid=1.5),
])
def test_bad_options_are_config_errors(bad):
    with pytest.raises(ConfigError):
        SelectorSpeedOptions(**bad)


PPAL = dict(
    ppal_diversity=40, ppal_boxes=10, ppal_classes=4, ppal_dim=8, threads=1)


def test_ppal_diversity_mode(tmp_path):
    opts = SelectorSpeedOptions(**PPAL)
    res = run(opts, str(tmp_path))
    assert res['kind'] == 'ppal_diversity'
    assert set(res['phases']) == {'ccms', 'farthest_first', 'k_medoids'}
    for m in res['phases'].values():
        assert m['seconds'] > 0 and m['peak_mib'] > 0
        assert m['cpu_seconds'] >= 0
    assert res['total_s'] == pytest.approx(
        sum(m['seconds'] for m in res['phases'].values()))
    assert res['num_images'] == 40 and res['budget'] == 20
    assert res['matrix_mib'] == pytest.approx(40 * 40 * 4 / 2**20)
    # the detections: score-sorted, valid ones as counted
    det = ppal_detections(opts)
    assert len(det['feats']) == 40 and det['feats'][0].shape == (10, 8)
    valid = torch.cat([s > PPAL_SCORE_THR for s in det['scores']])
    assert res['valid_total'] == det['valid_total'] == int(valid.sum())
    assert 0.1 < float(valid.float().mean()) < 0.5  # ppal_valid 0.3
    assert all((s[:-1] >= s[1:]).all() for s in det['scores'])
    labels = torch.cat(det['labels'])[valid]
    assert res['pairs'] == sum(int((labels == c).sum())**2 for c in range(4))
    # the same selection by the functions called directly
    dist = ccms_distances(det['labels'], det['scores'], det['feats']).numpy()
    seeds = farthest_first(dist, 20, res['first'])
    medoids, assign = k_medoids(dist, seeds)
    assert res['distinct'] == len(set(medoids))
    assert res['moved'] == len(set(medoids) - set(seeds))
    assert res['empty_clusters'] == int((np.bincount(assign,
                                                     minlength=20) == 0).sum())
    text = report(res)
    assert 'PPAL diversity: 40 candidate images x 10 detections' in text
    assert 'k-medoids (k_medoids)' in text and 'budget 20' in text


def test_ppal_diversity_command_line(capsys):
    path = osp.join(
        osp.dirname(osp.dirname(osp.abspath(__file__))), 'tools', 'benchmarks',
        'selector_speed.py')
    spec = importlib.util.spec_from_file_location('selector_speed_cli', path)
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    argv = []
    for key, value in PPAL.items():
        argv += ['--' + key.replace('_', '-'), str(value)]
    res = cli.main(argv)
    assert res['kind'] == 'ppal_diversity' and res['num_images'] == 40
    assert 'CCMS distances (ccms_distances)' in capsys.readouterr().out
