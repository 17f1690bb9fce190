"""Speed (and agreement) of influence scoring on an image classifier.

The benchmark behind ``tools/benchmarks/cls_influence_speed.py``. One run
(:func:`run`) builds one mmpretrain ``ImageClassifier`` and one set of
random 32x32 images, then measures, on the same model and the same images
(eval mode, ``batch_size`` images per batch):

1. **plain inference** (``predict``): mmpretrain's batched inference, per
   batch (collated by mmengine's ``pseudo_collate`` before the timing, as
   a data loader would hand it over) ``model.data_preprocessor(batch,
   False)`` and ``model.predict`` under ``torch.no_grad()``. The
   yardstick: selection cannot be cheaper than looking at every image
   once.
2. **plain feature extraction** (``extract_feat``): the same batches
   through ``model.data_preprocessor`` and ``model.extract_feat``, no grad.
3. **last-layer θ, closed form** (``last_closed_form``): θ = the head's
   last linear layer's weight, found by rule (``head.fc.weight`` for
   ResNet-18 and ConvNeXt); :class:`~mmal.models.ImageClassifierAdapter`'s
   ``directional_scores``, which for softmax cross-entropy scores every
   image of a batch from one feature pass without autograd. The batches
   are made as the selector makes them,
   :func:`~mmal.datasets.shape_batches.same_shape_batches`: each image is
   preprocessed on its own (``adapter.preprocess``), then images of one
   shape are concatenated (all of them here: the images are 32x32). For
   fixed-size images this equals preprocessing whole batches; the
   per-image preprocessing costs ~0.1 ms per image and is timed.
4. **last-layer θ, batched autograd** (``last_autograd``): the same with
   ``closed_form=False``, i.e. the base adapter's batched
   :class:`~mmal.influence.OutputProbe` pass through the head.
5. **last-layer θ, per-image reference** (``last_reference``): per image
   ``adapter.pseudo_loss`` (argmax pseudo label), ``loss_grad`` to θ and
   ``flat_dot`` with the direction.
6. **all-weights θ, batched** (``all_fast``): θ = every conv and linear
   weight (``param_types=('Conv2d', 'Linear')``, the official code's θ);
   ``directional_scores`` in the same batches (the OutputProbe pass
   through the whole network, one backward to the layers' outputs).
7. **all-weights θ, per-image reference** (``all_reference``): as 5 with
   that θ, on the first ``reference_images`` images only (all by
   default); its time is then also given scaled to all images
   (``seconds_scaled`` = ``seconds * num_images / reference_images``),
   and the ratios use the scaled time.

The direction ``S`` of the scores ``∇θ l(z', ŷ) · S`` is random (normal,
seeded, shaped like θ): the benchmark measures scoring, not s_test.

For 3-7 the report gives the times and the ratios to plain inference
(target: the closed form at most 1.1x plain inference), and how far the
batched scores (3, 4, 6) are from the per-image reference (5, 7): the
largest per-image relative difference and whether the ranking of the
compared images is the same (:func:`~mmal.testing.benchmark.
compare_scores`). In float32 they differ by rounding; ``float64`` runs
everything in float64 (:func:`~mmal.testing.precision.float64_mode`),
where they agree to ~1e-15.

Peak memory of every phase: :class:`~mmal.testing.benchmark.PeakMemory`
(on CPU the whole process's peak resident set, not the phase alone).

The model (seeded, PyTorch's default initialisation, eval mode, the batch
norms' statistics those of calibration images, :func:`calibrate_batch_norm`),
``model`` (:data:`MODEL_CONFIGS`, under ``configs/_base_/models/``):

* ``'resnet18'`` (default): the paper's CIFAR ResNet-18
  (``resnet18_cifar.py``: 3x3 stem, 512-d features); with ``small`` the
  demo model (``resnet18-small_cifar.py``, 1/4 width, 128-d features);
* ``'mobilenet-v3-small'``: the MobileNetV3-Small demo's model
  (``mobilenet-v3-small_cifar.py``: mmpretrain's CIFAR MobileNetV3-Small,
  head Linear(576, 1280) + HSwish + Linear(1280, C));
* ``'vit-tiny'``: the tiny ViT demo's (``vit-tiny_p4-32px.py``: 64-d
  tokens, 4 layers, 4x4 patches);
* ``'convnext-tiny'``: the tiny ConvNeXt demo's
  (``convnext-tiny_p2-32px.py``: 2 blocks per stage, 16-128 channels).

With 10 classes; its data preprocessor is CIFAR10's
(``configs/_base_/datasets/al_cifar10.py``). An untrained network maps
random images to nearly the same feature, so its predictions would all be
one class; the head's final linear layer (the one θ by rule finds) is
therefore set from its inputs on separate calibration images
(:func:`calibrate_head`): ``W = G / (σ √D) * gain``, ``b = -W μ`` (``G``
standard normal, ``μ`` and ``σ`` the inputs' per-dimension mean and
standard deviation), which spreads the logits (standard deviation about
``gain`` = 3) and the predicted classes. The report gives the number of
distinct predicted classes.

:func:`run` returns every number; :func:`report` turns them into a table.
The 1-minute load average at the start and the end is recorded too: other
processes on the machine distort timings.
"""
import contextlib
import copy
import dataclasses
import functools
import os
import os.path as osp
import platform
from typing import Any, Dict, List, Optional, Sequence

