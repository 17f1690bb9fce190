"""Localization stability (:mod:`mmal.selectors.localization_stability`).

* the math on hand-made boxes (IoUs computed by hand, float64): exact
  matches, a shifted box, a level without box, the score-weighted mean,
  class-agnostic matching, the reference threshold;
* the pixel noise: seeded by (seed, id, level) only, whatever the batch;
  the padding untouched; its standard deviation in pixel space; clipping;
* the ranking: least stable first, the unscored policy;
* end to end: two cycles of the tiny FCOS and Faster R-CNN demos through
  mmal's driver; the selection made again on the trained model is the
  same; batches of 1 and of 4 give the same scores (float64).

One process against two: ``test_distributed.py``.
"""
import contextlib
import io
import json
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.structures import InstanceData

from mmal.models import ImageClassifierAdapter
from mmal.selectors import (LocalizationStabilitySelector, add_pixel_noise,
                            box_stability, localization_stability,
                            prediction_stability)
from mmal.selectors.localization_stability import (pixel_noise,
                                                   pixel_normalisation)
from mmal.testing import float64_mode
from mmal.utils import ConfigError
from conftest import copy_run, cycle0_context, select_cycle0, tiny_config

F64 = dict(dtype=torch.float64)
BOX = [0., 0., 10., 10.]
SHIFTED = [5., 0., 15., 10.]  # IoU with BOX: 50 / (100 + 100 - 50) = 1/3
FAR = [20., 20., 30., 30.]  # no overlap with BOX
MEAN = torch.tensor([123.675, 116.28, 103.53]).view(3, 1, 1)
STD = torch.tensor([58.395, 57.12, 57.375]).view(3, 1, 1)


def boxes(*rows):
    return torch.tensor(rows, **F64).reshape(-1, 4)


# -- the math ----------------------------------------------------------------
def test_box_stability_on_hand_made_boxes():
    # found exactly at every level (among other boxes): 1
    assert box_stability(boxes(BOX),
                         [boxes(FAR, BOX), boxes(BOX)]).tolist() == [1.0]
    # IoU 1/3 at the first level, no box at the second: (1/3 + 0) / 2
    got = box_stability(boxes(BOX), [boxes(SHIFTED, FAR), boxes()])
    assert got.dtype == torch.float64
    assert got.tolist() == pytest.approx([1 / 6], rel=1e-15)
    # the best match counts, not the first
    assert box_stability(boxes(BOX, FAR), [boxes(FAR, SHIFTED)]).tolist() == \
        pytest.approx([1 / 3, 1.0], rel=1e-15)


def test_image_score_is_the_reference_score_weighted_mean():
    ref = boxes(BOX, FAR)
    scores = torch.tensor([0.9, 0.3], **F64)
    # BOX: 1 then 1/3 -> 2/3; FAR: 1 then 0 -> 1/2
    levels = [boxes(BOX, FAR), boxes(SHIFTED)]
    expect = (0.9 * 2 / 3 + 0.3 * 1 / 2) / (0.9 + 0.3)
    assert localization_stability(ref, scores, levels) == pytest.approx(
        expect, rel=1e-15)
    assert localization_stability(boxes(BOX), scores[:1], levels) == \
        pytest.approx(2 / 3, rel=1e-15)
    assert localization_stability(boxes(), scores[:0], levels) is None


def _pred(rows, scores, labels):
    return InstanceData(
        bboxes=torch.tensor(rows).reshape(-1, 4),
        scores=torch.tensor(scores),
        labels=torch.tensor(labels, dtype=torch.long))


def test_matching_is_class_agnostic_and_references_are_thresholded():
    clean = _pred([BOX, FAR], [0.8, 0.05], [0, 0])
    # the noisy box has another label and a low score: it still matches
    noisy = [_pred([BOX], [0.01], [2]), _pred([SHIFTED], [0.9], [1])]
    value, num = prediction_stability(clean, noisy, score_thr=0.1)
    assert num == 1 and value == pytest.approx(2 / 3, rel=1e-7)
    both, num = prediction_stability(clean, noisy, score_thr=0.05)
    assert num == 2
    assert both == pytest.approx((0.8 * 2 / 3 + 0.05 * 0) / 0.85, rel=1e-6)
    assert prediction_stability(clean, noisy, score_thr=0.9) == (None, 0)


