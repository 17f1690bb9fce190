"""Speed (and agreement) of mmal's influence computations on one detector.

The benchmark behind ``tools/benchmarks/influence_speed.py``. One run
(:func:`run`) builds one detector (the demo's FCOS, or the model of any
detection ISAL config: single-stage or two-stage) and one set of images,
then measures, on the same model and the same images:

1. **plain inference** (``predict``): mmdet's batched ``model.predict``
   over the unlabeled pool, ``batch_size`` images per batch (the batch-1
   items merged as mmdet's ``pseudo_collate`` would collate them, then
   ``model.data_preprocessor(batch, False)`` and
   ``model.predict(..., rescale=False)`` under ``torch.no_grad()``). The
   yardstick: selection cannot be cheaper than looking at every image once.
2. **fast scoring** (``fast``): ``InfluenceSelector``'s batched path.
   Images are grouped by :func:`mmal.datasets.shape_batches.same_shape_batches`
   and each batch goes through ``adapter.directional_scores``: one pass
   gives the predictions (pseudo labels) and, from one backward to the θ
   layers' outputs only, ``∇θ l(z', pseudo labels) · s_test`` per image.
3. **per-image reference scoring** (``reference``): mmal's slow path,
   per image ``adapter.pseudo_loss`` (trunk without autograd, head with it)
   then ``loss_grad`` and ``flat_dot`` with ``s_test``.
4. **official-style scoring** (``official``): what the official ISAL code
   does (:func:`mmal.testing.official_isal.official_scores`, also the
   tests' reference), per image: a batch-1 ``model.predict`` for the
   pseudo labels (score >= ``score_thr``), then a second full forward
   ``model.loss`` with autograd through the whole network,
   ``torch.autograd.grad`` to θ and the dot product with ``s_test``.

   For 2-4 the report gives the times, the ratios to plain inference, and
   how far the fast (and official-style) scores are from the per-image
   reference: the largest per-image relative difference and whether the
   ranking of all scored images is the same.
5. **s_test** by LiSSA (``damp=0.01``, ``depth`` = number of labeled
   images, ``chains`` chains from ``LiSSA.sample_chains(ids, seed=0)``),
   the same chains on two paths:

   a. ``s_test_fast``: mmal's path, ``LabeledHessian(fast=True)``: the
      θ-free part of the network runs once per image (batched) and its
      output is cached; each LiSSA step runs only the head's last layers
      and the loss. The chains consume one iterator over all chains'
      images, chain by chain, as ``LiSSA.estimate`` does.
   b. ``s_test_official``: the official recursion
      (:func:`mmal.testing.official_isal.official_lissa`): per step a full
      ``model.loss`` with autograd through the whole network,
      ``grads = autograd.grad(loss, θ, create_graph=True)``,
      ``hv = autograd.grad(sum(grads * h), θ)``,
      ``h = v + (1 - damp) h - hv / scale`` per block; chains averaged.

   The scales are the selector's (the config's ``solver.scale``, else
   the adapter's; ``scale`` overrides). An adapter without scales of its
   own (θ by rule: every family but FCOS and Faster R-CNN) gets them as
   the selector does, from its scale check
   (:class:`~mmal.influence.ScaleCheck`, default settings: 4 labeled
   images, 20 power iterations each, ``max(25, 1.5 |λ|)`` per block; timed
   as ``scale_check``, apart from s_test). When the fast chain diverges
   with the scales (``DivergenceError``; an untrained model's Hessian is
   far from a trained one's), they are raised per block from mmal's scale
   check on every labeled image (power iteration, see
   :func:`checked_scales`) and both paths run with the raised scales
   (``no_scale_check``: report and skip).

   ``v`` (the right-hand side) is the sum of the labeled images'
   ground-truth loss gradients (``adapter.gt_loss`` + ``loss_grad``); its
   time is reported as ``v``. The report gives the total times, the time
   per LiSSA step next to one batch-1 ``model.predict`` (``one_forward``),
   and the relative difference of the two estimates per block
   (``|a - b| / |b|``).
6. **peak memory** of every phase
   (:class:`~mmal.testing.benchmark.PeakMemory`): on CUDA
   ``max_memory_allocated`` after ``reset_peak_memory_stats``; on CPU the
   process's peak resident set (``VmHWM``), i.e. the whole process (Python,
   torch, the model, the loaded images) and not the phase alone; the
   resident set at the start of the phase is reported next to it.

All images are loaded once (mmal's batch-1 loader, the config's test
pipeline) before any timing, so the scoring times are compute only. The
fast s_test path is the exception: ``LabeledHessian`` runs its own loader
over the chains' sequence of images, which is part of mmal's path and of
its time (its loading time alone is measured separately as
``s_test_fast_loading``).

Models (random weights unless ``checkpoint``; the biases of the
classification and objectness output layers are zeroed, see
:func:`confident`, so that untrained predictions reach the score
threshold):

* default: the demo's small FCOS (ResNet-18 at 1/4 width,
  ``configs/isal_fcos_shapes.py``) on generated 128x128 shapes;
* ``config``: the model of a detection ISAL config (e.g.
  ``configs/isal_retinanet_shapes.py``,
  ``configs/isal_cascade-rcnn_shapes.py``) on its generated shapes; the
  adapter is the config's ``al_cfg.adapter``, else the one of the model's
  family (as the driver chooses it), with θ by rule where the adapter has
  no paper setting;
* ``r50``: the paper's FCOS R-50 caffe FPN GN-head
  (``configs/_base_/models/fcos_r50-caffe_fpn_gn-head.py``, 3 classes, no
  pretrained weights) on generated 320x320 shapes;
* ``standard``: the standard-size model of the config's family
  (:data:`STANDARD_MODELS`, by the model type: FCOS R-50 as ``r50``, else
  the model of mmdet's own R-50 FPN, RTMDet-tiny or YOLOX-tiny config),
  the demo's classes, the backbone's ``init_cfg`` removed (random init, no
  download), on generated 320x320 shapes; adapter, θ and the scale check
  as for ``config``, the LiSSA scales never the config's (they are for its
  demo model).

The pool is ``2 * num_images`` generated images: ``num_images`` labeled
(s_test) and ``num_images`` unlabeled (scoring).

:func:`run` returns every number: per phase ``seconds`` (the fastest of
``repeat`` runs), ``seconds_all``, ``peak_mib`` and ``start_mib``; the
ratios; the agreement checks; the s_test details; and the per-image values
``∇θ l · s_test`` of the three scoring paths (the selector's influence is
their negative). The 1-minute load average at the start and the end is
recorded too: other processes on the machine distort timings.
:func:`report` turns them into a table.
"""
import copy
import dataclasses
import functools
import itertools
import math
import os.path as osp
import platform
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
from mmengine.config import Config