import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.registry import DefaultScope
from torch import nn

from mmal.datasets.shape_batches import same_shape_batches
from mmal.influence import flat_dot, loss_grad
from mmal.models import ImageClassifierAdapter
from mmal.testing.benchmark import (Blocks, PeakMemory, Scores, compare_scores,
                                    load_average, ratio, timed, torch_threads)
from mmal.testing.precision import float64_mode
from mmal.utils import ConfigError, MissingFileError

Batch = Dict[str, list]  # a collated batch: inputs, data_samples, sample_id

REPO_CONFIGS = osp.join(
    osp.dirname(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))),
    'configs')
#: ``(model, small)`` -> its config, relative to the configs folder
MODEL_CONFIGS = {
    ('resnet18', False): osp.join('_base_', 'models', 'resnet18_cifar.py'),
    ('resnet18', True): osp.join('_base_', 'models',
                                 'resnet18-small_cifar.py'),
    ('mobilenet-v3-small', False): osp.join('_base_', 'models',
                                            'mobilenet-v3-small_cifar.py'),
    ('vit-tiny', False): osp.join('_base_', 'models', 'vit-tiny_p4-32px.py'),
    ('convnext-tiny', False): osp.join('_base_', 'models',
                                       'convnext-tiny_p2-32px.py'),
}
MODELS = tuple(dict.fromkeys(m for m, _ in MODEL_CONFIGS))
#: ``(model, small)`` -> how the report names it
MODEL_NAMES = {
    ('resnet18', False): 'ResNet-18 CIFAR (paper)',
    ('resnet18', True): 'ResNet-18 CIFAR 1/4 width (demo)',
    ('mobilenet-v3-small', False): 'MobileNetV3-Small CIFAR (demo)',
    ('vit-tiny', False): 'ViT tiny, 4x4 patches (demo)',
    ('convnext-tiny', False): 'ConvNeXt tiny, 2x2 stem (demo)',
}
DATA_CONFIG = osp.join('_base_', 'datasets', 'al_cifar10.py')
IMAGE_SIZE = 32
ALL_WEIGHTS = ('Conv2d', 'Linear')
LOGIT_GAIN = 3.0  # standard deviation of the calibrated logits
CALIBRATION_IMAGES = 32

#: phases whose scores are compared, and their reference
COMPARED = (('last_closed_form', 'last_reference'),
            ('last_autograd', 'last_reference'), ('all_fast', 'all_reference'))


