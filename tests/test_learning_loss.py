"""Learning loss: the ranking loss, the loss-prediction module, the wrapped
model, the stop-gradient hook and the selector.

* the ranking loss against its formula written out pair by pair, on
  hand-made batches (odd size, a tie, an inactive pair), and its gradients;
* the module against GAP -> FC -> ReLU -> concat -> FC written out;
* each image's loss from a batch (the adapters' ``per_image_losses``)
  equals that image's own loss computed alone (FCOS, Faster R-CNN,
  classifier; float64);
* the wrapped model's training loss = the target model's losses + the
  ranking loss of the module's predictions on the neck's maps against
  those per-image losses (float64), and the stop-gradient: the ranking
  loss reaches the backbone and neck only while attached;
* in plain mmengine Runners: the hook attaches before ``detach_epoch`` and
  detaches from it, also when a training is resumed on either side of it;
  a wrapped FCOS trains and tests; a plain checkpoint loads into it;
* the selector end to end, two cycles (FCOS, and the classifier with
  ``al_cfg.unlabeled_subset``): its scores are the module's predictions on
  each image alone, highest first; the same seed selects the same images.

1 vs 2 processes: ``test_distributed.py``.
"""
import copy
import os.path as osp

import pytest
import torch
from mmengine.model import BaseModel
from mmengine.registry import DefaultScope
from mmengine.runner import Runner, load_checkpoint, save_checkpoint

from mmal.engine import ActiveLearningRunner
from mmal.models import (FasterRCNNAdapter, FCOSAdapter,
                         ImageClassifierAdapter, LossPredictionModule,
                         ranking_loss)
from mmal.registry import MODELS
from mmal.selectors import LearningLossSelector, SelectionContext
from mmal.structures import ALState
from mmal.testing import float64_computation, float64_mode
from mmal.utils.checkpoint import trusted_checkpoint_loading
from mmal.utils.config_utils import override_data_root
from mmal.utils.errors import ConfigError
from conftest import (copy_run, cycle0_context, select_cycle0, tiny_cls_config,
                      tiny_config, train_cycle0)
from influence_reference import (FCOS_TINY, FRCNN_TINY, assert_close64,
                                 tiny_detector)