from mmal.datasets.shape_batches import same_shape_batches
from mmal.influence import (DivergenceError, LiSSA, ScaleCheck, auto_scales,
                            block_top_eigenvalues, flat_dot, loss_grad,
                            scale_report)
from mmal.influence.spectrum import block_radius
from mmal.models import BaseModelAdapter
from mmal.selectors import SelectionContext
from mmal.selectors.labeled_hessian import LabeledHessian
from mmal.testing.benchmark import (Blocks, PeakMemory, Scores, block_rel_diff,
                                    compare_scores, fmt_list, load_average,
                                    ratio, round_up, sync, timed)
from mmal.testing.official_isal import (Batch, full_loss, official_lissa,
                                        official_scores)
from mmal.testing.scenario import confident, selection_scenario
from mmal.utils import MissingFileError

SMALL_CONFIG = 'isal_fcos_shapes.py'  # relative to the configs folder
SMALL_MODEL = 'FCOS R-18/4 (small)'  # the default model's name in the report
R50_MODEL = osp.join('_base_', 'models', 'fcos_r50-caffe_fpn_gn-head.py')
#: ``standard``: per model type of a ``config``, the config whose model is
#: the family's standard-size model (``mmdet::`` names mmdet's installed
#: configs, others are relative to the configs folder)
STANDARD_MODELS = {
    'FCOS': R50_MODEL,
    'RetinaNet': 'mmdet::retinanet/retinanet_r50_fpn_1x_coco.py',
    'ATSS': 'mmdet::atss/atss_r50_fpn_1x_coco.py',
    'GFL': 'mmdet::gfl/gfl_r50_fpn_1x_coco.py',
    'RTMDet': 'mmdet::rtmdet/rtmdet_tiny_8xb32-300e_coco.py',
    'YOLOX': 'mmdet::yolox/yolox_tiny_8xb8-300e_coco.py',
    'FasterRCNN': 'mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py',
    'CascadeRCNN': 'mmdet::cascade_rcnn/cascade-rcnn_r50_fpn_1x_coco.py',
}
#: the image size of ``r50`` and ``standard``
STANDARD_SIZE = 320


@dataclasses.dataclass
class SpeedOptions:
    """What one benchmark run measures.

    Args:
        r50 (bool): The paper's FCOS R-50 at 320x320 instead of the small
            demo FCOS at 128x128. Defaults to False.
        standard (bool): The family's standard-size model
            (:data:`STANDARD_MODELS`, by the model type of ``config``, the
            FCOS demo when None) at 320x320 instead of the config's demo
            model at 128x128; for the FCOS demo the same as ``r50``.
            Defaults to False.
        num_images (int): Unlabeled images scored, and labeled images for
            s_test. Defaults to 32.
        batch_size (int): Images per batch of plain inference and of the
            fast paths. Defaults to 8.
        chains (int): LiSSA chains. Defaults to 4.
        repeat (int): Runs of every timed phase; the fastest is reported.
            Defaults to 1.
        device (str): ``'cpu'`` or ``'cuda'``. Defaults to ``'cpu'``.
        score_thr (float): Pseudo-label score threshold. Defaults to 0.1.
        scale (list[float], optional): LiSSA scale per block. Defaults to
            the config's selector scale (small model) or the adapter's.
        no_scale_check (bool): When the fast chain diverges with the
            configured scales, report it and stop there instead of raising
            them by mmal's scale check. Defaults to False.
        checkpoint (str, optional): Trained weights instead of random ones
            with zero classification / objectness biases.
        config (str, optional): A detection ISAL config whose model is
            measured (a path, or a name in the configs folder). Defaults to
            the FCOS demo (``configs/isal_fcos_shapes.py``).
    """
    r50: bool = False
    standard: bool = False
    num_images: int = 32
    batch_size: int = 8
    chains: int = 4
    repeat: int = 1
    device: str = 'cpu'
    score_thr: float = 0.1
    scale: Optional[List[float]] = None
    no_scale_check: bool = False
    checkpoint: Optional[str] = None
    config: Optional[str] = None

    @classmethod
    def from_args(cls, args: Any) -> 'SpeedOptions':
        """The options from any object with these attributes (e.g. an
        ``argparse.Namespace``); other attributes are ignored."""
        return cls(
            **{
                f.name: getattr(args, f.name, f.default)
                for f in dataclasses.fields(cls)
            })


