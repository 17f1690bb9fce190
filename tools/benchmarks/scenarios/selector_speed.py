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

**PPAL diversity** (``ppal_diversity`` = N candidates; no model, no image):
:func:`ppal_run` times PPAL's second stage on synthetic detections
(:func:`ppal_detections`): N images of ``ppal_boxes`` detections each
(labels uniform over ``ppal_classes``, about ``ppal_valid`` of the scores
above 0.05, ``ppal_dim``-d standard normal features, float32), then

1. ``ccms``: :func:`~mmal.selectors.ccms.ccms_distances` (the N x N
   distance, made a NumPy array);
2. ``farthest_first``: :func:`~mmal.selectors.k_medoids.farthest_first`
   of ``budget = N // 2`` seeds (COCO-large: 2 x 11,727 candidates for a
   budget of 11,727) from a seeded first point;
3. ``k_medoids``: :func:`~mmal.selectors.k_medoids.k_medoids` from them
   (at most 100 iterations, stopping at a fixed point).

Each phase runs once after a warm-up on a few images (thread pools);
the report gives its wall time and the process's CPU time (all threads;
below the wall time where other processes take the cores), and its peak
memory: the process's peak RSS on the CPU (the inputs included) or CUDA's
peak allocation.
"""
import contextlib
import copy
import dataclasses
import os
import os.path as osp
import platform
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np
import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.optim import OptimWrapper
from torch import nn
from torch.utils.data import DataLoader

from mmal.engine import resolve_al_cfg
from mmal.models import BaseModelAdapter, LearningLossModel
from mmal.models.auto_adapter import adapter_for
from mmal.selectors import (CoresetSelector, EntropySelector,
                            LearningLossSelector,
                            LocalizationStabilitySelector, PPALSelector,
                            SelectionContext)
from mmal.selectors.ccms import ccms_distances
from mmal.selectors.k_medoids import farthest_first, k_medoids
from mmal.selectors.ppal_uncertainty import class_weights
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
    # PPAL's two passes (dense detectors): the DCUS pass over the pool and
    # the CCMS feature pass (every unlabeled image as a candidate here)
    'ppal_dcus/plain': 1.3,
    'ppal_features/plain': 1.3,
}
#: phase -> its ratio to plain inference by construction (no target)
EXPECTED = {
    'stability/plain': len(LocalizationStabilitySelector().noise_levels) + 1
}
PHASES = ('plain', 'entropy', 'coreset_features', 'learning_loss', 'stability',
          'plain_ppal_cfg', 'ppal_dcus', 'ppal_features')
#: training steps timed per round: the target model alone and wrapped with
#: learning loss's module (``training`` in the results)
TRAIN_STEPS = 3
#: phases measured for detectors only (they compare boxes)
BOX_PHASES = ('stability', )
#: phases measured for dense detectors only (PPAL's passes)
DENSE_PHASES = ('plain_ppal_cfg', 'ppal_dcus', 'ppal_features')
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
            of ``demo_data``). Defaults to 0. With ``ppal_diversity``, the
            seed of the synthetic detections and of the first seed point.
        ppal_diversity (int, optional): Instead of the pool passes, time
            PPAL's diversity stage on this many synthetic candidate images
            (see the module docstring). Defaults to None.
        ppal_boxes (int): Detections per image. Defaults to 100 (the
            official's ``max_per_img``).
        ppal_classes (int): Classes of the labels. Defaults to 80 (COCO).
        ppal_valid (float): Expected share of the scores above 0.05, in
            [0, 1]. Defaults to 0.3.
        ppal_dim (int): Feature dimension. Defaults to 256 (RetinaNet's
            classification tower).
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
    ppal_diversity: Optional[int] = None
    ppal_boxes: int = 100
    ppal_classes: int = 80
    ppal_valid: float = 0.3
    ppal_dim: int = 256

    def __post_init__(self) -> None:
        for name, low in (('num_images', 1), ('batch_size', 1),
                          ('img_size', 16), ('repeat', 1), ('threads', 1),
                          ('num_workers', 0), ('ppal_diversity', 2),
                          ('ppal_boxes', 1), ('ppal_classes', 1), ('ppal_dim',
                                                                   1)):
            value = getattr(self, name)
            if value is not None and value < low:
                raise ConfigError(f'SelectorSpeedOptions.{name} must be >= '
                                  f'{low}, got {value}')
        if self.device not in ('cpu', 'cuda'):
            raise ConfigError('SelectorSpeedOptions.device must be cpu or '
                              f'cuda, got {self.device!r}')
        if self.amp and self.device != 'cuda':
            raise ConfigError('SelectorSpeedOptions.amp needs device cuda')
        if not 0 <= self.ppal_valid <= 1:
            raise ConfigError('SelectorSpeedOptions.ppal_valid must lie in '
                              f'[0, 1], got {self.ppal_valid}')


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
    if resolve_al_cfg(cfg)['adapter'] is None:  # as the driver: by type
        cfg.al_cfg.adapter = adapter_for(cfg.model,
                                         cfg.get('default_scope', 'mmdet'))
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


def plain_inference_ppal_cfg(model: nn.Module, context: SelectionContext,
                             batch_size: int) -> List[Optional[int]]:
    """:func:`plain_inference` under the test config of PPAL's DCUS pass
    (no score threshold, 3000 a level, NMS at 0.6, 200 kept: the official
    code's): what that pass costs by its settings, apart from mmal."""
    from mmengine.config import ConfigDict
    head = model.bbox_head
    old = head.test_cfg
    head.test_cfg = ConfigDict(PPALSelector().uncertainty_cfg)
    try:
        return plain_inference(model, context, batch_size)
    finally:
        head.test_cfg = old


def ppal_dcus_pass(context: SelectionContext,
                   batch_size: int) -> Dict[str, float]:
    """PPAL's DCUS pass (``PPALSelector.uncertainties``) with the class
    weights of qualities 0.5."""
    head = context.adapter.unwrap(context.model).bbox_head
    weights = class_weights(torch.full((head.num_classes, ), 0.5))
    return PPALSelector(batch_size=batch_size).uncertainties(context, weights)


def ppal_feature_pass(context: SelectionContext,
                      batch_size: int) -> Dict[str, Dict[str, torch.Tensor]]:
    """PPAL's CCMS feature pass (``PPALSelector.objects``), every
    unlabeled image a candidate."""
    return PPALSelector(batch_size=batch_size).objects(
        context, sorted(context.unlabeled_ids))


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
        None for a classifier) and ``unlabeled_ids``. With
        ``ppal_diversity``: :func:`ppal_run`'s results (``work_dir`` is
        not used).
    """
    with torch_threads(opts.threads):
        if opts.ppal_diversity:
            return ppal_run(opts)
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
    if hasattr(adapter, 'forward_with_towers'):  # a dense detector
        runs['plain_ppal_cfg'] = lambda: plain_inference_ppal_cfg(
            model, context, B)
        runs['ppal_dcus'] = lambda: ppal_dcus_pass(context, B)
        runs['ppal_features'] = lambda: ppal_feature_pass(context, B)
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
    if 'plain_ppal_cfg' in t:  # the DCUS pass against its own settings
        ratios['ppal_dcus/plain_ppal_cfg'] = ratio(t['ppal_dcus'],
                                                   t['plain_ppal_cfg'])
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
            for k, v in TARGETS.items() if k in ratios
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
    'plain_ppal_cfg': 'plain inference, DCUS test config',
    'ppal_dcus': 'PPAL uncertainty pass (DCUS)',
    'ppal_features': 'PPAL object features (CCMS)',
}


def report(res: Dict[str, Any]) -> str:
    """The human-readable table of :func:`run`'s results."""
    if res.get('kind') == 'ppal_diversity':
        return ppal_report(res)
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
    own = res['ratios'].get('ppal_dcus/plain_ppal_cfg')
    if own is not None:
        lines.append(f'PPAL uncertainty pass / plain inference under the same '
                     f'test config: {own:.3f}x')
    lines.append(f'peak memory: {res["memory_kind"]}')
    return '\n'.join(lines)


