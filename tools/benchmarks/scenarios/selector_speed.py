"""Speed of the baseline selectors' pool passes against plain inference.

The benchmark behind ``tools/benchmarks/selector_speed.py``. One run
(:func:`run`) builds one model from a shapes demo config (random seeded
weights) and one set of generated images, then measures, on the same
unlabeled images, with the same batch size, device and number of data
loading workers (eval mode, no autograd):

1. **plain inference** (``plain``): what ``tools/test.py`` does per batch:
   a standard ``DataLoader`` over the unlabeled view (the config's test
   pipeline, ``batch_size`` images per batch, mmengine's
   ``pseudo_collate``) and ``model.test_step(batch)`` (the data
   preprocessor on the batch, then ``model.predict``). The yardstick: a
   selector that looks at every image cannot be cheaper.
2. **entropy pass** (``entropy``):
   ``EntropySelector(batch_size=B).entropies(context)``, i.e.
   :func:`~mmal.selectors.pool_pass.pool_pass` (mmal's batch-1 id loader,
   per-image preprocessing, images of one padded shape batched) with
   ``adapter.predict_batch`` and ``adapter.prediction_entropy`` per batch.
   Target: at most :data:`TARGETS` ``['entropy/plain']`` (1.1) x plain.
3. **core-set feature pass** (``coreset_features``):
   ``CoresetSelector(batch_size=B).features(context, labeled=False)``, the
   same pass with ``adapter.embed`` per batch (the k-center greedy that
   follows it is not timed here). Target: at most 1.2x plain.
4. **localization stability pass** (``stability``, detectors only):
   ``LocalizationStabilitySelector(batch_size=B).stabilities(context)``,
   the same pass predicting each batch clean and then once per noise
   level on noisy copies (the images with a reference box only). No
   target: it is ``len(noise_levels) + 1`` (7) inferences per image by
   construction, the expected ratio (:data:`EXPECTED`), plus the noise
   (drawn on the CPU) and the IoUs.
5. **learning loss pass** (``learning_loss``):
   ``LearningLossSelector(batch_size=B).predicted_losses(context)`` with
   a copy of the model wrapped in a :class:`~mmal.models.LearningLossModel`
   (:func:`learning_loss_model`: a detector's FPN levels, a classifier's 4
   ResNet stages, as the ``learning-loss_*`` configs): the trunk and the
   loss-prediction module (a detector's head and post-processing do not
   run). Target: at most 1.1x plain.
6. **training steps** (``training`` in the results, not a phase of the
   table): :data:`TRAIN_STEPS` ``model.train_step`` calls on the labeled
   images as one batch (``max(NUM_LABELED, batch_size)`` images, test
   pipeline, SGD with lr 0), by a copy of the target model and by a copy
   wrapped with learning loss's module: learning loss's training overhead
   per iteration (the per-image losses and the module's forward and
   backward). No target: the ratio is reported.

Every phase includes its data loading (image decoding and the test
pipeline), as a selection does. The phases run once each as a warm-up,
then ``repeat`` rounds of all of them, interleaved (plain, entropy,
core-set, learning loss, stability, training, plain, ...) so that a change
of the machine's load hits all of them; each
phase's time is its fastest round (:func:`~mmal.testing.benchmark.timed`,
peak memory by :class:`~mmal.testing.benchmark.PeakMemory`).

Models: the config's (``--config``; a shapes demo config with a
``demo_data`` block: ``configs/isal_fcos_shapes.py``,
``configs/isal_faster-rcnn_shapes.py``,
``configs/isal_resnet18-small_shapes-cls.py``, ...), or the ``model`` (and
``al_cfg.adapter``) of another config (``model_config``, e.g. the paper's
FCOS R-50 of ``configs/isal_fcos_voc.py``) put on the demo's data, its
``num_classes`` set to the demo's classes and no pretrained weights
loaded. Weights are PyTorch's / mmengine's initialisation (seeded); a
head's ``conv_cls`` bias (FCOS, RetinaNet) is zeroed, as the tests'
tiny detectors do, so that scores of an untrained detector pass its test
threshold: with the default prior bias no box would be predicted and the
entropy pass would skip the box post-processing that a trained model
does. The report gives the mean number of predicted boxes per image.

Images: the demo generator's (``num_images`` unlabeled plus
:func:`num_labeled` labeled ones), at ``img_size`` if given (the demo
test pipelines keep generated images at their size).

:func:`run` returns every number, and the entropy pass's values (sample
id -> entropy, None: no box); :func:`report` turns them into a table. The
1-minute load average at the start and the end is recorded too: other
processes on the machine distort timings.
"""
import contextlib
import copy
import dataclasses
import os
import os.path as osp
import platform
from typing import Any, Callable, Dict, List, Optional, Tuple