# -- set-up -------------------------------------------------------------------
def config_path(configs_dir: str, config: Optional[str]) -> str:
    """The config file: ``config`` as given, else in the configs folder;
    the FCOS demo when None."""
    if config is None:
        return osp.join(configs_dir, SMALL_CONFIG)
    if osp.isfile(config) or osp.isabs(config):
        return config
    inside = osp.join(configs_dir, osp.basename(config))
    return inside if osp.isfile(inside) else config


def standard_model_path(configs_dir: str, name: str) -> str:
    """The file of a :data:`STANDARD_MODELS` entry: ``mmdet::<path>`` in
    mmdet's installed configs (``.mim/configs``), else in the configs
    folder."""
    if name.startswith('mmdet::'):
        from mmengine.utils import get_installed_path
        return osp.join(
            get_installed_path('mmdet'), '.mim', 'configs',
            name[len('mmdet::'):])
    return osp.join(configs_dir, name)


def standard_model(configs_dir: str, model_type: str,
                   source: str) -> Tuple[Config, str]:
    """The standard-size model config of a model type
    (:data:`STANDARD_MODELS`) and its name there.

    Raises:
        ValueError: The type has no standard model.
    """
    name = STANDARD_MODELS.get(model_type)
    if name is None:
        raise ValueError(
            f'{source}: model type {model_type!r} has no standard-size model '
            f'for the benchmark (known: {", ".join(STANDARD_MODELS)}); '
            'measure its demo model without --standard')
    path = standard_model_path(configs_dir, name)
    if not osp.isfile(path):
        raise MissingFileError(
            f'{path}: the standard-size model of {model_type} ({name}) does '
            'not exist (is mmdet installed with its configs?)')
    return Config.fromfile(path).model, name


def set_num_classes(model: Config, num_classes: int) -> None:
    """``num_classes`` of every head of a detector config that has one:
    ``bbox_head``, the RoI head's ``bbox_head`` (a list for Cascade
    R-CNN)."""
    if model.get('bbox_head') is not None:
        model.bbox_head.num_classes = num_classes
    roi_head = model.get('roi_head')
    if roi_head is not None:
        heads = roi_head.bbox_head
        for head in heads if isinstance(heads, (list, tuple)) else [heads]:
            head.num_classes = num_classes


def build_config(configs_dir: str,
                 r50: bool,
                 num_images: int,
                 config: Optional[str] = None,
                 standard: bool = False) -> Config:
    """A shapes demo config, sized for the benchmark.

    Args:
        configs_dir (str): The repository's ``configs`` folder.
        r50 (bool): Replace the model by the paper's FCOS R-50 (3 classes,
            no pretrained download) and generate 320x320 images (with the
            FCOS demo config only).
        num_images (int): Labeled and unlabeled images each.
        config (str, optional): A detection ISAL config with demo data
            (see :func:`config_path`). Defaults to the FCOS demo.
        standard (bool): Replace the config's model by its family's
            standard-size model (:data:`STANDARD_MODELS`, chosen by the
            config's model type; the demo's classes, the backbone without
            pretrained download) and generate 320x320 images. Defaults to
            False.

    Returns:
        Config: The config for :class:`ActiveLearningRunner`.
    """
    if r50 and config is not None and \
            osp.basename(config) != SMALL_CONFIG:
        raise ValueError('r50 replaces the FCOS demo\'s model: it does not '
                         f'combine with config {config!r}')
    path = config_path(configs_dir, config)
    paths = [path] + ([osp.join(configs_dir, R50_MODEL)] if r50 else [])
    for p in paths:
        if not osp.isfile(p):
            raise MissingFileError(
                f'{p}: the benchmark\'s config does not exist (configs '
                f'folder {configs_dir!r})')
    cfg = Config.fromfile(path)
    if cfg.get('demo_data') is None or cfg.get('al_cfg') is None:
        raise ValueError(f'{path}: the benchmark needs an active-learning '
                         'config with generated demo data (demo_data), e.g. '
                         'configs/isal_<model>_shapes.py')
    cfg.merge_from_dict({
        'demo_data.num_train': 2 * num_images,
        'demo_data.num_val': 2,
        'al_cfg.initial_size': num_images,
        'al_cfg.num_workers': 0,
    })
    model = None
    if r50:
        model = Config.fromfile(paths[1]).model
    elif standard:
        model, _ = standard_model(configs_dir, cfg.model.type, path)
    if model is not None:
        set_num_classes(model, len(cfg.classes))
        model.backbone.init_cfg = None  # random init, no download
        cfg.model = model
        # the test pipeline keeps generated images at their size
        # (Resize scale_factor=1.0), so generate them at 320x320
        cfg.merge_from_dict({'demo_data.img_size': STANDARD_SIZE})
    return cfg