# -- the ranking loss and the module ---------------------------------------
def _by_formula(pred, target, margin=1.0):
    """max(0, -sign(l_i - l_j)(p_i - p_j) + margin), pairs (i, B-1-i),
    averaged, in plain Python."""
    b = len(pred)
    terms = []
    for i in range(b // 2):
        j = b - 1 - i
        d = target[i] - target[j]
        sign = (d > 0) - (d < 0)
        terms.append(max(0.0, -sign * (pred[i] - pred[j]) + margin))
    return sum(terms) / len(terms)


def test_ranking_loss_is_the_papers_formula():
    # pairs (0, 4): l0 > l4, p0 - p4 = -0.7 -> 1.7; (1, 3): a tie -> 1;
    # image 2 (the middle of an odd batch) has no partner
    pred = torch.tensor([0.5, 2.0, -1.0, 0.3, 1.2], requires_grad=True)
    target = torch.tensor([3.0, 1.0, 2.0, 1.0, 0.5], requires_grad=True)
    loss = ranking_loss(pred, target)
    assert float(loss) == pytest.approx(
        _by_formula(pred.tolist(), target.tolist()))
    assert float(loss) == pytest.approx((1.7 + 1.0) / 2)
    loss.backward()
    # only the active pair (0, 4) has a gradient: -(p0 - p4) / 2 pairs
    assert pred.grad.tolist() == pytest.approx([-0.5, 0, 0, 0, 0.5])
    assert target.grad is None  # the true losses are detached
    # an inactive pair (ordered right by more than the margin) adds 0
    pred, target = [3.0, 1.0, 0.5, 0.0], [2.0, 0.0, 1.0, 1.0]
    got = float(ranking_loss(torch.tensor(pred), torch.tensor(target)))
    assert got == pytest.approx(_by_formula(pred, target)) == 0.75
    assert float(
        ranking_loss(torch.tensor(pred), torch.tensor(target),
                     margin=0.2)) == pytest.approx(0.35)
    one = torch.tensor([2.0], requires_grad=True)
    zero = ranking_loss(one, torch.tensor([1.0]))
    assert float(zero) == 0 and zero.requires_grad
    with pytest.raises(ValueError, match='must both be'):
        ranking_loss(torch.zeros(4), torch.zeros(3))


def test_loss_prediction_module_is_gap_fc_relu_concat_fc():
    torch.manual_seed(0)
    module = LossPredictionModule([3, 5], hidden_channels=4).double()
    maps = [torch.randn(2, 3, 4, 6).double(), torch.randn(2, 5, 2, 2).double()]
    hidden = []
    for x, level in zip(maps, module.levels):
        fc = level[0]
        gap = x.sum(dim=(2, 3)) / (x.shape[2] * x.shape[3])
        hidden.append(torch.clamp(gap @ fc.weight.T + fc.bias, min=0))
    expected = torch.cat(hidden, 1) @ module.out.weight.T + module.out.bias
    got = module(maps)
    assert got.shape == (2, )
    assert_close64(got, expected[:, 0])
    with pytest.raises(ValueError, match='has 2 levels'):
        module(maps[:1])
    with pytest.raises(ValueError, match='level 1 has 3 channels'):
        module([maps[0], maps[0]])


# -- per-image losses --------------------------------------------------------
def _labeled_batch(model, adapter, context, num=4):
    """``num`` labeled images preprocessed into one batch, and each one's
    collated batch of one (for the image's own loss)."""
    view = context.labeled_view()
    ids = sorted(view.sample_ids)[:num]
    items = list(context.loader(view, ids))
    data = next(context.shape_batches(copy.deepcopy(items), num))
    assert data['sample_id'] == ids
    return data, items


@pytest.fixture(scope='module')
def fcos(tmp_path_factory):
    return tiny_detector(
        tmp_path_factory.mktemp('fcos'), 'isal_fcos_shapes.py', FCOSAdapter(),
        FCOS_TINY, lambda m: m.bbox_head.conv_cls.bias.zero_())


@pytest.fixture(scope='module')
def frcnn(tmp_path_factory):
    return tiny_detector(
        tmp_path_factory.mktemp('frcnn'), 'isal_faster-rcnn_shapes.py',
        FasterRCNNAdapter(), FRCNN_TINY)


@pytest.mark.parametrize('which', ['fcos', 'frcnn'])
def test_per_image_losses_are_each_images_own_loss(which, request):
    model, adapter, context = request.getfixturevalue(which)
    with float64_mode(adapter, model):
        data, items = _labeled_batch(model, adapter, context)
        feats = model.extract_feat(data['inputs'])
        got = adapter.per_image_losses(model, feats, None,
                                       data['data_samples'], data['sample_id'])
        alone = torch.stack([adapter.gt_loss(model, b) for b in items])
    assert got.shape == (4, ) and not got.requires_grad
    assert float(alone.std()) > 0  # images differ: a batch mean would fail
    assert_close64(got, alone.detach())


def _tiny_classifier():
    cfg = tiny_cls_config('learning-loss_resnet18-small_shapes-cls.py')
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        torch.manual_seed(0)
        model = MODELS.build(cfg.model)
    model.init_weights()
    return model.eval()


def test_classifier_per_image_losses_are_each_images_own_loss():
    model = _tiny_classifier()
    task = model.model
    adapter = ImageClassifierAdapter()
    gen = torch.Generator().manual_seed(0)
    inputs = torch.randn(5, 3, 32, 32, generator=gen).double()
    from mmpretrain.structures import DataSample
    samples = [DataSample().set_gt_label(int(c)) for c in (0, 3, 1, 1, 2)]
    with float64_computation(task):
        feats = task.extract_feat(inputs)
        got = adapter.per_image_losses(task, feats, None, samples)
        alone = torch.stack([
            task.loss(inputs[i:i + 1], [samples[i]])['loss'] for i in range(5)
        ])
    assert float(alone.std()) > 0
    assert_close64(got, alone.detach())


# -- the wrapped model -------------------------------------------------------
@pytest.fixture(scope='module')
def ll_fcos(tmp_path_factory):
    return tiny_detector(
        tmp_path_factory.mktemp('ll_fcos'), 'learning-loss_fcos_shapes.py',
        FCOSAdapter(), {
            f'model.{k}': v
            for k, v in FCOS_TINY.items()
        }, lambda m: m.model.bbox_head.conv_cls.bias.zero_())


def _seeded(fn, *args):
    """``fn(*args)`` with torch's generator seeded (Faster R-CNN samples
    anchors and proposals at random)."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return fn(*args)


@pytest.fixture(scope='module')
def ll_frcnn(tmp_path_factory):
    return tiny_detector(
        tmp_path_factory.mktemp('ll_frcnn'),
        'learning-loss_faster-rcnn_shapes.py', FasterRCNNAdapter(), {
            f'model.{k}': v
            for k, v in FRCNN_TINY.items()
        })


@pytest.mark.parametrize('which', ['ll_fcos', 'll_frcnn'])
def test_wrapped_loss_is_task_loss_plus_ranking_loss(which, request):
    """In float64; each image's own loss computed alone (Faster R-CNN's
    sampling seeded, as in training, by the image's ``img_id``)."""
    model, adapter, context = request.getfixturevalue(which)
    task = model.model
    assert model.target_model is task and adapter.unwrap(model) is task
    model.loss_predictor.double()  # the target model: adapter.float64
    try:
        with float64_mode(adapter, model):
            data, items = _labeled_batch(model, adapter, context)
            inputs, samples = data['inputs'], data['data_samples']
            losses, plain = (
                _seeded(fn, inputs, copy.deepcopy(samples))
                for fn in (model.loss, task.loss))
            neck = task.extract_feat(inputs)
            alone = torch.stack([
                adapter.gt_loss(model, {
                    k: v
                    for k, v in b.items() if k != 'sample_id'
                }) for b in items
            ])
            expected = ranking_loss(model.loss_predictor(list(neck)), alone)
    finally:  # outside: float64_computation keeps .float() from casting
        model.loss_predictor.float()
    assert sorted(losses) == sorted([*plain, 'loss_ranking'])
    for key, value in plain.items():  # the same computation, same draws
        assert torch.equal(
            torch.stack(list(losses[key])), torch.stack(
                list(value))) if isinstance(value, list) else torch.equal(
                    losses[key], value), key
    assert_close64(losses['loss_ranking'], expected)


@pytest.mark.parametrize('detach', [False, True])
def test_the_ranking_loss_reaches_the_trunk_only_while_attached(
        ll_fcos, detach):
    model, adapter, context = ll_fcos
    data, _ = _labeled_batch(model, adapter, context)
    model.train()
    model.detach_features = detach
    try:
        model.zero_grad()
        model.loss(data['inputs'], data['data_samples'])['loss_ranking'] \
            .backward()
    finally:
        model.detach_features = False
        model.eval()

    def grads(prefix):
        return [
            p.grad for n, p in model.named_parameters() if n.startswith(prefix)
        ]

    # every weight of the module learns (not the output bias: the ranking
    # loss depends on differences of predictions only)
    assert all(g is not None and g.abs().sum() > 0
               for g in grads('loss_predictor.levels.') +
               grads('loss_predictor.out.weight'))
    for trunk in ('model.backbone.', 'model.neck.'):
        reached = [
            g is not None and bool(g.abs().sum() > 0) for g in grads(trunk)
        ]
        assert any(reached) != detach, trunk
    # the head is never reached by the ranking loss
    assert not any(
        g is not None and bool(g.abs().sum() > 0)
        for g in grads('model.bbox_head.'))
    model.zero_grad()


def test_a_plain_checkpoint_loads_into_the_wrapped_model(ll_fcos, tmp_path):
    model, _, _ = ll_fcos
    plain = copy.deepcopy(model.model)
    with torch.no_grad():
        for p in plain.parameters():
            p.add_(1.0)
    path = str(tmp_path / 'plain.pth')
    save_checkpoint({'state_dict': plain.state_dict()}, path)
    wrapped = copy.deepcopy(model)
    before = copy.deepcopy(wrapped.loss_predictor.state_dict())
    load_checkpoint(wrapped, path, map_location='cpu')
    for key, value in plain.state_dict().items():
        assert torch.equal(wrapped.model.state_dict()[key], value), key
    for key, value in before.items():  # the module keeps its weights
        assert torch.equal(wrapped.loss_predictor.state_dict()[key], value)
    # and back: the wrapped model's checkpoint into the plain model
    path = str(tmp_path / 'wrapped.pth')
    save_checkpoint({'state_dict': wrapped.state_dict()}, path)
    again = copy.deepcopy(model.model)
    load_checkpoint(
        again, path, map_location='cpu', revise_keys=[(r'^model\.', '')])
    for key, value in plain.state_dict().items():
        assert torch.equal(again.state_dict()[key], value), key


def test_the_target_model_starts_as_the_plain_configs_does():
    """Same seed, same initial task weights with or without the module
    (the module's construction does not consume torch's generator)."""
    states = []
    for name in ('isal_fcos_shapes.py', 'learning-loss_fcos_shapes.py'):
        cfg = tiny_config(name).model
        with DefaultScope.overwrite_default_scope('mmdet'):
            torch.manual_seed(3)
            model = MODELS.build(cfg)
            model.init_weights()
        states.append(getattr(model, 'target_model', model).state_dict())
    assert states[0].keys() == states[1].keys()
    for key, value in states[0].items():
        assert torch.equal(value, states[1][key]), key


class _NotADetector(BaseModel):
    """A model of no family mmal has an adapter for."""

    def __init__(self):
        super().__init__()
        self.neck = torch.nn.Conv2d(1, 1, 1)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        return self.neck(inputs)


def test_wrong_feature_modules_and_models_are_refused(tmp_path):
    cfg = tiny_config('learning-loss_fcos_shapes.py').model
    with DefaultScope.overwrite_default_scope('mmdet'):
        with pytest.raises(ValueError, match=r"\['nek'\] are not"):
            MODELS.build({**cfg, 'feature_modules': ['nek']})
        # any single-stage detector gets its family's adapter
        atss = MODELS.build({**cfg, 'model': {**cfg.model, 'type': 'ATSS'}})
        assert type(atss.adapter).__name__ == 'SingleStageAdapter'
        with pytest.raises(ValueError, match='no adapter for _NotADetector'):
            MODELS.build({
                **cfg, 'model': _NotADetector(),
                'feature_modules': ['neck'],
                'in_channels': [1]
            })
    runner_cfg = tiny_config('learning-loss_fcos_shapes.py')
    runner_cfg.model = tiny_config('isal_fcos_shapes.py').model
    with pytest.raises(ConfigError, match='needs model.type'):
        ActiveLearningRunner(runner_cfg, str(tmp_path))


# -- the stop-gradient hook in plain mmengine Runners -------------------------
class _Spy:
    """Records, per epoch, whether the module's inputs carry autograd."""

    def __init__(self, monkeypatch):
        self.epochs = {}
        forward = LossPredictionModule.forward
        spy = self

        def recording(module, feats):
            from mmengine.logging import MessageHub
            epoch = MessageHub.get_current_instance().get_info('epoch')
            if torch.is_grad_enabled():
                spy.epochs.setdefault(epoch, set()).add(
                    all(f.requires_grad for f in feats))
            return forward(module, feats)

        monkeypatch.setattr(LossPredictionModule, 'forward', recording)


def _plain_cls_cfg(work_dir, data_dir, max_epochs, detach_epoch):
    """The classification demo's learning-loss config for a plain Runner
    (the whole pool trained on, demo data already generated)."""
    cfg = tiny_cls_config(
        'learning-loss_resnet18-small_shapes-cls.py', **{
            'train_cfg.max_epochs': max_epochs,
            'train_cfg.val_interval': 100,
            'custom_hooks.0.detach_epoch': detach_epoch,
            'demo_data.num_train': 8,
        })
    override_data_root(cfg, data_dir)
    cfg.work_dir = work_dir
    cfg.pop('al_cfg')
    return cfg


@pytest.fixture(scope='module')
def cls_data(tmp_path_factory):
    from mmal.tasks import ClassificationTask
    out = str(tmp_path_factory.mktemp('cls_data'))
    demo = tiny_cls_config().demo_data
    ClassificationTask().generate_demo_data(out, **{**demo, 'num_train': 8})
    return out


def test_the_hook_detaches_from_its_epoch_also_after_a_resume(
        cls_data, tmp_path, monkeypatch):
    spy = _Spy(monkeypatch)
    work = str(tmp_path / 'work')

    def train(max_epochs, resume):
        cfg = _plain_cls_cfg(work, cls_data, max_epochs, detach_epoch=2)
        cfg.resume = resume
        with trusted_checkpoint_loading():  # torch >= 2.6: mmengine's state
            Runner.from_cfg(cfg).train()

    train(1, False)  # epoch 0
    assert spy.epochs == {0: {True}}
    train(3, True)  # resumed before detach_epoch: epochs 1 and 2
    assert spy.epochs == {0: {True}, 1: {True}, 2: {False}}
    train(4, True)  # resumed after it: the new model starts attached
    assert spy.epochs[3] == {False}
    assert osp.isfile(osp.join(work, 'epoch_4.pth'))


def test_the_hook_refuses_a_model_without_learning_loss(cls_data, tmp_path):
    cfg = _plain_cls_cfg(str(tmp_path), cls_data, 1, 0)
    cfg.model = cfg.model.model
    with pytest.raises(TypeError, match='needs the model to be an'):
        Runner.from_cfg(cfg).train()


def test_a_wrapped_fcos_trains_and_tests_in_a_plain_runner(tmp_path):
    from mmal.tasks import DetectionTask
    cfg = tiny_config('learning-loss_fcos_shapes.py',
                      **{'train_cfg.max_epochs': 1})
    data = str(tmp_path / 'data')
    DetectionTask().generate_demo_data(
        data, **{
            **cfg.demo_data, 'num_train': 8,
            'num_val': 4
        })
    override_data_root(cfg, data)
    cfg.work_dir = str(tmp_path / 'work')
    cfg.pop('al_cfg')
    runner = Runner.from_cfg(cfg)
    runner.train()
    with torch.no_grad():  # boxes above the test threshold after 1 epoch
        runner.model.model.bbox_head.conv_cls.bias.zero_()
    metrics = runner.test()
    assert 'coco/bbox_mAP' in metrics
    ckpt = torch.load(
        osp.join(cfg.work_dir, 'epoch_1.pth'),
        map_location='cpu',
        weights_only=False)['state_dict']
    assert any(k.startswith('loss_predictor.') for k in ckpt)
    assert any(k.startswith('model.bbox_head.') for k in ckpt)


# -- the selector end to end --------------------------------------------------
def _check_selection(cfg, work_dir, subset=None):
    """Cycle 0's selection on the trained cycle-0 model in ``work_dir``:
    the scores are the module's predictions on each image alone, the
    selection the highest 4, labeled for cycle 1; the same seed selects
    the same images again. Returns the selection and the context."""
    sel = select_cycle0(cfg, work_dir)
    state = ALState.load(osp.join(work_dir, 'al_state.json'))
    assert [r['done']
            for r in state.cycles] == [['train', 'evaluate', 'select']]
    assert sel['selector'] == 'LearningLossSelector'
    context = cycle0_context(cfg, work_dir, subset)
    model = context.model
    ranked_ids = context.unlabeled_ids
    assert sorted(sel['scores']) == ranked_ids
    view = context.unlabeled_view()
    for sid in ranked_ids:  # batch 8 vs batch 1: float32 rounding only
        batch = next(iter(context.loader(view, [sid])))
        alone = float(
            model.predict_loss(
                model.data_preprocessor(batch, False)['inputs'])[0])
        assert sel['scores'][sid] == pytest.approx(alone, rel=1e-4, abs=1e-5)
    ranked = sorted(ranked_ids, key=lambda i: (-sel['scores'][i], i))
    assert sel['selected'] == ranked[:4]
    assert sorted(state.pool.ids_labeled_in(1)) == sorted(sel['selected'])
    again = LearningLossSelector().rank(context)  # the same seed
    assert again.ranking[:4] == sel['selected']
    return sel, context


def test_learning_loss_selects_the_highest_predicted_losses(
        ll_fcos_cycle0, tmp_path):
    """On the session's trained learning-loss FCOS (cycle 0)."""
    _check_selection(
        tiny_config('learning-loss_fcos_shapes.py'),
        copy_run(ll_fcos_cycle0, str(tmp_path / 'run'), rewind=True))


def test_classification_ranks_a_seeded_unlabeled_subset(tmp_path):
    """A learning-loss classifier trained with the stop-gradient hook
    (detached from epoch 1 of 2) scores a seeded subset of 10."""
    cfg = tiny_cls_config(
        'learning-loss_resnet18-small_shapes-cls.py', **{
            'custom_hooks.0.detach_epoch': 1,
            'al_cfg.unlabeled_subset': 10,
        })
    work_dir = train_cycle0(cfg, str(tmp_path / 'run'))
    sel, context = _check_selection(cfg, work_dir, subset=10)
    assert len(sel['scores']) == 10 < len(context.state.unlabeled_ids)
    other = SelectionContext(
        context.cfg,
        context.state,
        0,
        seed=context.seed + 1,
        work_dir='',
        task=context.task,
        unlabeled_subset=10)
    assert other.unlabeled_ids != context.unlabeled_ids
    assert len(other.unlabeled_ids) == 10
    whole = SelectionContext(
        context.cfg, context.state, 0, seed=0, work_dir='', task=context.task)
    assert whole.unlabeled_ids == sorted(context.state.unlabeled_ids)


def test_an_unlabeled_subset_smaller_than_the_budget_is_refused():
    cfg = tiny_cls_config('learning-loss_resnet18-small_shapes-cls.py',
                          **{'al_cfg.unlabeled_subset': 3})
    with pytest.raises(
            ConfigError,
            match=r'unlabeled_subset \(3\) is '
            r'smaller than al_cfg.budget \(4\)'):
        ActiveLearningRunner(cfg, None)
