"""The slow, obviously-correct per-image scoring that the adapters' fused
scores are checked against (shared by the FCOS and Faster R-CNN tests)."""
import copy

import pytest
import torch
from mmengine.dataset import pseudo_collate
from mmengine.structures import InstanceData

from mmal.influence import flat_dot, loss_grad


def reference_scores(model, adapter, context, s_test, score_thr):
    """Per image: ``model.predict`` at batch 1, pseudo labels with score >=
    ``score_thr``, mmdet's full ``model.loss`` through the whole network
    (random draws seeded as the adapter seeds them), autograd to θ, dot
    product with ``s_test``."""
    params = [p for _, p in adapter.parameters(model)]
    view = context.unlabeled_view()
    out = {}
    for i, sid in enumerate(view.sample_ids):
        batch = pseudo_collate([view[i]])
        data = model.data_preprocessor(batch, False)
        with torch.no_grad():
            pred = model.predict(
                data['inputs'], copy.deepcopy(data['data_samples']),
                rescale=False)[0].pred_instances
        keep = pred.scores >= score_thr
        if not keep.any():
            out[sid] = None
            continue
        sample = data['data_samples'][0]
        sample.gt_instances = InstanceData(
            bboxes=pred.bboxes[keep], labels=pred.labels[keep])
        sample.ignored_instances = InstanceData(  # nothing ignored
            bboxes=torch.zeros(0, 4), labels=torch.zeros(0).long())
        with adapter.image_rng(dict(sample_id=[sid])):
            losses = model.loss(data['inputs'], [sample])
            grad = loss_grad(model.parse_losses(losses)[0], params)
        out[sid] = -float(flat_dot(s_test, grad))
    return out


def check_scores_against_reference(model, adapter, context, score_thr,
                                   min_scored=5):
    """The selector's scores and ranking equal :func:`reference_scores`."""
    from mmal.selectors import InfluenceSelector
    params = [p for _, p in adapter.parameters(model)]
    gen = torch.Generator().manual_seed(1)
    s_test = [torch.randn(p.shape, generator=gen) for p in params]
    selector = InfluenceSelector(score_thr=score_thr)
    ours = selector.score(context, params, s_test)
    ref = reference_scores(model, adapter, context, s_test, score_thr)
    assert set(ours) == set(ref) == set(context.state.unlabeled_ids)
    assert {k for k, v in ours.items() if v is None} == {
        k for k, v in ref.items() if v is None}
    scored = [k for k, v in ref.items() if v is not None]
    assert len(scored) >= min_scored
    for k in scored:
        assert ours[k] == pytest.approx(ref[k], rel=1e-4, abs=1e-6)
    ranking = selector.order(ours, seed=0)
    assert ranking[:len(scored)] == sorted(scored, key=lambda k: ref[k])