def build_setup(
    opts: SpeedOptions, work_dir: str, configs_dir: str
) -> Tuple[torch.nn.Module, BaseModelAdapter, SelectionContext, Config, Dict[
        str, Any]]:
    """Model, adapter and selection context, as the repo's tests build them.

    The adapter is the config's ``al_cfg.adapter``, else the one of the
    model's family (the driver's choice, :func:`adapter_for`).

    Args:
        opts (SpeedOptions): The model, sizes, device and weights.
        work_dir (str): Where the generated images are written.
        configs_dir (str): The repository's ``configs`` folder.

    Returns:
        tuple: ``(model, adapter, context, cfg, info)``; the model is in
        eval mode on ``opts.device`` and prepared by the adapter (θ
        resolved); ``info``: the zeroed biases and where the adapter and θ
        came from.
    """
    zeroed: List[str] = []

    def zero_cls_bias(model: torch.nn.Module) -> None:
        if not opts.checkpoint:  # untrained: predictions above the threshold
            zeroed.extend(confident(model))

    cfg = build_config(configs_dir, opts.r50, opts.num_images, opts.config,
                       opts.standard)
    adapter_cfg = cfg.al_cfg.get('adapter')
    model, adapter, context = scene = selection_scenario(
        cfg,
        work_dir,
        opts.num_images,
        checkpoint=opts.checkpoint,
        tweak=zero_cls_bias,
        device=opts.device)
    if adapter_cfg is not None and adapter_cfg.get('param_names'):
        theta_from = 'al_cfg.adapter.param_names'
    elif type(adapter).default_param_names:
        theta_from = 'paper'
    else:
        theta_from = 'by rule'
    info = dict(
        adapter=type(adapter).__name__,
        adapter_from='model type' if adapter_cfg is None else 'al_cfg.adapter',
        theta_from=theta_from,
        zeroed_biases=zeroed)
    return model, adapter, context, scene.runner.cfg, info


def load_items(context: SelectionContext, view,
               ids: Sequence[str]) -> List[Batch]:
    """Batch-1 items of ``ids`` from mmal's loader (test pipeline)."""
    return list(context.loader(view, list(ids)))


def merge(items: Sequence[Batch]) -> Batch:
    """Batch-1 items as one batch: what ``pseudo_collate`` gives for them."""
    return {
        key: [x for item in items for x in item[key]]
        for key in ('inputs', 'data_samples', 'sample_id')
    }


def lissa_scales(opts: SpeedOptions, cfg: Config, adapter: BaseModelAdapter,
                 num_blocks: int) -> Tuple[List[float], str]:
    """LiSSA scales as the selector would configure them, or
    ``opts.scale``: the config's ``solver.scale``, else the adapter's,
    else LiSSA's default (one value for every block).

    Returns:
        tuple: The scale of each block and where it came from
        (``'option'``, ``'config'``, ``'adapter'``, ``'LiSSA default'``).
    """
    if opts.scale:
        scales, source = list(opts.scale), 'option'
    else:
        solver = cfg.al_cfg.selector.get('solver') or {}
        # the config's scales are for its demo model, not a replaced one
        if not (opts.r50 or opts.standard) and solver.get('scale'):
            scales, source = solver['scale'], 'config'
        elif adapter.lissa_scale:
            scales, source = adapter.lissa_scale, 'adapter'
        else:
            scales, source = LiSSA().scale, 'LiSSA default'
    scales = [float(s) for s in scales]
    if len(scales) == 1:
        scales = scales * num_blocks
    if len(scales) != num_blocks:
        raise ValueError(f'{len(scales)} LiSSA scales {scales} ({source}) for '
                         f'{num_blocks} blocks of θ')
    return scales, source


def selector_scales(context: SelectionContext, params: Blocks,
                    scales: Sequence[float],
                    batch_size: int) -> Tuple[List[float], Dict[str, Any]]:
    """The selector's scale check (``ScaleCheck()``, mode ``'auto'``) on
    ``scales``: ``max(configured, margin * |λ|)`` per block, ``|λ|`` the
    largest dominant eigenvalue on 4 labeled images (seeded pick).

    Returns:
        tuple: The scales and the record (``configured``, ``measured``).
    """
    check = ScaleCheck()
    problem = LabeledHessian(context, params, fast=True, batch_size=batch_size)
    eig = check.measure(problem, params)
    if not eig:
        return list(scales), dict(configured=list(scales), measured=None)
    chosen = auto_scales(scales, eig, check.margin)
    return chosen, dict(
        configured=list(scales),
        scales=list(chosen),
        measured=block_radius(eig),
        images=len(eig),
        iters=check.iters,
        margin=check.margin)


def checked_scales(context: SelectionContext, params: Blocks,
                   ids: Sequence[str], scales: Sequence[float], damp: float,
                   batch_size: int) -> Tuple[List[float], Dict[str, Any]]:
    """Raise the scales that mmal's scale check finds unsafe.

    The dominant eigenvalue of every block of every image's Hessian is
    measured by power iteration (``block_top_eigenvalues``, 20 HVPs per
    image, the fast path's HVPs). The update
    ``h <- v + (1 - damp) h - H h / scale`` grows along an eigenvalue
    ``λ`` unless ``-damp < λ / scale < 2 - damp``: a block whose scale is
    below its largest positive eigenvalue gets ``scale_report``'s safe
    scale, and one with a negative eigenvalue ``λ < -damp * scale`` gets
    ``|λ| / damp`` (rounded up) (otherwise ``LiSSA.run_chain`` stops the
    diverging chain).

    Returns:
        tuple: The scales to use and the report.
    """
    problem = LabeledHessian(context, params, fast=True, batch_size=batch_size)
    eig = block_top_eigenvalues(
        lambda hess, h: hess(h),
        problem.image_hvps(list(ids)),
        params,
        iters=20,
        seed=0)
    rep = scale_report(eig, scales, damp, problem.block_names)
    new = []
    for s, safe, top, low in zip(scales, rep['safe_scale'],
                                 rep['max_eigenvalue'], rep['min_eigenvalue']):
        s = float(s)
        if top > s:
            s = max(s, safe)
        if -low > damp * s:
            s = round_up(-low / damp)
        new.append(s)
    return new, dict(configured=list(scales), **rep)


