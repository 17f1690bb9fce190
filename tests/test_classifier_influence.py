"""ImageClassifierAdapter (mmpretrain) against independent references.

* θ = ``head.fc.weight`` (closed form of :mod:`mmal.influence.linear_softmax`
  on the fast path): cached gradients, Hessian-vector products and batched
  directional scores equal autograd through mmpretrain's loss
  (``gt_loss`` / ``pseudo_loss``) and through the plain forward
  ``model(x, mode='tensor')`` with ``F.cross_entropy``
  (``torch.func``); ``closed_form=False`` gives the same numbers through
  autograd; losses other than plain softmax cross-entropy, and other
  heads, do not take the closed form.
* θ = every conv / linear weight: batched directional scores (OutputProbe,
  BN in eval mode) equal per-image backward passes (θ layers that feed one
  another: OutputProbe's leaves must carry the gradient through later θ
  layers).
* The adapter's HVPs equal the explicit Hessian (``torch.func.hessian`` of
  the plain forward + CE) of a tiny conv net with 96 weights.
* LiSSA on a labeled set of identical images (one Hessian ``H``) reaches
  the exact damped solve ``(H + damp * scale I)^-1 scale v``: the
  ExactSolver's and a direct solve with the explicit Hessian.

Everything runs in float64 (``adapter.float64``); ``assert_close64``
allows 1e-9 of the largest entry (see ``influence_reference``).
"""
import copy
from types import SimpleNamespace

import pytest
import torch
from mmengine.registry import DefaultScope
from mmpretrain.models import ImageClassifier, LinearClsHead
from mmpretrain.registry import MODELS
from torch import nn
from torch.func import functional_call
from torch.nn import functional as F

from mmal.influence import (ExactSolver, HessianProblem, ImageHessian, LiSSA,
                            flat_dot, flatten, hessian_vector_product,
                            loss_grad, softmax_ce_grad_sum, unflatten)
from mmal.models import ImageClassifierAdapter
from mmal.selectors import SelectionContext
from mmal.selectors.labeled_hessian import LabeledHessian
from mmal.tasks import ClassificationTask
from mmal.testing import float64_mode
import classifier_reference
from classifier_reference import batched, random_like, randomise_batch_norm
from influence_reference import assert_close64, preprocess64

NUM_CLASSES = 3
SIZE = 8  # images are SIZE x SIZE


def image_batches(num: int, seed: int, **kwargs) -> list:
    """:func:`classifier_reference.image_batches` of this file's size and
    classes."""
    return classifier_reference.image_batches(num, seed, SIZE, NUM_CLASSES,
                                              **kwargs)


SCORE_THR = 0.5  # not used by classification (argmax pseudo labels)
LOSS_WEIGHT = 0.7
RESNET = dict(
    type='ResNet_CIFAR', depth=18, stem_channels=4,
    base_channels=4)  # 32 output channels
ALL_WEIGHTS = ('Conv2d', 'Linear')