# -- the noise ---------------------------------------------------------------
def _samples(*shapes):
    from mmdet.structures import DetDataSample
    out = []
    for h, w in shapes:
        s = DetDataSample()
        s.set_metainfo(dict(img_shape=(h, w)))
        out.append(s)
    return out


def test_noise_depends_on_seed_id_and_level_only():
    torch.manual_seed(0)
    a = torch.randn(1, 3, 32, 40)
    alone = add_pixel_noise(a, _samples((32, 40)), ['a'], 16., 7, 2, MEAN, STD)
    # in a batch padded to 40 x 48, with another image before it
    batch = torch.zeros(2, 3, 40, 48)
    batch[0] = torch.randn(3, 40, 48)
    batch[1, :, :32, :40] = a[0]
    noisy = add_pixel_noise(batch, _samples((40, 48), (32, 40)), ['b', 'a'],
                            16., 7, 2, MEAN, STD)
    assert torch.equal(noisy[1, :, :32, :40], alone[0])
    assert torch.equal(noisy[1, :, 32:], batch[1, :, 32:])  # padding
    assert torch.equal(noisy[1, :, :, 40:], batch[1, :, :, 40:])
    assert not torch.equal(noisy[0], batch[0])
    assert torch.equal(batch[1, :, :32, :40], a[0])  # inputs not changed
    n = pixel_noise('a', (3, 32, 40), 7, 2)
    assert torch.equal(n, pixel_noise('a', (3, 32, 40), 7, 2))
    for other in (pixel_noise('a', (3, 32, 40), 7,
                              3), pixel_noise('b', (3, 32, 40), 7, 2),
                  pixel_noise('a', (3, 32, 40), 8, 2)):
        assert not torch.allclose(n, other)


def _grey(value=128.):
    """A mid-grey image, normalised: (1, 3, 64, 64)."""
    return ((torch.full(
        (3, 64, 64), value, **F64) - MEAN.double()) / STD.double())[None]


@pytest.mark.parametrize('sigma', [8., 24.])
def test_noise_has_the_pixel_std_sigma(sigma):
    x = _grey()
    noisy = add_pixel_noise(x, _samples((64, 64)), ['img'], sigma, 0, 0, MEAN,
                            STD)
    delta = (noisy - x) * STD.double()  # in pixels
    # 12288 draws: the sample std is within 3 % of sigma (~5 standard
    # errors); 128 is >= 5 sigma from 0 and 255, so clipping is negligible
    assert delta.std().item() == pytest.approx(sigma, rel=0.03)
    assert abs(delta.mean().item()) < 0.05 * sigma


def test_clipping_keeps_pixels_in_range():
    x = _grey(250.)
    noisy = add_pixel_noise(x, _samples((64, 64)), ['img'], 400., 0, 0, MEAN,
                            STD)
    raw = noisy * STD.double() + MEAN.double()
    assert raw.min().item() >= -1e-9 and raw.max().item() <= 255 + 1e-9
    assert (raw < 1e-9).any() and (raw > 255 - 1e-9).any()  # both clipped
    # a preprocessor that does not normalise: pixels as they are
    mean, std = pixel_normalisation(torch.nn.Module())
    assert float(mean) == 0.0 and float(std) == 1.0


# -- the selector ------------------------------------------------------------
def test_bad_arguments_and_a_classifier_are_refused():
    for bad in (dict(score_thr=0), dict(noise_levels=()),
                dict(noise_levels=(8, -1)), dict(batch_size=0),
                dict(unscored='first')):
        with pytest.raises(ValueError):
            LocalizationStabilitySelector(**bad)
    context = type('Ctx', (), dict(adapter=ImageClassifierAdapter()))()
    with pytest.raises(
            ConfigError,
            match='LocalizationStabilitySelector.*'
            'al_cfg.selector.*al_cfg.adapter'):
        LocalizationStabilitySelector().rank(context)
    # and before any training: the driver checks the config
    cfg = Config(
        dict(al_cfg=dict(adapter=dict(type='mmal.ImageClassifierAdapter'))))
    with pytest.raises(ConfigError, match='needs a detection adapter'):
        LocalizationStabilitySelector().check_config(cfg)
    LocalizationStabilitySelector().check_config(
        Config(dict(al_cfg=dict(adapter=dict(type='mmal.FCOSAdapter')))))