# -- the measured computations ------------------------------------------------
def plain_inference(model: torch.nn.Module, items: Sequence[Batch],
                    batch_size: int) -> int:
    """Batched ``model.predict`` over ``items``; returns #predicted boxes."""
    boxes = 0
    with torch.no_grad():
        for start in range(0, len(items), batch_size):
            data = model.data_preprocessor(
                merge(items[start:start + batch_size]), False)
            results = model.predict(
                data['inputs'], data['data_samples'], rescale=False)
            boxes += sum(len(r.pred_instances) for r in results)
    return boxes


def one_forward(model: torch.nn.Module, items: Sequence[Batch]) -> float:
    """Mean seconds of a batch-1 ``model.predict`` over ``items``."""
    total = 0.0
    with torch.no_grad():
        for item in items:
            sync(next(model.parameters()).device.type)
            start = time.perf_counter()
            data = model.data_preprocessor(item, False)
            model.predict(data['inputs'], data['data_samples'], rescale=False)
            sync(next(model.parameters()).device.type)
            total += time.perf_counter() - start
    return total / len(items)


def fast_scores(model: torch.nn.Module, adapter: BaseModelAdapter,
                items: Sequence[Batch], s_test: Blocks, score_thr: float,
                batch_size: int) -> Tuple[Scores, Dict[str, int]]:
    """mmal's fast path: same-shape batches and ``directional_scores``.

    Returns:
        tuple: ``∇θ l · s_test`` per image (None: no pseudo box) and the
        number of pseudo boxes per image.
    """
    scores, boxes = {}, {}
    for data in same_shape_batches(lambda b: adapter.preprocess(model, b),
                                   items, batch_size, adapter.image_key):
        found = adapter.directional_scores(model, data, s_test, score_thr)
        for sid, (value, num) in zip(data['sample_id'], found):
            scores[sid], boxes[sid] = value, num
    return scores, boxes


def per_image_scores(model: torch.nn.Module, adapter: BaseModelAdapter,
                     items: Sequence[Batch], params: Blocks, s_test: Blocks,
                     score_thr: float) -> Tuple[Scores, Dict[str, int]]:
    """mmal's per-image path: ``pseudo_loss``, ``loss_grad``, ``flat_dot``."""
    scores, boxes = {}, {}
    for item in items:
        sid = adapter.image_key(item)
        loss, num = adapter.pseudo_loss(model, item, score_thr)
        boxes[sid] = num
        scores[sid] = None if loss is None else float(
            flat_dot(s_test, loss_grad(loss, params)))
    return scores, boxes


def reference_gradient(model: torch.nn.Module, adapter: BaseModelAdapter,
                       items: Sequence[Batch], params: Blocks) -> Blocks:
    """``v``: sum of the images' ground-truth loss gradients (float64 sum)."""
    acc = [torch.zeros_like(p, dtype=torch.float64) for p in params]
    for item in items:
        grads = loss_grad(adapter.gt_loss(model, item), params)
        acc = [a + g.detach().double() for a, g in zip(acc, grads)]
    return [a.to(p.dtype) for a, p in zip(acc, params)]


def fast_s_test(context: SelectionContext, params: Blocks, v: Blocks,
                solver: LiSSA, chains: Sequence[Sequence[str]],
                batch_size: int) -> Tuple[Blocks, List[dict]]:
    """mmal's fast s_test: ``LabeledHessian(fast=True)`` and ``run_chain``.

    One iterator of per-image Hessians over all chains' images, consumed
    chain by chain (as ``LiSSA.estimate`` does), then the chains' mean.

    Returns:
        tuple: ``s_test`` and the planned cache's statistics.
    """
    problem = LabeledHessian(context, params, fast=True, batch_size=batch_size)
    hvps = iter(problem.image_hvps([sid for c in chains for sid in c]))
    results = [
        solver.run_chain(
            v,
            lambda hess, h: hess(h),
            itertools.islice(hvps, len(chain)),
            r,
            len(chains),
            problem.block_names,
            logger='silent') for r, chain in enumerate(chains)
    ]
    for _ in hvps:  # let the generator finish (no image is left)
        pass
    return solver.average(results), problem.cache_stats


def official_step_loss(model: torch.nn.Module, adapter: BaseModelAdapter,
                       item: Batch, sid: str) -> torch.Tensor:
    """One step's loss of the official recursion: ``model.loss`` on the
    image's ground truth, random draws seeded by the adapter."""
    data = model.data_preprocessor(item, False)
    with adapter.image_rng(dict(sample_id=[sid])):
        return full_loss(model, data)


def flat_blocks(model: torch.nn.Module, adapter: BaseModelAdapter,
                items: Dict[str, Batch], params: Blocks) -> List[str]:
    """The θ blocks in which some labeled image's loss has no second
    derivative (its gradient does not depend on θ, e.g. a level without
    positive samples whose output enters the loss as ``0 * x.sum()``).

    The official recursion's second ``torch.autograd.grad`` (no
    ``allow_unused``) fails on such a block; mmal's path takes its
    Hessian-vector product as zero. Found once, untimed, with one
    double backward per image.
    """
    names = [n for n, _ in adapter.parameters(model)]
    flat = set()
    for sid, item in items.items():
        loss = official_step_loss(model, adapter, copy.deepcopy(item), sid)
        grads = torch.autograd.grad(
            loss, params, create_graph=True, allow_unused=True)
        dot = sum(g.sum() for g in grads if g is not None and g.requires_grad)
        hv = [None] * len(params) if not torch.is_tensor(dot) else \
            torch.autograd.grad(dot, params, allow_unused=True)
        flat.update(n for n, h in zip(names, hv) if h is None)
    return [n for n in names if n in flat]