@MODELS.register_module(name='MmalTestTinyConvNet', force=True)
class TinyConvNet(nn.Module):
    """conv 3->2 3x3, BN, ReLU, conv 2->2 3x3: 90 conv weights (2 out
    channels), small enough for an explicit Hessian."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 2, 3, padding=1)
        self.bn = nn.BatchNorm2d(2)
        self.conv2 = nn.Conv2d(2, 2, 3, padding=1)

    def forward(self, x: torch.Tensor) -> tuple:
        return (self.conv2(F.relu(self.bn(self.conv1(x)))), )


@MODELS.register_module(name='MmalTestScaledLinearClsHead', force=True)
class ScaledLinearClsHead(LinearClsHead):
    """A ``LinearClsHead`` whose logits are doubled: the fc weight's
    gradient is no longer ``(p - e_y) fᵀ``."""

    def forward(self, feats: tuple) -> torch.Tensor:
        return 2 * super().forward(feats)


def tiny_classifier(backbone: dict,
                    in_channels: int,
                    loss: dict = None,
                    head: str = 'LinearClsHead',
                    seed: int = 0) -> ImageClassifier:
    """A random ``ImageClassifier`` in eval mode: BN with random running
    statistics and affine parameters, a random fc bias, a larger fc weight
    (probabilities far from uniform)."""
    torch.manual_seed(seed)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = ImageClassifier(
            backbone=backbone,
            neck=dict(type='GlobalAveragePooling'),
            head=dict(
                type=head,
                num_classes=NUM_CLASSES,
                in_channels=in_channels,
                loss=loss
                or dict(type='CrossEntropyLoss', loss_weight=LOSS_WEIGHT)),
            data_preprocessor=dict(
                type='ClsDataPreprocessor',
                mean=[120., 110., 100.],
                std=[60., 50., 40.]))
    with torch.no_grad():
        randomise_batch_norm(model)
        model.head.fc.weight.mul_(4)
        model.head.fc.bias.normal_()
    return model.eval()


def plain_loss(model, names: list, batch: dict, label: int):
    """``θ -> loss_weight * CE(model(x; θ), label)``: the plain forward
    (``mode='tensor'``, no mmpretrain loss) with θ (flat, the blocks
    ``names`` in order) put in by ``functional_call``.

    Returns:
        tuple: ``(loss_fn, theta)``, ``theta`` the model's current θ.
    """
    inputs = preprocess64(model, copy.deepcopy(batch))['inputs']
    named = dict(model.named_parameters())
    shapes = [named[n].shape for n in names]
    sizes = [named[n].numel() for n in names]
    weight = float(model.head.loss_module.loss_weight)
    target = torch.tensor([label])

    def loss_fn(theta: torch.Tensor) -> torch.Tensor:
        blocks = torch.split(theta, sizes)
        weights = {n: p.detach() for n, p in named.items()}  # θ only
        weights.update({
            n: b.reshape(s)
            for n, b, s in zip(names, blocks, shapes)
        })
        logits = functional_call(model, weights, (inputs, ),
                                 dict(mode='tensor'))
        return weight * F.cross_entropy(logits, target)

    theta = torch.cat([named[n].detach().reshape(-1) for n in names])
    return loss_fn, theta


def argmax_label(model, batch: dict) -> int:
    """The predicted class of the plain forward."""
    inputs = preprocess64(model, copy.deepcopy(batch))['inputs']
    with torch.no_grad():
        return int(model(inputs, mode='tensor').argmax())


def hvp_columns(hvp, like) -> torch.Tensor:
    """The matrix of ``hvp`` (blocks -> blocks): its products with the basis
    vectors as columns, (n, n)."""
    n = sum(p.numel() for p in like)
    basis = torch.eye(n, dtype=torch.float64)
    return torch.stack([flatten(hvp(unflatten(e, like))) for e in basis],
                       dim=1)


def conv_linear_weights(model) -> list:
    """Every conv / linear weight of ``model``, found independently of the
    adapter."""
    return [
        m.weight for m in model.modules()
        if isinstance(m, (nn.Conv2d, nn.Linear))
    ]


def prepared(model, **kwargs) -> tuple:
    """An ``ImageClassifierAdapter(**kwargs)`` prepared on ``model``, and
    θ's names."""
    adapter = ImageClassifierAdapter(**kwargs)
    adapter.prepare(model)
    return adapter, [n for n, _ in adapter.parameters(model)]