@dataclasses.dataclass
class ClsSpeedOptions:
    """What one benchmark run measures.

    Args:
        model (str): The classifier, one of :data:`MODELS` (see
            :data:`MODEL_CONFIGS`). Defaults to ``'resnet18'``.
        small (bool): The demo's 1/4-width ResNet-18 instead of the paper's
            CIFAR ResNet-18 (``model='resnet18'`` only; the other models
            are the demos'). Defaults to False.
        num_images (int): Images scored. Defaults to 256.
        batch_size (int): Images per batch of every batched phase.
            Defaults to 64.
        reference_images (int, optional): Images of the all-weights
            per-image reference (the first ones; its time is scaled to
            ``num_images``). Defaults to all.
        repeat (int): Runs of every timed phase; the fastest is reported.
            Defaults to 1.
        device (str): ``'cpu'`` or ``'cuda'``. Defaults to ``'cpu'``.
        amp (bool): Every phase under ``torch.autocast`` (float16, CUDA
            only). Defaults to False.
        float64 (bool): Every phase in float64 (exact agreement checks).
            Defaults to False.
        seed (int): Seed of the model, the images and the directions.
            Defaults to 0.
        threads (int, optional): ``torch.set_num_threads`` for the run
            (restored after). Defaults to torch's setting. On a shared
            machine, fewer threads than cores avoid OpenMP threads waiting
            for a busy core (timings then collapse by 10x and more).
    """
    model: str = 'resnet18'
    small: bool = False
    num_images: int = 256
    batch_size: int = 64
    reference_images: Optional[int] = None
    repeat: int = 1
    device: str = 'cpu'
    amp: bool = False
    float64: bool = False
    seed: int = 0
    threads: Optional[int] = None

    def __post_init__(self) -> None:
        if (self.model, self.small) not in MODEL_CONFIGS:
            raise ConfigError(
                f'ClsSpeedOptions: no model {self.model!r}'
                f'{" with small=True" if self.small else ""}; choose among '
                f'{list(MODELS)} (small: resnet18 only)')
        for name in ('num_images', 'batch_size', 'repeat', 'threads'):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ConfigError(f'ClsSpeedOptions.{name} must be >= 1, '
                                  f'got {getattr(self, name)}')
        if self.reference_images is not None and not \
                1 <= self.reference_images <= self.num_images:
            raise ConfigError(
                'ClsSpeedOptions.reference_images must lie in [1, '
                f'num_images={self.num_images}], got {self.reference_images}')
        if self.amp and (self.device != 'cuda' or self.float64):
            raise ConfigError('ClsSpeedOptions.amp needs device cuda and '
                              'float32 (float64=False)')


# -- set-up -------------------------------------------------------------------
def build_classifier(model: str,
                     small: bool,
                     seed: int,
                     configs_dir: str = REPO_CONFIGS) -> nn.Module:
    """The benchmark's ``ImageClassifier`` (before :func:`calibrate_head`).

    Args:
        model (str): One of :data:`MODELS`.
        small (bool): The demo ResNet-18 instead of the paper's.
        seed (int): Seed of the random weights.
        configs_dir (str): The repository's ``configs`` folder. Defaults
            to the one next to the ``mmal`` package (a source checkout).

    Returns:
        nn.Module: The model on the CPU, in eval mode.
    """
    paths = [
        osp.join(configs_dir, MODEL_CONFIGS[model, small]),
        osp.join(configs_dir, DATA_CONFIG)
    ]
    for path in paths:
        if not osp.isfile(path):
            raise MissingFileError(
                f'{path}: the benchmark\'s config does not exist (configs '
                f'folder {configs_dir!r})')
    model_cfg = Config.fromfile(paths[0]).model
    data_cfg = Config.fromfile(paths[1])
    model_cfg.head.num_classes = data_cfg.num_classes
    model_cfg.data_preprocessor = dict(
        type='ClsDataPreprocessor', **data_cfg.data_preprocessor)
    from mmpretrain.registry import \
        MODELS as REGISTRY  # only classification needs it
    torch.manual_seed(seed)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        classifier = REGISTRY.build(model_cfg)
    return classifier.eval()


