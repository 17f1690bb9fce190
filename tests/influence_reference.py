"""The slow, obviously-correct per-image scoring that the adapters' fused
scores are checked against (shared by the FCOS and Faster R-CNN tests), and
the tiny untrained detectors they run on.

The checks run in float64 (``adapter.float64``; NMS decides on float32
copies): two paths that agree in exact arithmetic then agree to ~1e-15, and
the tolerance ``RTOL`` = 1e-9 (relative to each block's largest entry) lies
far above that and far below float32 rounding (~1e-7), which differs
between CPUs, BLAS builds, thread counts and batch sizes.
"""

import pytest
import torch
from mmengine.dataset import pseudo_collate
from torch.func import functional_call

from mmal.influence import hessian_vector_product, loss_grad
from mmal.testing import float64_mode, full_loss, official_scores

RTOL = 1e-9


def assert_close64(a, b):
    """``a`` equals ``b`` (float64) to ``RTOL`` of ``b``'s largest entry."""
    assert a.dtype == b.dtype == torch.float64
    torch.testing.assert_close(
        a, b, rtol=RTOL, atol=RTOL * float(b.abs().max()))


def preprocess64(model, batch):
    """mmdet's preprocessing, the images then cast to float64."""
    data = model.data_preprocessor(batch, False)
    data['inputs'] = data['inputs'].double()
    return data


FCOS_TINY = {
    'model.bbox_head.feat_channels': 4,
    'model.bbox_head.norm_cfg.num_groups': 2,
}
FRCNN_TINY = {
    'model.rpn_head.feat_channels': 4,
    'model.roi_head.bbox_head.fc_out_channels': 8,
    'model.train_cfg.rcnn.sampler.num': 16,  # fewer than the proposals
}


def tiny_detector(work_dir,
                  name,
                  adapter,
                  overrides,
                  tweak=None,
                  num_labeled=6,
                  seed=0):
    """An untrained tiny detector of config ``name`` on generated shapes.

    Args:
        work_dir (str): Where the runner writes the data.
        adapter: The model adapter (prepared here with ``seed``).
        overrides (dict): ``tiny_config`` overrides (model sizes).
        tweak (Callable, optional): ``tweak(model)`` under ``no_grad`` after
            init (e.g. confident predictions, so that there are pseudo
            labels).
        num_labeled (int): Size of the labeled pool.
        seed (int): The selection seed.

    Returns:
        tuple: ``(model, adapter, context)``; the model in eval mode.
    """
    from mmal.testing.scenario import selection_scenario
    from conftest import tiny_config
    return tuple(
        selection_scenario(
            tiny_config(name, **overrides),
            str(work_dir),
            num_labeled,
            adapter=adapter,
            seed=seed,
            tweak=tweak))


def reference_scores(model, adapter, context, s_test, score_thr):
    """The official-style score of each unlabeled image, as the selector
    signs it (influence ``-∇θ l · s_test``; None: no pseudo box).

    :func:`mmal.testing.official_isal.official_scores` on the view's items
    collated by mmengine's ``pseudo_collate`` (not mmal's loader), in
    float64 (:func:`preprocess64`): per image ``model.predict`` at batch 1,
    pseudo labels with score >= ``score_thr`` (boxes cast to float32, as
    annotations are), mmdet's full ``model.loss`` through the whole network
    (random draws seeded as the adapter seeds them), autograd to θ, dot
    product with ``s_test``."""
    params = [p for _, p in adapter.parameters(model)]
    view = context.unlabeled_view()
    items = [
        dict(pseudo_collate([view[i]]), sample_id=[sid])
        for i, sid in enumerate(view.sample_ids)
    ]
    values, _ = official_scores(
        model,
        adapter,
        items,
        params,
        s_test,
        score_thr,
        preprocess=lambda b: preprocess64(model, b),
        max_boxes=adapter.max_pseudo_boxes)
    return {sid: None if x is None else -x for sid, x in values.items()}


def check_scores_against_reference(model,
                                   adapter,
                                   context,
                                   score_thr,
                                   min_scored=5):
    """The selector's scores and ranking equal :func:`reference_scores`
    (float64)."""
    from mmal.selectors import InfluenceSelector
    selector = InfluenceSelector(score_thr=score_thr)
    with float64_mode(adapter, model):
        params = [p for _, p in adapter.parameters(model)]
        gen = torch.Generator().manual_seed(1)
        s_test = [torch.randn(p.shape, generator=gen).double() for p in params]
        ours = selector.score(context, params, s_test)
        ref = reference_scores(model, adapter, context, s_test, score_thr)
    assert set(ours) == set(ref) == set(context.state.unlabeled_ids)
    assert {k
            for k, v in ours.items()
            if v is None} == {k
                              for k, v in ref.items() if v is None}
    scored = [k for k, v in ref.items() if v is not None]
    assert len(scored) >= min_scored
    for k in scored:
        assert ours[k] == pytest.approx(ref[k], rel=RTOL)
    ranking = selector.order(ours, seed=0)
    assert ranking[:len(scored)] == sorted(scored, key=lambda k: ref[k])


def check_gradients_against_full_loss(model, adapter, context, num=3):
    """The adapter's θ-gradient (frozen trunk) equals the gradient of the
    full ``model.loss`` with the same random draws, on ``num`` labeled
    images (float64).

    Returns:
        list[list[Tensor]]: The adapter's gradients, per image (float32).
    """
    out = []
    with float64_mode(adapter, model):
        params = [p for _, p in adapter.parameters(model)]
        for batch in list(context.loader(context.labeled_view()))[:num]:
            ours = loss_grad(adapter.gt_loss(model, batch), params)
            data = preprocess64(model, batch)
            with adapter.image_rng(batch):  # the same sampling draws
                ref = loss_grad(full_loss(model, data), params)
            for a, b in zip(ours, ref):
                assert_close64(a, b)
            out.append([g.float() for g in ours])
    return out


def check_hvp_against_explicit_hessian(model, adapter, batch):
    """The adapter's Hessian-vector product on ``batch`` equals ``H @ x``
    with ``H`` the explicit Hessian of the full ``model.loss`` w.r.t. θ
    (``functional_call``; the same random draws; float64).

    Returns:
        tuple[Tensor, list[int]]: ``H`` (n, n), float64, and the block
        sizes.
    """
    with float64_mode(adapter, model):
        named = adapter.parameters(model)
        names = [n for n, _ in named]
        shapes = [p.shape for _, p in named]
        sizes = [p.numel() for _, p in named]
        data = preprocess64(model, batch)

        def loss_of(theta):
            blocks = torch.split(theta, sizes)
            weights = {
                n: b.reshape(s)
                for n, b, s in zip(names, blocks, shapes)
            }
            with adapter.image_rng(batch):
                losses = functional_call(
                    model,
                    weights,
                    args=(data['inputs'], data['data_samples']),
                    kwargs=dict(mode='loss'))
            return model.parse_losses(losses)[0]

        theta = torch.cat([p.detach().reshape(-1) for _, p in named])
        H = torch.autograd.functional.hessian(loss_of, theta)
        assert H.shape == (sum(sizes), sum(sizes))
        gen = torch.Generator().manual_seed(0)
        vec = [torch.randn(s, generator=gen).double() for s in shapes]
        ours = hessian_vector_product(
            adapter.gt_loss(model, batch), [p for _, p in named], vec)
    flat = torch.cat([x.reshape(-1) for x in ours])
    assert_close64(flat, H @ torch.cat([x.reshape(-1) for x in vec]))
    return H, sizes