def check_directional_scores(model, adapter, names: list, unlabeled: list,
                             seed: int) -> None:
    """Batched ``directional_scores`` of ``unlabeled`` (one batch) along a
    random direction equal, per image, ``∇θ l · S`` by autograd of
    ``pseudo_loss`` and of the plain forward with the argmax label, and the
    pseudo labels are the argmax (inside ``adapter.float64``)."""
    params = [p for _, p in adapter.parameters(model)]
    s = random_like(params, seed)
    data = batched(model, adapter, unlabeled)
    found = adapter.directional_scores(model, data, s, SCORE_THR)
    by_id = {b['sample_id'][0]: b for b in unlabeled}
    ours, via_adapter, via_plain = [], [], []
    for sid, sample, (value, num) in zip(data['sample_id'],
                                         data['data_samples'], found):
        batch = by_id[sid]
        label = argmax_label(model, batch)
        assert num == 1 and int(sample.gt_label) == label  # pseudo label
        loss, ref_num = adapter.pseudo_loss(model, copy.deepcopy(batch),
                                            SCORE_THR)
        assert ref_num == 1
        loss_fn, theta = plain_loss(model, names, batch, label)
        ours.append(value)
        via_adapter.append(float(flat_dot(s, loss_grad(loss, params))))
        via_plain.append(float(flatten(s) @ torch.func.grad(loss_fn)(theta)))
    ours = torch.tensor(ours, dtype=torch.float64)
    assert_close64(ours, torch.tensor(via_adapter, dtype=torch.float64))
    assert_close64(ours, torch.tensor(via_plain, dtype=torch.float64))


@pytest.fixture(scope='module')
def resnet():
    return tiny_classifier(RESNET, in_channels=32)


@pytest.fixture(scope='module')
def tiny_net():
    return tiny_classifier(
        dict(type='MmalTestTinyConvNet'), in_channels=2, seed=1)


# -- θ = head.fc.weight: the closed form and autograd ------------------------
@pytest.mark.parametrize('closed_form', [True, False])
def test_head_fc_gradients_hvps_and_scores_equal_autograd(resnet, closed_form):
    model = resnet
    adapter, names = prepared(model, closed_form=closed_form)
    assert adapter.uses_closed_form(model) is closed_form
    assert names == ['head.fc.weight']
    labeled = image_batches(4, seed=1)
    unlabeled = image_batches(4, seed=2, labeled=False, prefix='u')
    with float64_mode(adapter, model):
        params = [p for _, p in adapter.parameters(model)]
        h = random_like(params, 3)
        entries = adapter.cache_entries(model, batched(model, adapter,
                                                       labeled))
        assert [('linear' in e) for e in entries] == [closed_form] * 4
        by_id = {b['sample_id'][0]: b for b in labeled}
        for entry in entries:
            batch = by_id[entry['sample_id']]
            grad = adapter.cached_gt_grad(model, entry, params)
            hvp = adapter.cached_hvp(model, entry, params)(h)

            def gt_loss(b=batch):
                return adapter.gt_loss(model, copy.deepcopy(b))

            # mmpretrain's loss through autograd
            assert_close64(grad[0], loss_grad(gt_loss(), params)[0])
            assert_close64(hvp[0],
                           hessian_vector_product(gt_loss(), params, h)[0])
            assert_close64(hvp[0], ImageHessian(gt_loss, params)(h)[0])
            # the plain forward + F.cross_entropy through torch.func
            loss_fn, theta = plain_loss(model, names, batch,
                                        int(batch['data_samples'][0].gt_label))
            assert_close64(flatten(grad), torch.func.grad(loss_fn)(theta))
            assert_close64(
                flatten(hvp),
                torch.func.hessian(loss_fn)(theta) @ flatten(h))
        check_directional_scores(model, adapter, names, unlabeled, seed=4)
    assert all(p.dtype == torch.float32 for p in model.parameters())


def test_linear_param_type_alone_is_the_closed_form(resnet):
    """``param_types=('Linear',)`` on a model whose only linear layer is the
    head's fc selects ``head.fc.weight``: the closed form applies."""
    adapter, names = prepared(resnet, param_types=('Linear', ))
    assert names == ['head.fc.weight']
    assert adapter.uses_closed_form(resnet)


NOT_CLOSED_FORM = [
    # (head loss, head type, whether the loss takes hard labels)
    (dict(
        type='LabelSmoothLoss', label_smooth_val=0.2,
        loss_weight=LOSS_WEIGHT), 'LinearClsHead', True),
    (dict(type='CrossEntropyLoss', class_weight=[1.0, 2.0,
                                                 0.5]), 'LinearClsHead', True),
    (dict(type='CrossEntropyLoss', use_soft=True), 'LinearClsHead', False),
    (dict(type='CrossEntropyLoss', use_sigmoid=True), 'LinearClsHead', False),
    (None, 'MmalTestScaledLinearClsHead', True),
]