def official_s_test(model: torch.nn.Module,
                    adapter: BaseModelAdapter,
                    items: Dict[str, Batch],
                    params: Blocks,
                    v: Blocks,
                    chains: Sequence[Sequence[str]],
                    damp: float,
                    scales: Sequence[float],
                    keep_in_graph: bool = False) -> Blocks:
    """The official LiSSA recursion with full-network autograd per step.

    :func:`~mmal.testing.official_isal.official_lissa` on ``chains``: each
    step is ``model.loss`` on the image's ground truth with autograd
    through the whole network (random draws seeded by the adapter).

    Args:
        items (dict): Sample id -> its batch-1 item.
        keep_in_graph (bool): Add ``0 * sum_b |θ_b|^2`` to every step's
            loss: exact zeros in the loss, its gradient and its Hessian,
            but every block stays in the double backward's graph (see
            :func:`flat_blocks`). Defaults to False.
    """

    def step_loss(sid: str) -> torch.Tensor:
        loss = official_step_loss(model, adapter, items[sid], sid)
        if keep_in_graph:
            loss = loss + 0 * sum(p.square().sum() for p in params)
        return loss

    step_losses = [[functools.partial(step_loss, sid) for sid in chain]
                   for chain in chains]
    return official_lissa(v, params, step_losses, damp, scales)


def hvp_cache(model: torch.nn.Module, adapter: BaseModelAdapter) -> str:
    """What the fast s_test path caches per labeled image: the head's
    tower outputs (single-stage heads whose towers replay the head), else
    the trunk features (the whole head runs per LiSSA step)."""
    replay_ok = getattr(adapter, '_replay_ok', None)
    has_towers = getattr(adapter, '_has_towers', None)
    head = getattr(adapter.unwrap(model), 'bbox_head', None)
    if has_towers is None or head is None:
        return 'trunk features'
    if not has_towers(head):
        return 'trunk features (per-level towers, not replayed)'
    if replay_ok is False:
        return 'trunk features (the towers\' replay differs)'
    return 'tower outputs'


def load_sequence(context: SelectionContext, sequence: Sequence[str]) -> int:
    """Only the data loading of the fast s_test (its loader over the
    chains' sequence); returns the number of items."""
    return sum(1
               for _ in context.loader(context.labeled_view(), list(sequence)))


