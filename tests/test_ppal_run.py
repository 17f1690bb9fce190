"""PPAL through the driver: two cycles on the FCOS demo (the class
qualities learned in training, saved with the weights, turned into class
weights; DCUS candidates; CCMS k-medoids picks), and its pieces on the
trained model: the detections with their levels against mmdet's own
``predict_by_feat``, and the picks against a selection recomputed from the
selector's own inputs."""
import json
import math
import os.path as osp

import pytest
import torch

from mmal.models.class_quality import class_quality_of
from conftest import shared_once, tiny_config


def _read(path):
    with open(path) as f:
        return json.load(f)


def _ppal_config(**extra):
    return tiny_config(
        'ppal_fcos_shapes.py',
        **{
            'al_cfg.num_cycles': 2,
            'al_cfg.selector.batch_size': 1,
            # a 2-epoch model's scores: objects for CCMS at this threshold
            'al_cfg.selector.score_thr': 0.002,
            **extra
        })


@pytest.fixture(scope='session')
def ppal_run(tmp_path_factory) -> str:
    """Two PPAL cycles of the FCOS demo (shrunk), shared by the tests."""

    def make(work_dir: str) -> None:
        from mmal.engine import ActiveLearningRunner
        cfg = _ppal_config()
        cfg.work_dir = work_dir
        ActiveLearningRunner(cfg).run()

    return shared_once(tmp_path_factory, 'ppal_fcos_run', make)


def test_two_cycles_label_the_selection(ppal_run):
    state = _read(osp.join(ppal_run, 'al_state.json'))
    cycles = [c['done'] for c in state['cycles']]
    assert cycles == [['train', 'evaluate', 'select'], ['train', 'evaluate']]
    labeled = state['pool']['labeled']
    selection = _read(osp.join(ppal_run, 'cycle_0', 'selection.json'))
    assert selection['selector'] == 'PPALSelector'
    picked = [k for k, c in labeled.items() if c == 1]
    assert sorted(selection['selected']) == sorted(picked)
    assert len(picked) == state['cycles'][0]['num_selected'] > 0
    assert not set(picked) & {k for k, c in labeled.items() if c == 0}


def test_the_checkpoint_keeps_the_learned_qualities(ppal_run):
    state = _read(osp.join(ppal_run, 'al_state.json'))
    for record in state['cycles']:
        q = class_quality_of(None, osp.join(ppal_run, record['checkpoint']))
        assert q is not None and q.shape == (3, )
        assert bool(((q >= 0) & (q <= 1)).all()) and float(q.max()) > 0


def test_class_weights_follow_the_qualities(ppal_run):
    """The recorded weights are ``1 + α ub ln(b (1 - q) + 1)``, b = e^{1/α}
    - 1, of the recorded qualities (α 0.3, ub 0.2), and these are the cycle's
    checkpoint's."""
    state = _read(osp.join(ppal_run, 'al_state.json'))
    info = _read(osp.join(ppal_run, 'cycle_0', 'selection.json'))['info']
    q = class_quality_of(None,
                         osp.join(ppal_run, state['cycles'][0]['checkpoint']))
    assert info['quality'] == pytest.approx(q.tolist(), abs=1e-6)
    b = math.exp(1 / 0.3) - 1
    for qc, w in zip(info['quality'], info['class_weights']):
        assert w == pytest.approx(
            1 + 0.3 * 0.2 * math.log(b * (1 - qc) + 1), abs=1e-5)
        assert 1 <= w <= 1.2


def test_picks_are_the_medoids_among_the_top_candidates(ppal_run):
    """Every pick is among the ``4 x budget`` highest DCUS scores of the
    selection's scores, and the ranking is by DCUS score."""
    sel = _read(osp.join(ppal_run, 'cycle_0', 'selection.json'))
    info = sel['info']
    budget = len(sel['selected'])
    assert info['num_candidates'] == min(4 * budget, info['num_unlabeled'])
    scores = [sel['scores'][k] for k in sel['selected']]
    assert scores == sorted(scores, reverse=True)
    assert info['num_candidates'] > budget  # the diversity step ran
    assert info['objects_per_candidate'] > 1
    assert max(scores) > 0