@pytest.mark.parametrize('loss,head,hard_labels', NOT_CLOSED_FORM)
def test_other_losses_and_heads_do_not_take_the_closed_form(
        loss, head, hard_labels):
    """Label smoothing, class weights, soft targets, sigmoid, or a head
    other than ``LinearClsHead``: autograd, and the numbers of the closed
    form would be wrong (where the loss runs on hard labels)."""
    model = tiny_classifier(
        dict(type='MmalTestTinyConvNet'),
        in_channels=2,
        loss=loss,
        head=head,
        seed=1)
    adapter, _ = prepared(model)
    assert not adapter.uses_closed_form(model)
    labeled = image_batches(3, seed=7)
    with float64_mode(adapter, model):
        params = [p for _, p in adapter.parameters(model)]
        entries = adapter.cache_entries(model, batched(model, adapter,
                                                       labeled))
        assert all('feats' in e and 'linear' not in e for e in entries)
        if not hard_labels:
            return
        by_id = {b['sample_id'][0]: b for b in labeled}
        for entry in entries:
            batch = by_id[entry['sample_id']]
            grad = adapter.cached_gt_grad(model, entry, params)[0]
            assert_close64(
                grad,
                loss_grad(
                    adapter.gt_loss(model, copy.deepcopy(batch)), params)[0])
            with torch.no_grad():
                f = model.head.pre_logits(entry['feats'])  # neck output
                closed = softmax_ce_grad_sum(
                    f, model.head.fc(f), entry['sample'].gt_label.reshape(1),
                    float(model.head.loss_module.loss_weight))
            with pytest.raises(AssertionError):
                assert_close64(closed, grad)


# -- θ = every conv / linear weight ------------------------------------------
def test_all_weights_directional_scores_equal_per_image_backward(resnet):
    model = resnet
    adapter, names = prepared(model, param_types=ALL_WEIGHTS)
    params = [p for _, p in adapter.parameters(model)]
    expected = conv_linear_weights(model)
    assert len(expected) > 20  # the ResNet's convs, shortcuts and the fc
    assert sum(p.numel() for p in params) == sum(w.numel() for w in expected)
    assert {id(p) for p in params} == {id(w) for w in expected}
    assert not adapter.uses_closed_form(model) and not adapter.head_only
    unlabeled = image_batches(3, seed=8, labeled=False, prefix='u')
    with float64_mode(adapter, model):
        check_directional_scores(model, adapter, names, unlabeled, seed=9)


# -- explicit Hessians -------------------------------------------------------
def test_hvps_equal_the_explicit_hessian_of_the_plain_loss(tiny_net):
    model = tiny_net
    adapter, names = prepared(model, param_types=ALL_WEIGHTS)
    dim = sum(w.numel() for w in conv_linear_weights(model))
    assert dim == 54 + 36 + 6 == sum(p.numel()
                                     for _, p in adapter.parameters(model))
    batch = image_batches(1, seed=10)[0]
    with float64_mode(adapter, model):
        params = [p for _, p in adapter.parameters(model)]
        entry, = adapter.cache_entries(model, batched(model, adapter, [batch]))
        assert 'feats' in entry
        loss_fn, theta = plain_loss(model, names, batch,
                                    int(batch['data_samples'][0].gt_label))
        H = torch.func.hessian(loss_fn)(theta)
        assert H.shape == (dim, dim)
        cached = hvp_columns(adapter.cached_hvp(model, entry, params), params)
        per_image = hvp_columns(
            ImageHessian(lambda: adapter.gt_loss(model, copy.deepcopy(batch)),
                         params), params)
    assert_close64(cached, H)
    assert_close64(per_image, H)
    # θ couples the layers: the blocks between conv1 and the rest are not
    # zero, and there is negative curvature (not a Gauss-Newton matrix)
    assert H[:54, 54:].abs().max() > 1e-3 * H.abs().max()
    assert float(torch.linalg.eigvalsh(H)[0]) < 0


# -- LiSSA against the exact damped solve -------------------------------------
DAMP = 0.6
COPIES = 60  # LiSSA's depth: every labeled image once