# -- PPAL diversity -----------------------------------------------------------
#: CCMS's validity threshold (official)
PPAL_SCORE_THR = 0.05
#: images of the warm-up run (not timed)
PPAL_WARMUP_IMAGES = 16


def ppal_detections(opts: SelectorSpeedOptions,
                    num: Optional[int] = None) -> Dict[str, Any]:
    """Synthetic detections of ``num`` (default ``ppal_diversity``) images,
    seeded by ``opts.seed``, on the CPU.

    Per image ``ppal_boxes`` detections sorted by score (as after NMS): a
    Binomial(``ppal_boxes``, ``ppal_valid``) number of them valid, scores
    ``0.05 + 0.95 u^2`` (u in (0, 1]: mostly low, as a detector's), the
    rest ``0.05 u`` (below the threshold); labels uniform over
    ``ppal_classes``; features standard normal, float32.

    Returns:
        dict: ``labels``, ``scores``, ``feats``, ``det_index`` (lists of N
        tensors: (B, ), (B, ), (B, d), (B, )), and ``valid_total``,
        ``pairs`` (``sum_c M_c^2`` over the valid detections of each
        category, the number of cosines computed).
    """
    n = num or opts.ppal_diversity
    boxes = opts.ppal_boxes
    g = torch.Generator().manual_seed(opts.seed)
    counts = torch.binomial(
        torch.full((n, ), float(boxes)),
        torch.full((n, ), float(opts.ppal_valid)),
        generator=g)
    u = 1.0 - torch.rand((n, boxes), generator=g)  # (0, 1]
    valid = torch.arange(boxes)[None, :] < counts[:, None]
    scores = torch.where(valid, PPAL_SCORE_THR + (1 - PPAL_SCORE_THR) * u**2,
                         PPAL_SCORE_THR * (1 - u))
    scores = scores.sort(dim=1, descending=True).values
    labels = torch.randint(0, opts.ppal_classes, (n, boxes), generator=g)
    feats = torch.randn((n, boxes, opts.ppal_dim), generator=g)
    per_class = torch.bincount(
        labels[scores > PPAL_SCORE_THR], minlength=opts.ppal_classes)
    index = torch.arange(boxes)
    return dict(
        labels=list(labels),
        scores=list(scores),
        feats=list(feats),
        det_index=[index] * n,
        valid_total=int(per_class.sum()),
        pairs=int((per_class.double()**2).sum()))