import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.optim import OptimWrapper
from torch import nn
from torch.utils.data import DataLoader

from mmal.engine import resolve_al_cfg
from mmal.models import BaseModelAdapter, LearningLossModel
from mmal.selectors import (CoresetSelector, EntropySelector,
                            LearningLossSelector,
                            LocalizationStabilitySelector, SelectionContext)
from mmal.testing.benchmark import (PeakMemory, load_average, ratio, timed,
                                    torch_threads)
from mmal.testing.scenario import selection_scenario
from mmal.utils import ConfigError, MissingFileError

REPO = osp.dirname(
    osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
DEFAULT_CONFIG = osp.join('configs', 'isal_fcos_shapes.py')
#: phase -> the largest time allowed, as a multiple of plain inference
TARGETS = {
    'entropy/plain': 1.1,
    'coreset_features/plain': 1.2,
    'learning_loss/plain': 1.1,
}
#: phase -> its ratio to plain inference by construction (no target)
EXPECTED = {
    'stability/plain': len(LocalizationStabilitySelector().noise_levels) + 1
}
PHASES = ('plain', 'entropy', 'coreset_features', 'learning_loss', 'stability')
#: training steps timed per round: the target model alone and wrapped with
#: learning loss's module (``training`` in the results)
TRAIN_STEPS = 3
#: phases measured for detectors only (they compare boxes)
BOX_PHASES = ('stability', )
NUM_LABELED = 4  # the pool's labeled images (not timed)
NUM_EVAL = 4  # images of the demo's val / test split (not used)


@dataclasses.dataclass
class SelectorSpeedOptions:
    """What one benchmark run measures.

    Args:
        config (str): A shapes demo config (with ``demo_data``); a relative
            path is looked up from the working directory, then from the
            repository. Defaults to ``configs/isal_fcos_shapes.py``.
        model_config (str, optional): Take ``model`` and
            ``al_cfg.adapter`` from this config instead (classes set to
            the demo's, no pretrained weights). Defaults to None.
        num_images (int): Unlabeled images passed over. Defaults to 200.
        batch_size (int): Images per batch of every phase. Defaults to 8.
        img_size (int, optional): Side of the generated images. Defaults
            to the config's ``demo_data.img_size``.
        device (str): ``'cpu'`` or ``'cuda'``. Defaults to ``'cpu'``.
        amp (bool): Every phase under ``torch.autocast`` (float16, CUDA
            only). Defaults to False.
        repeat (int): Timed rounds after the warm-up; the fastest round of
            each phase is reported. Defaults to 3.
        threads (int, optional): ``torch.set_num_threads`` for the run
            (restored after). Defaults to torch's setting.
        num_workers (int): Data loading workers of every phase. Defaults
            to 0.
        seed (int): Seed of the weights (the images are the demo's, seed
            of ``demo_data``). Defaults to 0.
    """
    config: str = DEFAULT_CONFIG
    model_config: Optional[str] = None
    num_images: int = 200
    batch_size: int = 8
    img_size: Optional[int] = None
    device: str = 'cpu'
    amp: bool = False
    repeat: int = 3
    threads: Optional[int] = None
    num_workers: int = 0
    seed: int = 0

    def __post_init__(self) -> None:
        for name, low in (('num_images', 1), ('batch_size', 1), ('img_size',
                                                                 16),
                          ('repeat', 1), ('threads', 1), ('num_workers', 0)):
            value = getattr(self, name)
            if value is not None and value < low:
                raise ConfigError(f'SelectorSpeedOptions.{name} must be >= '
                                  f'{low}, got {value}')
        if self.device not in ('cpu', 'cuda'):
            raise ConfigError('SelectorSpeedOptions.device must be cpu or '
                              f'cuda, got {self.device!r}')
        if self.amp and self.device != 'cuda':
            raise ConfigError('SelectorSpeedOptions.amp needs device cuda')


# -- set-up -------------------------------------------------------------------
def num_labeled(opts: SelectorSpeedOptions) -> int:
    """Labeled images of the pool: ``NUM_LABELED``, or one training batch
    (``batch_size``) if larger; the training steps use them."""
    return max(NUM_LABELED, opts.batch_size)


def find_config(path: str) -> str:
    """``path`` if it is a file, else ``path`` under the repository."""
    for candidate in (path, osp.join(REPO, path)):
        if osp.isfile(candidate):
            return osp.abspath(candidate)
    raise MissingFileError(f'{path}: no such config (looked in the working '
                           f'directory and in {REPO})')


def _set_classes(cfg: Any, num_classes: int) -> None:
    """Set every ``num_classes`` of a model config (heads, preprocessor)
    and drop pretrained ``init_cfg`` (no download), in place."""
    if isinstance(cfg, dict):
        if 'num_classes' in cfg:
            cfg['num_classes'] = num_classes
        init = cfg.get('init_cfg')
        if isinstance(init, dict) and init.get('type') == 'Pretrained':
            cfg['init_cfg'] = None
        for value in cfg.values():
            _set_classes(value, num_classes)
    elif isinstance(cfg, (list, tuple)):
        for value in cfg:
            _set_classes(value, num_classes)


def build_config(opts: SelectorSpeedOptions) -> Config:
    """The demo config sized for the benchmark.

    ``demo_data`` generates ``num_images +`` :func:`num_labeled` pool
    images (and ``NUM_EVAL`` in the evaluation split) at ``img_size``; the
    pool starts with that many labeled images; the data loading workers are
    ``num_workers``. With ``model_config``, its ``model`` and adapter
    replace the demo's.

    Returns:
        Config: The config for :class:`ActiveLearningRunner`.
    """
    cfg = Config.fromfile(find_config(opts.config))
    demo = cfg.get('demo_data')
    if not demo:
        raise ConfigError(f'{opts.config}: the benchmark needs a shapes demo '
                          'config (with a demo_data block)')
    eval_key = 'num_val' if 'num_val' in demo else 'num_test'
    cfg.merge_from_dict({
        'demo_data.num_train': opts.num_images + num_labeled(opts),
        f'demo_data.{eval_key}': NUM_EVAL,
        'al_cfg.initial_size': num_labeled(opts),
        'al_cfg.num_workers': opts.num_workers,
    })
    if opts.img_size:
        cfg.merge_from_dict({'demo_data.img_size': opts.img_size})
    if opts.model_config:
        other = Config.fromfile(find_config(opts.model_config))
        model = copy.deepcopy(other.model)
        _set_classes(model, len(cfg.classes))
        cfg.model = model
        adapter = other.get('al_cfg', {}).get('adapter')
        if adapter:
            cfg.al_cfg.adapter = adapter
    return cfg


def zero_cls_bias(model: nn.Module) -> None:
    """A head's ``conv_cls`` bias zeroed (see the module docstring)."""
    conv_cls = getattr(getattr(model, 'bbox_head', None), 'conv_cls', None)
    if getattr(conv_cls, 'bias', None) is not None:
        conv_cls.bias.zero_()


def build_setup(
        opts: SelectorSpeedOptions,
        work_dir: str) -> Tuple[nn.Module, BaseModelAdapter, SelectionContext]:
    """Model, adapter and selection context on generated demo data.

    Args:
        opts (SelectorSpeedOptions): The config, sizes and device.
        work_dir (str): Where the generated images are written.

    Returns:
        tuple: ``(model, adapter, context)``; the model in eval mode on
        ``opts.device``, prepared by the config's adapter.
    """
    cfg = build_config(opts)
    if resolve_al_cfg(cfg)['adapter'] is None:
        raise ConfigError(f'{opts.config}: al_cfg.adapter is not set')
    model, adapter, context = selection_scenario(
        cfg,
        work_dir,
        num_labeled(opts),
        seed=opts.seed,
        init_seed=opts.seed,
        tweak=zero_cls_bias,
        device=opts.device,
        num_workers=opts.num_workers)
    return model, adapter, context


# -- the measured computations ------------------------------------------------
def plain_inference(model: nn.Module, context: SelectionContext,
                    batch_size: int) -> List[Optional[int]]:
    """``model.test_step`` over the unlabeled images, as ``tools/test.py``
    runs it (a standard loader, ``pseudo_collate``).

    Returns:
        list[int | None]: Per image, the number of predicted boxes (None
        for a model without ``pred_instances``, e.g. a classifier).
    """
    loader = DataLoader(
        context.unlabeled_view(),
        batch_size=batch_size,
        shuffle=False,
        num_workers=context.num_workers,
        collate_fn=pseudo_collate)
    boxes: List[Optional[int]] = []
    with torch.no_grad():
        for batch in loader:
            for res in model.test_step(batch):
                boxes.append(
                    len(res.pred_instances) if 'pred_instances' in
                    res else None)
    return boxes


def entropy_pass(context: SelectionContext,
                 batch_size: int) -> Dict[str, Optional[float]]:
    """``EntropySelector(batch_size=batch_size).entropies(context)``."""
    return EntropySelector(batch_size=batch_size).entropies(context)


def coreset_feature_pass(context: SelectionContext,
                         batch_size: int) -> Dict[str, torch.Tensor]:
    """``CoresetSelector(batch_size=batch_size).features(context,
    labeled=False)``: sample id -> embedding (D, )."""
    return CoresetSelector(batch_size=batch_size).features(
        context, labeled=False)


def stability_pass(context: SelectionContext,
                   batch_size: int) -> Dict[str, Tuple[Optional[float], int]]:
    """``LocalizationStabilitySelector(batch_size=batch_size).stabilities(
    context)``: sample id -> (stability, None without reference box;
    number of reference boxes)."""
    return LocalizationStabilitySelector(
        batch_size=batch_size).stabilities(context)


def learning_loss_model(model: nn.Module) -> LearningLossModel:
    """A copy of ``model`` wrapped with learning loss's module, as the
    ``learning-loss_*`` configs wrap it (a detector's FPN levels, a
    ResNet classifier's 4 stages); same weights, the same mode."""
    if hasattr(model, 'bbox_head') or hasattr(model, 'rpn_head'):
        features = ['neck']
    else:
        features = [f'backbone.{n}' for n in model.backbone.res_layers]
    wrapped = LearningLossModel(copy.deepcopy(model), features)
    return wrapped.to(next(model.parameters()).device).train(model.training)


def learning_loss_pass(context: SelectionContext,
                       batch_size: int) -> Dict[str, float]:
    """``LearningLossSelector(batch_size=batch_size).predicted_losses(
    context)`` (the context's model a :class:`LearningLossModel`)."""
    return LearningLossSelector(
        batch_size=batch_size).predicted_losses(context)


def training_batch(context: SelectionContext) -> Dict[str, list]:
    """The labeled images with their boxes / labels as one training batch
    (the test pipeline: no random augmentation)."""
    batch: Dict[str, list] = dict(inputs=[], data_samples=[])
    for item in context.loader(context.labeled_view()):
        batch['inputs'] += item['inputs']
        batch['data_samples'] += item['data_samples']
    return batch


def train_steps(model: nn.Module, batch: Dict[str, list], steps: int) -> float:
    """``steps`` of ``model.train_step`` on ``batch`` (SGD with lr 0: the
    forward, backward and update run, the weights stay); the last loss.
    The model is put back in eval mode."""
    optim = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.0))
    model.train()
    try:
        for _ in range(steps):
            log = model.train_step(copy.deepcopy(batch), optim)
    finally:
        model.eval()
    return float(log['loss'])