# -- run and report -----------------------------------------------------------
def run(opts: SpeedOptions, work_dir: str, configs_dir: str) -> Dict[str, Any]:
    """Every measurement (see the module docstring).

    Args:
        opts (SpeedOptions): What to measure.
        work_dir (str): Where the generated images are written.
        configs_dir (str): The repository's ``configs`` folder.

    Returns:
        dict: The results (see :func:`report`).
    """
    load_start = load_average()
    model, adapter, context, cfg, setup = build_setup(opts, work_dir,
                                                      configs_dir)
    params = [p for _, p in adapter.parameters(model)]
    unl_ids = list(context.state.unlabeled_ids)
    lab_ids = sorted(context.state.labeled_ids)
    unl_items = load_items(context, context.unlabeled_view(), unl_ids)
    lab_items = load_items(context, context.labeled_view(), lab_ids)
    lab_by_id = {adapter.image_key(it): it for it in lab_items}
    memory = PeakMemory(opts.device)
    phases: Dict[str, Dict[str, float]] = {}
    B, thr = opts.batch_size, opts.score_thr
    timed_phase = functools.partial(
        timed, memory=memory, record=phases, repeat=opts.repeat)

    def fresh(items):  # copies made outside the timed region
        return lambda: (copy.deepcopy(items), )

    # warm-up: one predict batch
    plain_inference(model, copy.deepcopy(unl_items[:B]), B)

    predicted = timed_phase('predict',
                            lambda it: plain_inference(model, it, B),
                            fresh(unl_items))
    fwd_items = unl_items[:min(8, len(unl_items))]
    mean = timed_phase('one_forward', lambda it: one_forward(model, it),
                       fresh(fwd_items))
    # this phase's time is the mean batch-1 predict, not the phase's total
    phases['one_forward'].update(seconds=mean, images=len(fwd_items))

    # s_test
    v = timed_phase('v',
                    lambda it: reference_gradient(model, adapter, it, params),
                    fresh(lab_items))
    scales, scale_source = lissa_scales(opts, cfg, adapter, len(params))
    selector_check = None
    if scale_source == 'LiSSA default':
        # no scales of the model's own (θ by rule): the selector's scale
        # check chooses them before the chains, as in a selection
        scales, selector_check = timed_phase(
            'scale_check', lambda: selector_scales(context, params, scales, B),
            lambda: ())
        scale_source = 'scale check'
    damp = 0.01

    def solver_for(block_scales):
        return LiSSA(
            damp=damp,
            scale=block_scales,
            depth=len(lab_ids),
            repeats=opts.chains,
            log_interval=0)

    solver = solver_for(scales)
    chains = solver.sample_chains(lab_ids, seed=0)
    sequence = [sid for c in chains for sid in c]
    s_info: Dict[str, Any] = dict(
        chains=len(chains),
        depth=len(chains[0]),
        steps=len(sequence),
        scale=scales,
        scale_source=scale_source,
        selector_scale_check=selector_check,
        damp=damp,
        scale_check=None,
        diverged=None)

    def run_fast():
        return timed_phase(
            's_test_fast',
            lambda: fast_s_test(context, params, v, solver, chains, B), lambda:
            ())

    try:
        s_fast, cache_stats = run_fast()
    except DivergenceError as e:
        s_fast, cache_stats = None, []
        s_info['diverged'] = str(e)
    if s_fast is None and not opts.no_scale_check:
        # the configured scales do not fit this model's Hessian: take safe
        # ones from mmal's scale check and run again (same chains)
        scales, s_info['scale_check'] = checked_scales(context, params,
                                                       lab_ids, scales, damp,
                                                       B)
        s_info['scale'] = scales
        solver = solver_for(scales)
        try:
            s_fast, cache_stats = run_fast()
        except DivergenceError as e:
            s_info['diverged'] += f' | after the scale check: {e}'
    if s_fast is None:
        s_info['error'] = f'fast LiSSA diverged: {s_info["diverged"]}'
    flat = flat_blocks(model, adapter, lab_by_id, params)
    s_info['flat_blocks'] = flat
    s_official = timed_phase(
        's_test_official', lambda it: official_s_test(
            model, adapter, it, params, v, chains, damp, scales, bool(flat)),
        fresh(lab_by_id))
    timed_phase('s_test_fast_loading',
                lambda: load_sequence(context, sequence), lambda: ())
    s_info.update(
        cache_stats=cache_stats,
        step_official_s=phases['s_test_official']['seconds'] / len(sequence),
        norm_per_block=[float(x.norm()) for x in s_official])
    if s_fast is not None:
        s_info.update(
            step_fast_s=phases['s_test_fast']['seconds'] / len(sequence),
            rel_diff_per_block=block_rel_diff(s_fast, s_official),
            norm_per_block=[float(x.norm()) for x in s_fast])
    s_test = s_fast if s_fast is not None else s_official

    # scoring with that s_test
    fast, boxes = timed_phase(
        'fast', lambda it: fast_scores(model, adapter, it, s_test, thr, B),
        fresh(unl_items))
    ref, ref_boxes = timed_phase(
        'reference',
        lambda it: per_image_scores(model, adapter, it, params, s_test, thr),
        fresh(unl_items))
    official, off_boxes = timed_phase(
        'official', lambda it: official_scores(
            model,
            adapter,
            it,
            params,
            s_test,
            thr,
            max_boxes=getattr(adapter, 'max_pseudo_boxes', None)),
        fresh(unl_items))

    t = {k: x['seconds'] for k, x in phases.items()}
    ratios = {
        'fast/predict': ratio(t['fast'], t['predict']),
        'reference/predict': ratio(t['reference'], t['predict']),
        'official/predict': ratio(t['official'], t['predict']),
        'official/fast': ratio(t['official'], t['fast']),
        'reference/fast': ratio(t['reference'], t['fast']),
        's_test_official/fast': ratio(t['s_test_official'],
                                      t.get('s_test_fast', math.nan)),
        'step_official/one_forward': ratio(s_info['step_official_s'],
                                           t['one_forward']),
        'step_fast/one_forward': ratio(
            s_info.get('step_fast_s', math.nan), t['one_forward']),
    }
    scored = [k for k, x in ref.items() if x is not None]
    shape = unl_items[0]['inputs'][0].shape
    named = adapter.parameters(model)
    standard_type = cfg.model.type if opts.standard else None
    if opts.r50 or (standard_type == 'FCOS'
                    and STANDARD_MODELS['FCOS'] == R50_MODEL):
        name = 'FCOS R-50 caffe FPN GN-head (paper)'
    elif opts.standard:
        name = (f'{type(model).__name__} standard '
                f'({STANDARD_MODELS[standard_type]}, for '
                f'{osp.basename(cfg.filename)})')
    elif opts.config is None:
        name = SMALL_MODEL
    else:
        name = f'{type(model).__name__} ({osp.basename(cfg.filename)})'
    return dict(
        model=name + (f', weights {opts.checkpoint}' if opts.checkpoint else
                      ', random weights, zero cls bias'),
        config=cfg.filename,
        adapter=setup['adapter'],
        adapter_from=setup['adapter_from'],
        zeroed_biases=setup['zeroed_biases'],
        theta=dict(
            blocks=len(named),
            entries=sum(p.numel() for _, p in named),
            rule=setup['theta_from']),
        hvp_cache=hvp_cache(model, adapter),
        num_images=len(unl_ids),
        image_size=f'{shape[-1]}x{shape[-2]}',
        batch_size=B,
        device=opts.device,
        threads=torch.get_num_threads(),
        repeat=opts.repeat,
        score_thr=thr,
        torch=torch.__version__,
        python=platform.python_version(),
        params={
            n: list(p.shape)
            for n, p in adapter.parameters(model)
        },
        phases=phases,
        ratios=ratios,
        s_test=s_info,
        scored=len(scored),
        pseudo_boxes_mean=(sum(ref_boxes[k]
                               for k in scored) / max(len(scored), 1)),
        predicted_boxes=predicted,
        pseudo_boxes_agree=dict(
            fast=boxes == ref_boxes, official=off_boxes == ref_boxes),
        agreement=dict(
            fast_vs_reference=compare_scores(fast, ref),
            official_vs_reference=compare_scores(official, ref),
            fast_vs_official=compare_scores(fast, official)),
        scores=dict(fast=fast, reference=ref, official=official),
        memory_kind=memory.kind,
        memory_reset_ok=memory.reset_ok,
        load_average=[load_start, load_average()],
    )