def _ppal_ccms(det: Dict[str, Any], device: str) -> np.ndarray:
    """:func:`ccms_distances` of the detections on ``device``, as a
    NumPy array (on the CPU)."""
    return ccms_distances(
        det['labels'], det['scores'], det['feats'],
        device=device).cpu().numpy()


def _cpu_timed(fn: Callable[..., Any], name: str,
               cpu: Dict[str, float]) -> Callable[..., Any]:
    """``fn`` that also stores its process CPU time (all threads) in
    ``cpu[name]``: on a loaded machine the wall time overstates the
    work."""

    def wrapped(*args: Any) -> Any:
        start = time.process_time()
        try:
            return fn(*args)
        finally:
            cpu[name] = time.process_time() - start

    return wrapped


def ppal_run(opts: SelectorSpeedOptions) -> Dict[str, Any]:
    """PPAL's diversity stage on synthetic detections (see the module
    docstring); the thread count set by :func:`run`.

    Returns:
        dict: ``kind`` ``'ppal_diversity'``; the sizes (``num_images``,
        ``boxes``, ``classes``, ``dim``, ``valid_total``, ``pairs``,
        ``budget``); per phase (``ccms``, ``farthest_first``,
        ``k_medoids``) ``seconds`` (wall), ``cpu_seconds`` (the process's
        CPU time, all threads) and ``peak_mib`` / ``start_mib``;
        ``total_s``; the medoids' ``distinct``, ``empty_clusters`` and
        ``moved`` (medoids that are not a seed); the machine and the load
        average at the start and the end.
    """
    load_start = load_average()
    n = opts.ppal_diversity
    budget = n // 2
    first = int(np.random.default_rng(opts.seed).integers(n))
    warm = ppal_detections(opts, min(n, PPAL_WARMUP_IMAGES))
    dist = _ppal_ccms(warm, opts.device)
    k_medoids(dist, farthest_first(dist, len(dist) // 2, 0))
    det = ppal_detections(opts)
    record: Dict[str, Dict[str, Any]] = {}
    cpu: Dict[str, float] = {}
    dist = timed('ccms', _cpu_timed(_ppal_ccms, 'ccms', cpu), lambda:
                 (det, opts.device), PeakMemory(opts.device), record)
    memory = PeakMemory('cpu')  # both run on NumPy arrays
    seeds = timed('farthest_first',
                  _cpu_timed(farthest_first, 'farthest_first', cpu), lambda:
                  (dist, budget, first), memory, record)
    medoids, assign = timed('k_medoids', _cpu_timed(k_medoids, 'k_medoids',
                                                    cpu), lambda:
                            (dist, seeds), memory, record)
    for name, seconds in cpu.items():
        record[name]['cpu_seconds'] = seconds
    return dict(
        kind='ppal_diversity',
        num_images=n,
        boxes=opts.ppal_boxes,
        classes=opts.ppal_classes,
        dim=opts.ppal_dim,
        valid_share=opts.ppal_valid,
        valid_total=det['valid_total'],
        pairs=det['pairs'],
        budget=budget,
        first=first,
        device=opts.device,
        threads=torch.get_num_threads(),
        cpus=os.cpu_count(),
        torch=torch.__version__,
        python=platform.python_version(),
        phases=record,
        total_s=sum(m['seconds'] for m in record.values()),
        matrix_mib=dist.nbytes / 2**20,
        distinct=len(set(medoids)),
        empty_clusters=int((np.bincount(assign, minlength=budget) == 0).sum()),
        moved=len(set(medoids) - set(seeds)),
        memory_kind=PeakMemory(opts.device).kind,
        load_average=[load_start, load_average()],
    )


_PPAL_LABELS = {
    'ccms': 'CCMS distances (ccms_distances)',
    'farthest_first': 'seeds (farthest_first)',
    'k_medoids': 'k-medoids (k_medoids)',
}


def ppal_report(res: Dict[str, Any]) -> str:
    """The human-readable table of :func:`ppal_run`'s results."""
    n = res['num_images']
    lines = [
        f'PPAL diversity: {n} candidate images x {res["boxes"]} detections '
        f'({res["classes"]} classes, {res["dim"]}-d features), '
        f'{res["valid_total"] / n:.1f} valid (score > 0.05) per image, '
        f'{res["valid_total"]} in all, {res["pairs"]:.3e} same-class pairs; '
        f'budget {res["budget"]}',
        f'{res["device"]} ({res["threads"]} threads, {res["cpus"]} cores); '
        f'load average (1 min) at start {res["load_average"][0]:.2f}, at end '
        f'{res["load_average"][1]:.2f}',
        f'{"phase":<34} {"seconds":>9} {"CPU s":>9} {"peak MiB":>9}',
    ]
    for key, label in _PPAL_LABELS.items():
        m = res['phases'][key]
        lines.append(f'{label:<34} {m["seconds"]:>9.2f} '
                     f'{m["cpu_seconds"]:>9.2f} {m["peak_mib"]:>9.0f}')
    lines.append(
        f'total {res["total_s"]:.2f} s; distance matrix '
        f'{res["matrix_mib"]:.0f} MiB; medoids: {res["distinct"]} distinct, '
        f'{res["moved"]} moved from their seed, {res["empty_clusters"]} '
        'empty clusters')
    lines.append('peak memory: process RSS (VmHWM), the inputs included'
                 if res['device'] == 'cpu' else
                 f'peak memory: {res["memory_kind"]} (ccms), process RSS '
                 '(VmHWM) (seeds, k-medoids)')
    return '\n'.join(lines)