class InMemoryContext(SelectionContext):
    """A :class:`SelectionContext` whose labeled view is a set of collated
    batches held in memory (no config, no files): what
    :class:`LabeledHessian` reads of a context."""

    def __init__(self, model, adapter, batches: list, seed: int = 0) -> None:
        super().__init__(
            None,
            None,
            cycle=0,
            seed=seed,
            work_dir='',
            model=model,
            adapter=adapter,
            task=ClassificationTask(),
            num_workers=0)
        self.batches = {b['sample_id'][0]: b for b in batches}

    def labeled_view(self) -> SimpleNamespace:
        return SimpleNamespace(sample_ids=sorted(self.batches))

    def loader(self, view, ids=None):
        ids = view.sample_ids if ids is None else ids
        return (copy.deepcopy(self.batches[sid]) for sid in ids)


def copies(batch: dict, num: int) -> list:
    """``num`` copies of ``batch`` under different ids."""
    out = []
    for i in range(num):
        item = copy.deepcopy(batch)
        item['sample_id'] = [f'copy{i:03d}']
        out.append(item)
    return out


@pytest.mark.parametrize('fast', [True, False])
@pytest.mark.parametrize('theta', ['head_fc', 'all_weights'])
def test_lissa_reaches_the_exact_damped_solve(resnet, tiny_net, theta, fast):
    """Every labeled image is the same, so every step of LiSSA multiplies by
    the same ``H`` and the chain ``h <- v + M h``, ``M = (1 - damp) I -
    H / s``, converges to ``s_test = (H + damp s I)^-1 s v`` with error
    ``M^k (v - s_test)`` after ``k`` steps. With ``s = 4 max|λ(H)|``,
    ``|M| <= 1 - damp + 1/4``; the test checks from ``H``'s spectrum that
    ``COPIES`` steps bring the error far below the tolerance.

    ``fast``: the LabeledHessian's cached path (the closed form for
    ``head.fc.weight``) or the per-image ``gt_loss`` path (autograd).
    """
    if theta == 'head_fc':
        model = resnet
        adapter, names = prepared(model)
    else:
        model = tiny_net
        adapter, names = prepared(model, param_types=ALL_WEIGHTS)
    assert adapter.uses_closed_form(model) is (theta == 'head_fc')
    batch = image_batches(1, seed=11)[0]
    context = InMemoryContext(model, adapter, copies(batch, COPIES), seed=2)
    with float64_mode(adapter, model):
        params = [p for _, p in adapter.parameters(model)]
        problem = LabeledHessian(context, params, fast=fast, batch_size=8)
        assert isinstance(problem, HessianProblem)
        assert len(problem.sample_ids) == COPIES
        loss_fn, theta_now = plain_loss(model, names, batch,
                                        int(batch['data_samples'][0].gt_label))
        H = torch.func.hessian(loss_fn)(theta_now)
        H = (H + H.T) / 2  # symmetric up to rounding
        eig = torch.linalg.eigvalsh(H)
        scale = 4 * float(eig.abs().max())
        v = random_like(params, 12)
        eye = torch.eye(len(H), dtype=torch.float64)
        ref = torch.linalg.solve(H + DAMP * scale * eye, scale * flatten(v))
        rho = float((1 - DAMP - eig / scale).abs().max())
        assert rho**COPIES * float(
            (flatten(v) - ref).norm()) < (1e-11 * float(ref.abs().max()))
        exact = ExactSolver(
            damp=DAMP, scale=scale, num_images=2).estimate(v, problem)
        lissa = LiSSA(
            damp=DAMP, scale=scale, depth=COPIES, repeats=1,
            log_interval=0).estimate(v, problem)
    assert_close64(flatten(exact), ref)
    assert_close64(flatten(lissa), ref)
    # the tolerance sees the Hessian: with H 1% off the solve fails it
    off = torch.linalg.solve(1.01 * H + DAMP * scale * eye, scale * flatten(v))
    with pytest.raises(AssertionError):
        assert_close64(flatten(lissa), off)