# -- run and report -----------------------------------------------------------
def _interleaved(
        runs: Dict[str, Callable[[], Any]], memory: PeakMemory,
        repeat: int) -> Tuple[Dict[str, Dict[str, Any]], Dict[str, Any]]:
    """Run every phase once (warm-up, not recorded), then ``repeat``
    rounds of all phases in turn.

    Returns:
        tuple: Per phase the record of :func:`timed` over the rounds
        (``seconds`` the fastest, ``seconds_all``, the peak memory of the
        round with the largest peak) plus ``warmup_s``; and each phase's
        last result.
    """
    rounds: List[Dict[str, Dict[str, Any]]] = []
    results: Dict[str, Any] = {}
    for _ in range(repeat + 1):
        record: Dict[str, Dict[str, Any]] = {}
        for name, fn in runs.items():
            results[name] = timed(name, fn, lambda: (), memory, record)
        rounds.append(record)
    phases = {}
    for name in runs:
        timings = [r[name] for r in rounds[1:]]
        times = [t['seconds'] for t in timings]
        peak = max(timings, key=lambda t: t['peak_mib'])
        phases[name] = dict(
            peak,
            seconds=min(times),
            seconds_all=times,
            warmup_s=rounds[0][name]['seconds'])
    return phases, results


def _autocast(opts: SelectorSpeedOptions):
    """``torch.autocast`` (float16) with ``amp``, else nothing."""
    if opts.amp:
        return torch.autocast(device_type='cuda', dtype=torch.float16)
    return contextlib.nullcontext()