def random_samples(num: int, seed: int, prefix: str = 'img') -> List[Dict]:
    """Random uint8 32x32 images as a dataset gives them (before
    collation): ``inputs`` (3, 32, 32), ``data_samples`` (a
    ``DataSample`` without label) and ``sample_id``."""
    from mmpretrain.structures import DataSample
    gen = torch.Generator().manual_seed(seed)
    return [
        dict(
            inputs=torch.randint(
                0,
                256, (3, IMAGE_SIZE, IMAGE_SIZE),
                generator=gen,
                dtype=torch.uint8),
            data_samples=DataSample(),
            sample_id=f'{prefix}{i:05d}') for i in range(num)
    ]


def random_items(num: int, seed: int, prefix: str = 'img') -> List[Batch]:
    """:func:`random_samples` collated one by one, as mmal's batch-1
    loaders give them (``pseudo_collate``)."""
    return [pseudo_collate([s]) for s in random_samples(num, seed, prefix)]


def preprocess_batch(model: nn.Module, batch: Batch) -> Dict:
    """``model.data_preprocessor`` on a collated batch (test mode), the
    images cast to the model's dtype (a no-op in float32)."""
    data = model.data_preprocessor(batch, False)
    data['inputs'] = data['inputs'].to(next(model.parameters()).dtype)
    return data


def final_linear(model: nn.Module) -> nn.Linear:
    """The head's final linear layer, as θ by rule finds it
    (``ImageClassifierAdapter.head_info``)."""
    name = ImageClassifierAdapter().head_info(model).final_linear
    if name is None:
        raise ValueError(f'{type(model.head).__name__}: the head does not '
                         'return a linear layer\'s output')
    return model.get_submodule(name)


def calibrate_head(model: nn.Module,
                   batch: Batch,
                   seed: int,
                   gain: float = LOGIT_GAIN) -> None:
    """Set the head's final linear layer so that the logits of these images
    spread.

    ``W = G / (σ √D) * gain`` and ``b = -W μ``: ``G`` (C, D) standard
    normal (seeded), ``μ`` and ``σ`` (D, ) the per-dimension mean and
    standard deviation of the layer's inputs on the images. Over images
    like these, each logit then has mean 0 and standard deviation about
    ``gain``.

    Args:
        model (nn.Module): An ``ImageClassifier`` whose head returns its
            final linear layer's output (:func:`final_linear`).
        batch (dict): Calibration images, collated.
        seed (int): Seed of ``G``.
        gain (float): The logits' standard deviation. Defaults to 3.
    """
    fc = final_linear(model)
    inputs: List[torch.Tensor] = []
    handle = fc.register_forward_hook(
        lambda _m, args, _out: inputs.append(args[0]))
    with torch.no_grad():
        data = preprocess_batch(model, copy.deepcopy(batch))
        try:
            model.head(model.extract_feat(data['inputs']))
        finally:
            handle.remove()
        f, = inputs
        mu, sigma = f.mean(0), f.std(0).clamp_min(1e-12)
        gen = torch.Generator().manual_seed(seed)
        g = torch.randn(fc.weight.shape, generator=gen).to(f)
        weight = g / (sigma * f.shape[1]**0.5) * gain
        fc.weight.copy_(weight)
        fc.bias.copy_(-weight @ mu)


def calibrate_batch_norm(model: nn.Module, batch: Batch) -> None:
    """Set every batch norm's running statistics to those of these images.

    One training-mode pass of ``extract_feat`` with each batch norm's
    statistics reset and its momentum ``None`` (a plain average): each
    layer's running mean and variance are then its inputs' on these images,
    each layer normalised as in that pass. Without it an untrained network
    in eval mode normalises nothing (mean 0, variance 1): MobileNetV3's
    features then shrink about tenfold per block, to ~1e-9 on 32x32
    images, and differ between images only by rounding. A no-op without
    batch norm (ViT, ConvNeXt); the model is left in eval mode.
    """
    norms = [
        m for m in model.modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm)
    ]
    if not norms:
        return
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    model.train()
    try:
        with torch.no_grad():
            model.extract_feat(
                preprocess_batch(model, copy.deepcopy(batch))['inputs'])
    finally:
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum
        model.eval()