def test_least_stable_first_then_the_unscored(monkeypatch):
    results = {
        'a': (0.9, 2),
        'b': (0.2, 1),
        'c': (None, 0),
        'd': (0.5, 3),
        'e': (None, 0),
        'f': (1.0, 2)
    }
    context = type('Ctx', (), dict(seed=3, logger='current'))()
    for policy, tail in (('random', {'c', 'e'}), ('exclude', set())):
        selector = LocalizationStabilitySelector(unscored=policy)
        monkeypatch.setattr(selector, 'stabilities', lambda ctx: results)
        result = selector.rank(context)
        assert result.ranking[:4] == ['b', 'd', 'a', 'f']
        assert set(result.ranking[4:]) == tail
        assert result.scores == {'a': 0.9, 'b': 0.2, 'd': 0.5, 'f': 1.0}
        assert result.info['num_scored'] == 4
        assert result.info['num_unscored'] == 2
        assert result.info['mean_reference_boxes'] == pytest.approx(8 / 6)
        assert selector.rank(context).ranking == result.ranking  # seeded


# -- end to end --------------------------------------------------------------
def _select(trained, tmp_path, name, **extra):
    """Cycle 0's selection by config ``name`` (reference boxes >= 0.02: a
    2-epoch model's scores are low) on a copy of the trained cycle-0 model
    in ``trained``; the work dir and the config."""
    cfg = tiny_config(name, **{'al_cfg.selector.score_thr': 0.02, **extra})
    work_dir = copy_run(
        trained, str(tmp_path / 'run'), forget_experiment=True, rewind=True)
    with contextlib.redirect_stdout(io.StringIO()):
        select_cycle0(cfg, work_dir)
    return work_dir, cfg


def _read(path):
    with open(path) as f:
        return json.load(f)


def _check_selection(work_dir):
    """The recorded cycle-0 selection: the least stable scored images,
    labeled for cycle 1."""
    state = _read(osp.join(work_dir, 'al_state.json'))
    assert [c['done']
            for c in state['cycles']] == [['train', 'evaluate', 'select']]
    sel = _read(osp.join(work_dir, 'cycle_0', 'selection.json'))
    assert sel['selector'] == 'LocalizationStabilitySelector'
    info = sel['info']
    assert info['num_scored'] + info['num_unscored'] == 24 - 8
    assert info['num_scored'] >= 4 and info['inferences_per_image'] == 7
    assert info['mean_reference_boxes'] > 0
    scores = sel['scores']
    assert len(scores) == info['num_scored']
    assert all(0.0 <= v <= 1.0 for v in scores.values())
    lowest = sorted(scores, key=lambda k: (scores[k], k))[:4]
    assert sel['selected'] == lowest
    assert sorted(i for i, c in state['pool']['labeled'].items()
                  if c == 1) == sorted(lowest)
    return state, sel


def test_fcos_selection_and_the_same_selection_again(fcos_cycle0, tmp_path):
    """On the session's trained FCOS (the stability config's model is
    ISAL's): the driver's selection, the same again, batch 1 = batch 4."""
    work_dir, cfg = _select(fcos_cycle0, tmp_path, 'stability_fcos_shapes.py')
    state, sel = _check_selection(work_dir)
    context = cycle0_context(cfg, work_dir)
    selector = LocalizationStabilitySelector(score_thr=0.02)
    first, second = selector.rank(context), selector.rank(context)
    assert first.ranking == second.ranking and first.scores == second.scores
    assert first.ranking[:4] == sel['selected']
    assert first.scores == pytest.approx(sel['scores'], rel=1e-6)
    # batches of 4 (images without reference box left out of the noisy
    # passes) give each image what batches of 1 give it
    adapter, model = context.adapter, context.model
    with float64_mode(adapter, model):
        one = LocalizationStabilitySelector(
            score_thr=0.02, batch_size=1).stabilities(context)
        four = LocalizationStabilitySelector(
            score_thr=0.02, batch_size=4).stabilities(context)
    assert sorted(one) == sorted(four) == sorted(context.state.unlabeled_ids)
    for k, (value, num) in one.items():
        assert four[k][1] == num
        assert four[k][0] == (None if value is None else pytest.approx(
            value, rel=1e-9)), k


def test_faster_rcnn_selection(frcnn_run, tmp_path):
    """On the session's trained Faster R-CNN (cycle 0 of its ISAL run)."""
    work_dir, _ = _select(frcnn_run, tmp_path,
                          'stability_faster-rcnn_shapes.py')
    _check_selection(work_dir)