def run(opts: SelectorSpeedOptions, work_dir: str) -> Dict[str, Any]:
    """Every measurement (see the module docstring).

    Args:
        opts (SelectorSpeedOptions): What to measure.
        work_dir (str): Where the generated images are written.

    Returns:
        dict: The results (see :func:`report`): per phase ``seconds`` (the
        fastest round), ``seconds_all``, ``warmup_s``, ``images_per_s``,
        ``peak_mib`` and ``start_mib``; ``ratios`` (pass / plain),
        ``targets`` and ``targets_met``, ``expected`` (the stability
        pass's ratio by construction; detectors only, as its phase);
        ``entropies`` (sample id -> entropy of the last entropy pass,
        None: no box), ``stability_scored`` (images with a reference box;
        None for a classifier) and ``unlabeled_ids``.
    """
    with torch_threads(opts.threads):
        return _run(opts, work_dir)


def _run(opts: SelectorSpeedOptions, work_dir: str) -> Dict[str, Any]:
    """:func:`run` with the thread count set."""
    load_start = load_average()
    model, adapter, context = build_setup(opts, work_dir)
    ids = sorted(context.state.unlabeled_ids)
    B = opts.batch_size
    memory = PeakMemory(opts.device)
    runs = {
        'plain': lambda: plain_inference(model, context, B),
        'entropy': lambda: entropy_pass(context, B),
        'coreset_features': lambda: coreset_feature_pass(context, B),
    }
    ll_context = copy.copy(context)
    ll_context.model = learning_loss_model(model)
    runs['learning_loss'] = lambda: learning_loss_pass(ll_context, B)
    detects = adapter.predicts_boxes
    if detects:
        runs['stability'] = lambda: stability_pass(context, B)
    batch = training_batch(context)
    plain_train = copy.deepcopy(model)  # BN statistics change in training
    ll_train = learning_loss_model(model)
    runs['train_plain'] = lambda: train_steps(plain_train, batch, TRAIN_STEPS)
    runs['train_learning_loss'] = lambda: train_steps(ll_train, batch,
                                                      TRAIN_STEPS)
    with _autocast(opts):
        phases, results = _interleaved(runs, memory, opts.repeat)
    training = {
        k: phases.pop(f'train_{k}')
        for k in ('plain', 'learning_loss')
    }
    for m in training.values():
        m['seconds_per_step'] = m['seconds'] / TRAIN_STEPS
    training.update(
        steps=TRAIN_STEPS,
        batch_size=len(batch['inputs']),
        ratio=ratio(training['learning_loss']['seconds'],
                    training['plain']['seconds']))
    for m in phases.values():
        m['images_per_s'] = len(ids) / m['seconds']
    t = {k: m['seconds'] for k, m in phases.items()}
    ratios = {
        f'{k}/plain': ratio(t[k], t['plain'])
        for k in PHASES if k != 'plain' and k in t
    }
    boxes = results['plain']
    counted = [b for b in boxes if b is not None]
    entropies = results['entropy']
    features = results['coreset_features']
    first = context.unlabeled_view()[0]['inputs']
    return dict(
        config=opts.config,
        model_config=opts.model_config,
        model=type(model).__name__,
        adapter=type(adapter).__name__,
        num_images=len(ids),
        image_size=f'{first.shape[-1]}x{first.shape[-2]}',
        batch_size=B,
        device=opts.device,
        amp=opts.amp,
        threads=torch.get_num_threads(),
        cpus=os.cpu_count(),
        num_workers=opts.num_workers,
        repeat=opts.repeat,
        torch=torch.__version__,
        python=platform.python_version(),
        phases=phases,
        ratios=ratios,
        targets=dict(TARGETS),
        targets_met={
            k: bool(ratios[k] <= v)
            for k, v in TARGETS.items()
        },
        expected=dict(EXPECTED) if detects else {},
        training=training,
        stability_scored=(sum(1 for v, _ in results['stability'].values()
                              if v is not None) if detects else None),
        boxes_per_image=(sum(counted) / len(counted) if counted else None),
        images_without_boxes=sum(1 for b in counted if b == 0),
        num_unscored=sum(1 for v in entropies.values() if v is None),
        feature_dim=int(next(iter(features.values())).numel()),
        entropies=entropies,
        unlabeled_ids=ids,
        memory_kind=memory.kind,
        memory_reset_ok=memory.reset_ok,
        load_average=[load_start, load_average()],
    )