def test_detections_with_levels_are_mmdets_predictions(tmp_path):
    """Per-level prediction, then NMS: the boxes, scores and labels of
    mmdet's own ``predict_by_feat`` (float64, the same config), and each
    box's level is the one whose priors produce it."""
    from mmengine.config import ConfigDict
    from mmengine.registry import init_default_scope

    from mmal.models import SingleStageAdapter
    from mmal.models.dense_detections import detections_with_levels
    from mmal.registry import MODELS
    from mmal.testing import float64_mode
    init_default_scope('mmdet')
    cfg = tiny_config('ppal_fcos_shapes.py')
    model = MODELS.build(cfg.model).eval()
    torch.manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith('conv_cls.bias'):
                p.fill_(-1.0)  # some boxes above and below thresholds
    adapter = SingleStageAdapter()
    inputs = torch.rand(2, 3, 64, 96) * 255
    metas = [
        dict(
            img_shape=(64, 96),
            ori_shape=(32, 48),
            scale_factor=(2.0, 2.0),
            pad_shape=(64, 96),
            batch_input_shape=(64, 96)) for _ in range(2)
    ]
    test_cfg = dict(
        nms_pre=50,
        score_thr=0.0,
        nms=dict(type='nms', iou_threshold=0.5),
        max_per_img=30)
    with float64_mode(adapter, model):
        x = inputs.double()
        outs, towers = adapter.forward_with_towers(model, x)
        head = model.bbox_head
        ours = detections_with_levels(head, outs, metas, test_cfg)
        theirs = head.predict_by_feat(
            *outs, batch_img_metas=metas, cfg=ConfigDict(test_cfg))
        # each level alone, before NMS: where each kept box must come from
        sizes = [c.shape[-2:] for c in outs[0]]
        priors = head.prior_generator.grid_priors(
            sizes, dtype=x.dtype, device=x.device)
        alone = [[
            head._predict_by_feat_single([outs[0][level][i]],
                                         [outs[1][level][i]],
                                         [outs[2][level][i]], [priors[level]],
                                         metas[i],
                                         ConfigDict(test_cfg),
                                         with_nms=False) for i in range(2)
        ] for level in range(len(sizes))]
    assert set(towers) == {'cls_convs', 'reg_convs'}
    assert len(towers['cls_convs']) == len(outs[0]) == 3
    for img, (a, b) in enumerate(zip(ours, theirs)):
        assert len(a) == len(b) > 0
        torch.testing.assert_close(a.bboxes, b.bboxes, rtol=1e-9, atol=1e-9)
        torch.testing.assert_close(a.scores, b.scores, rtol=1e-9, atol=1e-12)
        assert torch.equal(a.labels, b.labels)
        for box, label, level in zip(a.bboxes, a.labels, a.level_ids):
            own = alone[int(level)][img]
            same = (own.bboxes == box).all(dim=1) & (own.labels == label)
            assert bool(same.any())


def test_centre_features_sample_the_level_at_the_box_centre():
    """On maps whose channels are the column and the row index, a bilinear
    sample at the box centre is ``(c_x / s - 1/2, c_y / s - 1/2)`` in the
    level's pixels (``align_corners=False``); the official coordinates
    divide x by the height and y by the width of the unpadded image."""
    from mmengine.structures import InstanceData

    from mmal.models.dense_detections import centre_features

    def ramp(h, w):
        rows, cols = torch.meshgrid(
            torch.arange(h, dtype=torch.float64),
            torch.arange(w, dtype=torch.float64),
            indexing='ij')
        return torch.stack([cols, rows]).unsqueeze(0).repeat(2, 1, 1, 1)

    levels = [ramp(16, 24), ramp(8, 12)]  # strides 8 and 16: 128 x 192
    det = InstanceData(
        bboxes=torch.tensor(
            [[8., 16., 40., 48.], [40., 20., 120., 60.], [0., 0., 64., 64.]],
            dtype=torch.float64),
        level_ids=torch.tensor([0, 1, 1]))
    feats = centre_features(levels, [(8, 8), (16, 16)], det, img=1)
    cx = torch.tensor([24., 80., 32.], dtype=torch.float64)
    cy = torch.tensor([32., 40., 32.], dtype=torch.float64)
    s = torch.tensor([8., 16., 16.], dtype=torch.float64)
    expected = torch.stack([cx / s - 0.5, cy / s - 0.5], dim=1)
    torch.testing.assert_close(feats, expected, rtol=0, atol=1e-12)
    # the official: x / h, y / w of the unpadded image (here 100 x 150)
    meta = dict(img_shape=(100, 150))
    official = centre_features(
        levels, [(8, 8), (16, 16)],
        det,
        img=1,
        img_meta=meta,
        official_coords=True)
    width = torch.tensor([24., 12., 12.], dtype=torch.float64)
    height = torch.tensor([16., 8., 8.], dtype=torch.float64)
    expected = torch.stack([cx / 100 * width - 0.5, cy / 150 * height - 0.5],
                           dim=1)
    torch.testing.assert_close(official, expected, rtol=0, atol=1e-12)
    assert centre_features(levels, [(8, 8)], det[:0], img=0).shape == (0, 2)