def report(res: Dict[str, Any]) -> str:
    """The human-readable table of :func:`run`'s results."""
    t = {k: v['seconds'] for k, v in res['phases'].items()}
    r = res['ratios']
    s = res['s_test']
    theta = res.get('theta')
    lines = [
        f'model: {res["model"]}, {res["num_images"]} images '
        f'{res["image_size"]}, batch {res["batch_size"]}, {res["device"]} '
        f'({res["threads"]} threads), repeat {res["repeat"]}; load average '
        f'(1 min) at start {res["load_average"][0]:.2f}, at end '
        f'{res["load_average"][1]:.2f}',
    ]
    if theta:
        lines.append(
            f'  adapter {res["adapter"]} (from {res["adapter_from"]}); θ '
            f'{theta["rule"]}: {theta["blocks"]} blocks, '
            f'{theta["entries"]} entries; fast s_test caches '
            f'{res["hvp_cache"]}')
    lines += [
        f'scoring: predict {t["predict"]:.2f}s | fast {t["fast"]:.2f}s '
        f'({r["fast/predict"]:.2f}x predict) | per-image ref '
        f'{t["reference"]:.2f}s ({r["reference/predict"]:.2f}x) | '
        f'official-style {t["official"]:.2f}s '
        f'({r["official/predict"]:.2f}x predict, '
        f'{r["official/fast"]:.2f}x slower than fast)',
        f'  scored {res["scored"]}/{res["num_images"]} images, '
        f'{res["pseudo_boxes_mean"]:.1f} pseudo boxes per scored image '
        f'(thr {res["score_thr"]}), {res["predicted_boxes"]} predicted '
        'boxes in plain inference',
    ]
    for key, label in (('fast_vs_reference', 'fast vs per-image reference'),
                       ('fast_vs_official', 'fast vs official-style'),
                       ('official_vs_reference',
                        'official-style vs per-image reference')):
        c = res['agreement'][key]
        lines.append(f'  {label}: max rel diff '
                     f'{c["max_rel_diff"]:.1e} (max abs diff / max |score| '
                     f'{c["max_abs_diff_over_max_abs"]:.1e}), same unscored: '
                     f'{c["same_unscored"]}, same ranking of all '
                     f'{c["num_compared"]} scored: {c["same_ranking"]}')
    sel = s.get('selector_scale_check')
    if sel and sel.get('measured') is not None:
        lines.append(
            f's_test scales: no configured or adapter scales; the '
            f'selector\'s scale check ({sel["images"]} labeled images x '
            f'{sel["iters"]} HVPs, {t["scale_check"]:.2f}s, not in s_test\'s '
            f'time): dominant |λ| per block '
            f'[{", ".join(f"{x:.3g}" for x in sel["measured"])}] -> scales '
            f'max({sel["configured"][0]:g}, {sel["margin"]:g} |λ|) = '
            f'{sel["scales"]}')
    check = s.get('scale_check')
    if check:
        lines.append(
            f's_test scales: the configured {check["configured"]} '
            f'diverged ({s["diverged"].split(":")[0]}); dominant Hessian '
            'eigenvalues per block: positive '
            f'{[round(x, 1) for x in check["max_eigenvalue"]]}, negative '
            f'{[round(x, 1) for x in check["min_eigenvalue"]]} (mmal scale '
            f'check): raised to {s["scale"]}')
    if s.get('flat_blocks'):
        lines.append(
            f's_test: no second derivative in {s["flat_blocks"]} for some '
            'labeled image (its gradient does not depend on θ); the official '
            'recursion\'s autograd.grad refuses such a block, so its step '
            'loss gets + 0 * sum |θ_b|^2 (exact zeros, every block kept in '
            'the graph); mmal\'s path needs nothing')
    if s.get('error'):
        lines.append(f's_test: {s["error"]}')
    else:
        lines += [
            f's_test ({s["chains"]} chains x {s["depth"]} images, scale '
            f'{s["scale"]}, damp {s["damp"]}): fast '
            f'{t["s_test_fast"]:.2f}s, official {t["s_test_official"]:.2f}s '
            f'({r["s_test_official/fast"]:.1f}x); per step fast '
            f'{1e3 * s["step_fast_s"]:.1f}ms, official '
            f'{1e3 * s["step_official_s"]:.1f}ms; one forward '
            f'{1e3 * t["one_forward"]:.1f}ms (step/forward: fast '
            f'{r["step_fast/one_forward"]:.2f}, official '
            f'{r["step_official/one_forward"]:.2f})',
            f'  max rel diff per block {fmt_list(s["rel_diff_per_block"])} '
            f'(max {max(s["rel_diff_per_block"]):.1e}); |s_test| per block '
            f'{fmt_list(s["norm_per_block"])}',
            f'  of fast: data loading of the {s["steps"]}-image sequence '
            f'alone {t["s_test_fast_loading"]:.2f}s; cache '
            f'{s["cache_stats"]}; v (gt gradients of {res["num_images"]} '
            f'images) {t["v"]:.2f}s',
        ]
    mem = res['phases']
    lines.append(f'peak memory ({res["memory_kind"]}, MiB; at phase start '
                 'in brackets):')
    lines.append('  ' +
                 ' | '.join(f'{k} {m["peak_mib"]:.0f} ({m["start_mib"]:.0f})'
                            for k, m in mem.items() if 'peak_mib' in m))
    if not res['memory_reset_ok']:
        lines.append('  (could not reset the peak RSS: values are the peak '
                     'since the process started)')
    return '\n'.join(lines)