def benchmark_model(model: str,
                    small: bool,
                    seed: int,
                    configs_dir: str = REPO_CONFIGS) -> nn.Module:
    """:func:`build_classifier` with its batch norms' statistics set by
    :func:`calibrate_batch_norm` and its head by :func:`calibrate_head`, on
    :data:`CALIBRATION_IMAGES` random images (seed ``seed + 1``)."""
    classifier = build_classifier(model, small, seed, configs_dir)
    calibration = pseudo_collate(
        random_samples(CALIBRATION_IMAGES, seed + 1, prefix='calib'))
    calibrate_batch_norm(classifier, calibration)
    calibrate_head(classifier, calibration, seed)
    return classifier


def random_direction(params: Sequence[torch.Tensor], seed: int) -> Blocks:
    """A standard normal tensor like each of ``params`` (seeded), drawn in
    float32 and cast to each parameter's dtype and device."""
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(p.shape, generator=gen).to(p) for p in params]


def direction_for(model: nn.Module, adapter: ImageClassifierAdapter,
                  seed: int) -> Blocks:
    """The benchmark's direction ``S`` for ``adapter``'s θ: standard
    normal, seed ``seed + 2``, like θ."""
    return random_direction([p for _, p in adapter.parameters(model)],
                            seed + 2)


# -- the measured computations ------------------------------------------------
def plain_inference(model: nn.Module,
                    batches: Sequence[Batch]) -> Dict[str, int]:
    """``model.predict`` per collated batch; returns the predicted class
    per image."""
    labels = {}
    with torch.no_grad():
        for batch in batches:
            data = preprocess_batch(model, batch)
            results = model.predict(data['inputs'], data['data_samples'])
            labels.update(
                zip(batch['sample_id'], (int(r.pred_label) for r in results)))
    return labels


def plain_features(model: nn.Module, batches: Sequence[Batch]) -> int:
    """``model.extract_feat`` per collated batch; returns the number of
    images."""
    num = 0
    with torch.no_grad():
        for batch in batches:
            data = preprocess_batch(model, batch)
            num += model.extract_feat(data['inputs'])[-1].shape[0]
    return num


def batched_scores(model: nn.Module, adapter: ImageClassifierAdapter,
                   items: Sequence[Batch], direction: Blocks,
                   batch_size: int) -> Scores:
    """The selector's fast path: :func:`same_shape_batches` (per-image
    preprocessing, concatenated) and ``adapter.directional_scores``."""
    scores = {}
    for data in same_shape_batches(lambda b: adapter.preprocess(model, b),
                                   items, batch_size, adapter.image_key):
        found = adapter.directional_scores(model, data, direction, 0.0)
        for sid, (value, _) in zip(data['sample_id'], found):
            scores[sid] = value
    return scores


def per_image_scores(model: nn.Module, adapter: ImageClassifierAdapter,
                     items: Sequence[Batch], direction: Blocks) -> Scores:
    """The reference: per image ``pseudo_loss``, ``loss_grad``,
    ``flat_dot``."""
    params = [p for _, p in adapter.parameters(model)]
    scores = {}
    for item in items:
        loss, _ = adapter.pseudo_loss(model, item, 0.0)
        scores[adapter.image_key(item)] = float(
            flat_dot(direction, loss_grad(loss, params)))
    return scores


# -- run and report -----------------------------------------------------------
@contextlib.contextmanager
def _precision(opts: ClsSpeedOptions, model: nn.Module,
               adapters: Sequence[ImageClassifierAdapter]):
    """float64 (every adapter's ``float64`` context), autocast, or
    nothing."""
    with contextlib.ExitStack() as stack:
        if opts.float64:
            for adapter in adapters:
                stack.enter_context(float64_mode(adapter, model))
        if opts.amp:
            stack.enter_context(
                torch.autocast(device_type='cuda', dtype=torch.float16))
        yield