_LABELS = {
    'plain': 'plain inference (model.test_step)',
    'entropy': 'entropy pass (EntropySelector)',
    'coreset_features': 'core-set features (CoresetSelector)',
    'learning_loss': 'learning loss pass (LearningLoss)',
    'stability': 'stability pass (LocalizationStability)',
}


def report(res: Dict[str, Any]) -> str:
    """The human-readable table of :func:`run`'s results."""
    boxes = res['boxes_per_image']
    lines = [
        f'config: {res["config"]}' +
        (f', model of {res["model_config"]}' if res['model_config'] else '') +
        f' ({res["model"]}, {res["adapter"]}, random '
        'weights)',
        f'{res["num_images"]} images {res["image_size"]}, batch '
        f'{res["batch_size"]}, {res["device"]} ({res["threads"]} threads, '
        f'{res["cpus"]} cores){" + autocast fp16" if res["amp"] else ""}, '
        f'{res["num_workers"]} loader workers, best of {res["repeat"]} after '
        f'a warm-up; load average (1 min) at start '
        f'{res["load_average"][0]:.2f}, at end {res["load_average"][1]:.2f}',
        ('predicted boxes per image (plain): '
         f'{boxes:.1f}, {res["images_without_boxes"]} images without box; '
         if boxes is not None else '') +
        f'{res["num_unscored"]} images without entropy; core-set features '
        f'{res["feature_dim"]}-d' +
        ('' if res['stability_scored'] is None else
         f'; {res["stability_scored"]} images with a reference box '
         '(stability)'),
        f'{"phase":<38} {"seconds":>8} {"img/s":>8} {"x plain":>8} '
        f'{"target":>7} {"peak MiB":>9}',
    ]
    for key, label in _LABELS.items():
        if key not in res['phases']:  # a detector-only phase
            continue
        m = res['phases'][key]
        name = f'{key}/plain'
        x = res['ratios'].get(name, 1.0)
        target = res['targets'].get(name)
        mark = '' if target is None else (
            f'<={target}' + ('' if res['targets_met'][name] else ' MISSED'))
        if name in res['expected']:  # no target: the ratio by construction
            mark = f'~{res["expected"][name]}'
        lines.append(f'{label:<38} {m["seconds"]:>8.3f} '
                     f'{m["images_per_s"]:>8.1f} {x:>8.3f} {mark:>7} '
                     f'{m["peak_mib"]:>9.0f}')
    tr = res['training']
    lines.append(
        f'training step, {tr["batch_size"]} images (best of '
        f'{res["repeat"]} rounds of {tr["steps"]} steps): target model '
        f'{tr["plain"]["seconds_per_step"]:.3f} s, with learning loss\'s '
        f'module {tr["learning_loss"]["seconds_per_step"]:.3f} s '
        f'({tr["ratio"]:.3f}x, peak {tr["learning_loss"]["peak_mib"]:.0f} '
        f'vs {tr["plain"]["peak_mib"]:.0f} MiB)')
    lines.append('rounds (s): ' +
                 '; '.join(f'{k} ' + ', '.join(f'{s:.2f}'
                                               for s in m['seconds_all']) +
                           f' (warm-up {m["warmup_s"]:.2f})'
                           for k, m in res['phases'].items()))
    lines.append(f'peak memory: {res["memory_kind"]}')
    return '\n'.join(lines)