def run(opts: ClsSpeedOptions,
        configs_dir: str = REPO_CONFIGS) -> Dict[str, Any]:
    """Every measurement (see the module docstring).

    Args:
        opts (ClsSpeedOptions): What to measure.
        configs_dir (str): The repository's ``configs`` folder. Defaults
            to the one next to the ``mmal`` package.

    Returns:
        dict: The results (see :func:`report`): per phase ``seconds`` (the
        fastest of ``repeat`` runs), ``seconds_all``, ``peak_mib`` and
        ``start_mib``; the ratios; the agreement checks; the scores of
        every scoring phase.
    """
    with torch_threads(opts.threads):
        return _run(opts, configs_dir)


def _run(opts: ClsSpeedOptions, configs_dir: str) -> Dict[str, Any]:
    """:func:`run` with the thread count set."""
    load_start = load_average()
    model = benchmark_model(opts.model, opts.small, opts.seed, configs_dir)
    model.to(opts.device)
    last = ImageClassifierAdapter()
    last_autograd = ImageClassifierAdapter(closed_form=False)
    every = ImageClassifierAdapter(param_types=ALL_WEIGHTS)
    adapters = (last, last_autograd, every)
    for adapter in adapters:
        adapter.prepare(model, seed=opts.seed)
    samples = random_samples(opts.num_images, opts.seed)
    items = [pseudo_collate([s]) for s in samples]
    batches = [
        pseudo_collate(samples[i:i + opts.batch_size])
        for i in range(0, len(samples), opts.batch_size)
    ]
    num_ref = opts.reference_images or opts.num_images
    memory = PeakMemory(opts.device)
    phases: Dict[str, Dict[str, Any]] = {}
    B = opts.batch_size
    timed_phase = functools.partial(
        timed, memory=memory, record=phases, repeat=opts.repeat)

    def fresh(some):  # copies made outside the timed region
        return lambda: (copy.deepcopy(some), )

    with _precision(opts, model, adapters):
        dtype = next(model.parameters()).dtype
        by_theta = {'last': last, 'all': every}
        directions = {
            k: direction_for(model, a, opts.seed)
            for k, a in by_theta.items()
        }
        runs: List[tuple] = [
            ('predict', functools.partial(plain_inference, model), batches),
            ('extract_feat', functools.partial(plain_features,
                                               model), batches),
        ]
        for name, adapter, key in (('last_closed_form', last, 'last'),
                                   ('last_autograd', last_autograd,
                                    'last'), ('all_fast', every, 'all')):
            runs.append((name,
                         functools.partial(
                             batched_scores,
                             model,
                             adapter,
                             direction=directions[key],
                             batch_size=B), items))
        for name, key, some in (('last_reference', 'last', items),
                                ('all_reference', 'all', items[:num_ref])):
            runs.append((name,
                         functools.partial(
                             per_image_scores,
                             model,
                             by_theta[key],
                             direction=directions[key]), some))
        # warm-up: every phase once on a few images (a batch)
        for _, fn, some in runs:
            fn(copy.deepcopy(some[:1 if some is batches else min(2, B)]))
        results = {
            name: timed_phase(name, fn, fresh(some))
            for name, fn, some in runs
        }

    t = {k: x['seconds'] for k, x in phases.items()}
    t['all_reference'] *= opts.num_images / num_ref
    phases['all_reference'].update(
        images=num_ref, seconds_scaled=t['all_reference'])
    ratios = {
        f'{k}/predict': ratio(v, t['predict'])
        for k, v in t.items() if k != 'predict'
    }
    ratios.update({
        'last_reference/last_closed_form': ratio(t['last_reference'],
                                                 t['last_closed_form']),
        'all_reference/all_fast': ratio(t['all_reference'], t['all_fast']),
    })
    agreement = {}
    for fast, ref in COMPARED:
        ours = {k: results[fast][k] for k in results[ref]}
        agreement[f'{fast}_vs_{ref}'] = compare_scores(ours, results[ref])
    predicted = results['predict']
    return dict(
        model=MODEL_NAMES[opts.model, opts.small] +
        ', random weights, calibrated head',
        num_images=opts.num_images,
        reference_images=num_ref,
        image_size=f'{IMAGE_SIZE}x{IMAGE_SIZE}',
        batch_size=B,
        batching='same_shape_batches (per-image preprocessing, then '
        'concatenated) for the scoring phases; whole batches through the '
        'data preprocessor for predict and extract_feat',
        device=opts.device,
        amp=opts.amp,
        dtype=str(dtype).replace('torch.', ''),
        threads=torch.get_num_threads(),
        cpus=os.cpu_count(),
        repeat=opts.repeat,
        torch=torch.__version__,
        python=platform.python_version(),
        theta=dict(
            {
                k: dict(blocks=len(d), entries=sum(x.numel() for x in d))
                for k, d in directions.items()
            },
            closed_form=last.uses_closed_form(model)),
        predicted_classes=len(set(predicted.values())),
        phases=phases,
        ratios=ratios,
        agreement=agreement,
        scores={
            k: results[k]
            for k in phases if k not in ('predict', 'extract_feat')
        },
        memory_kind=memory.kind,
        memory_reset_ok=memory.reset_ok,
        load_average=[load_start, load_average()],
    )


_LABELS = {
    'predict': 'plain inference (model.predict)',
    'extract_feat': 'plain features (model.extract_feat)',
    'last_closed_form': 'last layer, closed form (batched)',
    'last_autograd': 'last layer, batched autograd',
    'last_reference': 'last layer, per-image autograd',
    'all_fast': 'all weights, batched (OutputProbe)',
    'all_reference': 'all weights, per-image autograd',
}


def report(res: Dict[str, Any]) -> str:
    """The human-readable table of :func:`run`'s results."""
    phases, r = res['phases'], res['ratios']
    th = res['theta']
    lines = [
        f'model: {res["model"]}, {res["num_images"]} images '
        f'{res["image_size"]}, batch {res["batch_size"]}, {res["device"]} '
        f'({res["threads"]} threads, {res["cpus"]} cores), {res["dtype"]}'
        f'{" + autocast fp16" if res["amp"] else ""}, repeat '
        f'{res["repeat"]}; load average (1 min) at start '
        f'{res["load_average"][0]:.2f}, at end {res["load_average"][1]:.2f}',
        f'θ: last layer {th["last"]["entries"]} weights (closed form: '
        f'{th["closed_form"]}); all weights {th["all"]["blocks"]} '
        f'conv/linear blocks, {th["all"]["entries"]} weights; '
        f'{res["predicted_classes"]} distinct predicted classes',
        f'{"phase":<38} {"seconds":>9} {"x predict":>10} {"peak MiB":>9} '
        f'{"(start)":>8}',
    ]
    for key, label in _LABELS.items():
        m = phases[key]
        secs = m.get('seconds_scaled', m['seconds'])
        x = 1.0 if key == 'predict' else r[f'{key}/predict']
        lines.append(f'{label:<38} {secs:>9.3f} {x:>10.2f} '
                     f'{m["peak_mib"]:>9.0f} {m["start_mib"]:>8.0f}')
    ref = phases['all_reference']
    if ref['images'] != res['num_images']:
        lines.append(
            f'  (all weights, per-image: timed on the first {ref["images"]} '
            f'of {res["num_images"]} images, {ref["seconds"]:.3f}s, scaled '
            f'x{res["num_images"] / ref["images"]:.2f})')
    lines.append(f'per-image / batched: last layer '
                 f'{r["last_reference/last_closed_form"]:.1f}x, all weights '
                 f'{r["all_reference/all_fast"]:.1f}x')
    for key, c in res['agreement'].items():
        lines.append(
            f'  {key}: max rel diff {c["max_rel_diff"]:.1e} (max abs diff / '
            f'max |score| {c["max_abs_diff_over_max_abs"]:.1e}), same '
            f'ranking of all {c["num_compared"]} compared: '
            f'{c["same_ranking"]}')
    lines.append(f'peak memory: {res["memory_kind"]}')
    if not res['memory_reset_ok']:
        lines.append('  (could not reset the peak RSS: values are the peak '
                     'since the process started)')
    return '\n'.join(lines)
