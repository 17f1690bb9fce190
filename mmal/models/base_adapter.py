"""Per-model adapters: what the influence machinery needs from a model."""
import abc
import contextlib
import warnings
import zlib
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import torch
from mmengine.logging import print_log
from torch import nn

from mmal.influence import (HvpFn, ImageHessian, OutputProbe,
                            frozen_parameters, loss_grad, select_parameters)
from mmal.utils.tensor_utils import detach, image_slice, per_image_entries


def _not_initialized() -> bool:
    """``torch.distributed.is_initialized`` inside
    :meth:`BaseModelAdapter.local_reductions`."""
    return False


class BaseModelAdapter(metaclass=abc.ABCMeta):
    """Interface between a model and influence-based selection.

    An adapter names the parameter blocks θ that influence is computed for,
    and the task of the model (``task``, a type in
    :data:`~mmal.registry.TASKS`). A new model needs one subclass that
    implements the contract, four methods on a batch:

    * :meth:`extract_features`: the θ-free trunk, without autograd;
    * :meth:`head_forward`: the outputs that depend on θ;
    * :meth:`predict`: predictions from those outputs;
    * :meth:`loss`: the training loss of one image on its labels;

    and :meth:`set_pseudo_labels` (a prediction -> the image's labels).
    From them the base class builds everything the selectors use:

    * :meth:`gt_loss`: the training loss on the image's own annotations
      (labeled images: reference gradient, Hessian-vector products);
    * :meth:`pseudo_loss`: the loss on the model's own predictions above a
      score threshold (unlabeled images), fused with the inference pass;
    * :meth:`directional_scores`: the batched fast path of the scores;
    * :meth:`cache_entries` / :meth:`cached_gt_loss`: the labeled images'
      θ-free part computed once, for repeated HVPs.

    The baseline selectors use :meth:`predict_batch` (built from the
    contract) and two optional methods a model defines when it supports
    them: :meth:`prediction_entropy` (entropy) and :meth:`embed`
    (core-set's feature vector per image).

    Args:
        param_names (Sequence[str], optional): Full names of the parameters
            θ. Defaults to the class's ``default_param_names``.
        lissa_scale (Sequence[float], optional): LiSSA scale per block
            for these parameters. Defaults to ``default_lissa_scale``.
    """

    #: The task type its models serve (a :data:`mmal.registry.TASKS`
    #: name, e.g. ``'DetectionTask'``): the driver's default task.
    task_type: str = ''
    #: Whether :meth:`predict_batch` returns boxes (``bboxes``, ``scores``,
    #: ``labels``): what selectors that compare boxes need.
    predicts_boxes: bool = False
    default_param_names: Tuple[str, ...] = ()
    default_lissa_scale: Tuple[float, ...] = ()
    #: Submodule of the model whose forward output, in the model's own
    #: training loss, is :meth:`head_forward`'s (None: no such module);
    #: :class:`~mmal.models.LearningLossModel` records it instead of
    #: running the head again for :meth:`per_image_losses`.
    head_module: Optional[str] = None

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        old = cls.__dict__.get('task')
        if isinstance(old, str) and 'task_type' not in cls.__dict__:
            warnings.warn(
                f'{cls.__name__}.task is deprecated: name the task type '
                f'task_type (task_type = {old!r})', DeprecationWarning)
            cls.task_type = old

    def __init__(self,
                 param_names: Optional[Sequence[str]] = None,
                 lissa_scale: Optional[Sequence[float]] = None) -> None:
        # empty: θ by rule, resolved on the first model (prepare)
        self.param_names = list(param_names or self.default_param_names)
        self.lissa_scale = list(lissa_scale or self.default_lissa_scale)
        self.seed = 0

    # -- θ ------------------------------------------------------------------
    def param_names_by_rule(self, model: nn.Module) -> List[str]:
        """θ when neither ``param_names`` nor a paper default is given
        (e.g. the weights of the head's output layers, found from the
        model: :func:`mmal.models.output_layers.output_layers`).

        Args:
            model (nn.Module): The bare model.

        Returns:
            list[str]: Full parameter names.
        """
        raise ValueError(f'{type(self).__name__} has no default θ: set '
                         'al_cfg.adapter.param_names')

    def resolve_param_names(self, model: nn.Module) -> List[str]:
        """θ's names: the given or default ones, else
        :meth:`param_names_by_rule` on the first model (logged, then
        kept)."""
        if not self.param_names:
            bare = self.unwrap(model)
            names = list(self.param_names_by_rule(bare))
            if not names:
                raise ValueError(f'{type(self).__name__}: no θ found in '
                                 f'{type(bare).__name__}; set '
                                 'al_cfg.adapter.param_names')
            params = dict(bare.named_parameters())
            print_log(
                f'{type(self).__name__}: θ by rule (the weights of the '
                'output layers), ' + ', '.join(f'{n} {tuple(params[n].shape)}'
                                               for n in names) +
                f'; {sum(params[n].numel() for n in names)} entries',
                logger='current')
            self.param_names = names
        return self.param_names

    @staticmethod
    def unwrap(model: nn.Module) -> nn.Module:
        """The bare target model under DDP-style wrappers and under a model
        that holds it (:class:`~mmal.models.LearningLossModel`'s
        ``target_model``)."""
        model = getattr(model, 'module', model)
        inner = getattr(model, 'target_model', None)
        return inner if isinstance(inner, nn.Module) else model

    def prepare(self, model: nn.Module, seed: int = 0) -> nn.Module:
        """Make ``model`` ready for influence computations (in place).

        Called once on the loaded model before any gradient is taken.
        Subclasses use it to swap parts whose backward is not twice
        differentiable (custom CUDA ops) for equivalent ones.

        Args:
            model (nn.Module): The trained model.
            seed (int): Seed of the selection: every random draw inside a
                per-image loss (e.g. proposal sampling) is seeded from it and
                the image's id (see :meth:`image_rng`).
        """
        self.seed = int(seed)
        self.resolve_param_names(model)
        return model

    @staticmethod
    def image_key(batch: Dict) -> str:
        """Stable id of the single image in ``batch``.

        The ``sample_id`` that mmal's loaders add, else the image's
        ``img_id``, else its path.
        """
        if batch.get('sample_id'):
            return str(batch['sample_id'][0])
        meta = batch['data_samples'][0].metainfo
        return str(meta.get('img_id', meta.get('img_path')))

    @contextlib.contextmanager
    def image_rng(self, batch: Dict) -> Iterator[None]:
        """Seed torch's RNGs for the loss of one image, then restore them.

        Losses that draw at random (the RPN's anchor sampling and the RoI
        head's proposal sampling in Faster R-CNN) then give the same value
        for the same image every time: in the reference gradient, in each
        LiSSA step that samples the image, and in its score. The seed mixes
        the selection seed with the image's id (CRC32), so it does not
        depend on the order of images or on how they are split over
        processes.
        """
        key = f'{self.seed}/{self.image_key(batch)}'.encode()
        seed = zlib.crc32(key)
        devices = [torch.cuda.current_device()
                   ] if torch.cuda.is_available() else []
        with torch.random.fork_rng(devices=devices):
            # not torch.manual_seed: without CUDA it queues a lazy CUDA
            # seeding that captures a stack trace (~1 ms per image)
            torch.default_generator.manual_seed(seed)
            if devices:
                torch.cuda.manual_seed(seed)
            yield

    @staticmethod
    @contextlib.contextmanager
    def local_reductions() -> Iterator[None]:
        """Keep a per-image loss on this process.

        mmdet's heads average some normalisers over processes
        (``reduce_mean(num_pos)`` in FCOS, ATSS, ...), an all-reduce that
        would mix images of different ranks into one image's loss and hang
        when ranks compute different numbers of losses. Inside this context
        ``torch.distributed.is_initialized()`` is False, so those helpers
        return their local value, as in a single process.
        """
        dist = torch.distributed
        is_initialized = dist.is_initialized
        dist.is_initialized = _not_initialized
        try:
            yield
        finally:
            dist.is_initialized = is_initialized

    @contextlib.contextmanager
    def loss_scope(self, batch: Dict) -> Iterator[None]:
        """:meth:`image_rng` and :meth:`local_reductions` together."""
        with self.image_rng(batch), self.local_reductions():
            yield

    @staticmethod
    def check_single(data_samples: Sequence) -> None:
        if len(data_samples) != 1:
            raise ValueError('per-image losses work on one image at a time, '
                             f'got a batch of {len(data_samples)}')

    def parameters(self, model: nn.Module) -> List[Tuple[str, nn.Parameter]]:
        """``(name, parameter)`` of each block of θ, in config order."""
        return select_parameters(
            self.unwrap(model), self.resolve_param_names(model))

    def preprocess(self, model: nn.Module, batch: Dict) -> Dict:
        """Run the model's data preprocessor in test mode."""
        return self.unwrap(model).data_preprocessor(batch, False)

    # -- the contract: what a subclass provides -------------------------------
    # ``feats`` are the trunk's outputs (θ-free, computed without autograd),
    # ``outs`` the head outputs that depend on θ; both hold tensors whose
    # first dimension is the image (see :func:`image_slice`).
    def extract_features(self, model: nn.Module, inputs: torch.Tensor) -> Any:
        """Trunk features of a batch, computed without autograd.

        The trunk is the part of the network that θ does not touch, so its
        output is a constant for every gradient and HVP. The default runs
        ``model.extract_feat``; an adapter whose θ reaches into the trunk
        returns ``inputs`` and runs the whole network in
        :meth:`head_forward`.

        Args:
            model (nn.Module): The bare model.
            inputs (Tensor): Preprocessed images (B, C, H, W).

        Returns:
            Any: Tensors (nested) whose first dimension is the image.
        """
        with torch.no_grad():
            return model.extract_feat(inputs)

    @abc.abstractmethod
    def head_forward(self, model: nn.Module, feats: Any) -> Any:
        """The outputs that depend on θ, with autograd.

        Args:
            model (nn.Module): The bare model.
            feats: :meth:`extract_features` of a batch (or of one image).

        Returns:
            Any: Tensors (nested) whose first dimension is the image.
        """

    @abc.abstractmethod
    def predict(self, model: nn.Module, feats: Any, outs: Any,
                samples: Sequence) -> List[Any]:
        """The model's predictions from detached outputs, no autograd.

        Returns:
            list: One prediction per sample, in the form
            :meth:`set_pseudo_labels` takes (``InstanceData`` with boxes in
            the network input's frame for detection; class scores for
            classification).
        """

    @abc.abstractmethod
    def loss(self, model: nn.Module, feats: Any, outs: Any, batch: Dict,
             samples: Sequence) -> torch.Tensor:
        """Training loss of the image(s) in ``samples`` on their labels.

        Args:
            feats, outs: The image's slices of :meth:`extract_features` and
                :meth:`head_forward` (first dimension 1).
            batch (dict): Holds ``sample_id`` (seeds random draws, see
                :meth:`image_rng`).
            samples (Sequence): The data samples holding the labels.

        Returns:
            Tensor: Scalar, differentiable w.r.t. θ.
        """

    @abc.abstractmethod
    def set_pseudo_labels(self, data_sample: Any, pred: Any,
                          score_thr: float) -> int:
        """Replace ``data_sample``'s labels by the model's own prediction.

        Args:
            data_sample: The image's data sample (modified in place).
            pred: The image's entry of :meth:`predict`.
            score_thr (float): Keep predictions with score >= this (a
                task may ignore it, e.g. argmax labels).

        Returns:
            int: The number of pseudo labels; 0 means the image has no
            pseudo-label loss (it is not scored).
        """

    # -- per-image losses (the reference path) ----------------------------
    def gt_loss(self, model: nn.Module, batch: Dict) -> torch.Tensor:
        """Per-image loss on ground-truth annotations.

        Args:
            batch (dict): One collated image (``inputs`` and
                ``data_samples`` with ``gt_instances``).

        Returns:
            Tensor: Scalar loss, differentiable w.r.t. θ.
        """
        model = self.unwrap(model)
        data = self.preprocess(model, batch)
        feats = self.extract_features(model, data['inputs'])
        return self.loss(model, feats, self.head_forward(model, feats), batch,
                         data['data_samples'])

    def pseudo_loss(self, model: nn.Module, batch: Dict,
                    score_thr: float) -> Tuple[Optional[torch.Tensor], int]:
        """Per-image loss on the model's own predictions (pseudo labels).

        The predictions come from the same trunk and head pass as the loss.

        Returns:
            tuple[Tensor | None, int]: The scalar loss (None when no
            prediction reaches ``score_thr``) and the number of pseudo boxes.
        """
        model = self.unwrap(model)
        data = self.preprocess(model, batch)
        samples = data['data_samples']
        self.check_single(samples)
        feats = self.extract_features(model, data['inputs'])
        outs = self.head_forward(model, feats)
        with torch.no_grad():
            preds = self.predict(model, feats, detach(outs), samples)
        num = self.set_pseudo_labels(samples[0], preds[0], score_thr)
        if num == 0:
            return None, 0
        return self.loss(model, feats, outs, batch, samples), num

    # -- the fast path: batched, no per-image backward ----------------------
    def directional_scores(
            self, model: nn.Module, data: Dict,
            direction: Sequence[torch.Tensor],
            score_thr: float) -> List[Tuple[Optional[float], int]]:
        """``∇θ l(z', pseudo labels) · S`` for every image of a batch.

        One pass for the batch: the trunk and the head run once, recording
        autograd only after the θ layers (:class:`~mmal.influence.
        OutputProbe` makes their outputs leaves and computes ``f(x, S_b)``
        beside them); the predictions give the pseudo labels; each image's
        loss is evaluated on its rows of the outputs; one backward of the
        summed losses to the θ layers' outputs (never to θ or through the
        trunk) gives every image's derivative. It equals
        ``loss_grad(pseudo_loss(...)) · S`` up to float rounding.

        Args:
            data (dict): A preprocessed batch (:func:`same_shape_batches`):
                ``inputs`` (B, C, H, W), ``data_samples`` (B) and
                ``sample_id`` (B).
            direction (Sequence[Tensor]): ``S``, shaped like θ.
            score_thr (float): Pseudo-label score threshold.

        Returns:
            list[tuple[float | None, int]]: Per image, the derivative (None
            without pseudo box) and the number of pseudo boxes.
        """
        model = self.unwrap(model)
        samples = data['data_samples']
        probe = OutputProbe(model, self.param_names, direction)
        nums, losses = [], []
        with frozen_parameters(model), probe:
            feats = self.extract_features(model, data['inputs'])
            with torch.enable_grad():
                probe.tag = 'batch'
                outs = self.head_forward(model, feats)
            with probe.paused(), torch.no_grad():
                preds = self.predict(model, feats, detach(outs), samples)
            for i, (sid, sample) in enumerate(zip(data['sample_id'], samples)):
                nums.append(
                    self.set_pseudo_labels(sample, preds[i], score_thr))
                if nums[-1] == 0:
                    continue
                probe.tag = i  # layers called by this loss alone: image i
                with torch.enable_grad():
                    losses.append(
                        self.loss(model, image_slice(feats, i),
                                  image_slice(outs, i), dict(sample_id=[sid]),
                                  [sample]))
            values = probe.contract(sum(losses), 'batch') if losses else {}
        return [(values.get(i, 0.0) if num else None, num)
                for i, num in enumerate(nums)]

    # -- inference passes over the pool (baseline selectors) ----------------
    def predict_batch(self, model: nn.Module, data: Dict) -> List[Any]:
        """The model's predictions for a preprocessed batch, no autograd.

        Args:
            model (nn.Module): The model (possibly wrapped).
            data (dict): A preprocessed batch (``inputs`` (B, C, H, W),
                ``data_samples`` (B)).

        Returns:
            list: One prediction per image, as :meth:`predict` gives it.
        """
        model = self.unwrap(model)
        with torch.no_grad():
            feats = self.extract_features(model, data['inputs'])
            outs = self.head_forward(model, feats)
            return self.predict(model, feats, outs, data['data_samples'])

    def per_image_losses(
            self,
            model: nn.Module,
            feats: Any,
            outs: Any,
            data_samples: Sequence,
            sample_ids: Optional[Sequence[str]] = None) -> torch.Tensor:
        """Each image's own training loss on its labels, without autograd.

        What learning loss learns to predict. A detector's batch loss is
        normalised over the batch (FCOS divides by the batch's number of
        positive points), so each image's loss is :meth:`loss` on its own
        slice of the outputs, as for influence.

        Args:
            model (nn.Module): The model (possibly wrapped).
            feats: The batch's trunk features (``model.extract_feat``).
            outs: :meth:`head_forward` of ``feats``, or None to compute it.
            data_samples (Sequence): The batch's samples with labels (B).
            sample_ids (Sequence[str], optional): Ids seeding random draws
                inside a loss (:meth:`image_rng`); by default each sample's
                ``img_id`` / path.

        Returns:
            Tensor: (B, ) losses, detached.
        """
        model = self.unwrap(model)
        with torch.no_grad():
            feats = detach(feats)
            outs = (
                self.head_forward(model, feats)
                if outs is None else detach(outs))
            values = []
            for i, sample in enumerate(data_samples):
                batch = (
                    dict(sample_id=[sample_ids[i]]) if sample_ids else dict(
                        data_samples=[sample]))
                values.append(
                    self.loss(model, image_slice(feats, i),
                              image_slice(outs, i), batch, [sample]).reshape(
                                  ()))
        return torch.stack(values)

    def prediction_entropy(self, pred: Any) -> Optional[float]:
        """Uncertainty of one prediction of :meth:`predict` (nats).

        Returns:
            float | None: The entropy; None when the prediction has nothing
            to measure (a detector that found no box).
        """
        raise NotImplementedError(
            f'{type(self).__name__} does not define prediction_entropy '
            '(needed by mmal.EntropySelector)')

    def embed(self, model: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
        """One feature vector per image (core-set's embedding), no autograd.

        Args:
            model (nn.Module): The model (possibly wrapped).
            inputs (Tensor): Preprocessed images (B, C, H, W).

        Returns:
            Tensor: (B, D).
        """
        raise NotImplementedError(
            f'{type(self).__name__} does not define embed (needed by '
            'mmal.CoresetSelector)')

    def cache_entries(self, model: nn.Module, data: Dict) -> List[Dict]:
        """What a labeled image's loss needs once the trunk has run.

        The HVPs of LiSSA revisit the same labeled images; caching the
        θ-free part of the network (here the trunk features; subclasses
        may cache more) leaves only the layers after it to run per step.

        Args:
            data (dict): A preprocessed batch (:func:`same_shape_batches`).

        Returns:
            list[dict]: Per image: ``feats`` (own copies), ``sample`` and
            ``sample_id``; see :meth:`cached_gt_loss`.
        """
        model = self.unwrap(model)
        return per_image_entries(data, 'feats',
                                 self.extract_features(model, data['inputs']))

    def cached_gt_grad(self, model: nn.Module, entry: Dict,
                       params: Sequence[torch.Tensor]) -> List[torch.Tensor]:
        """``∇θ`` of :meth:`cached_gt_loss` (a subclass may have a closed
        form).

        Returns:
            list[Tensor]: One gradient per block of ``params``.
        """
        return loss_grad(self.cached_gt_loss(model, entry), params)

    def cached_hvp(self, model: nn.Module, entry: Dict,
                   params: Sequence[torch.Tensor]) -> HvpFn:
        """``h -> H_z h`` for a cached image: by default the double backward
        of :meth:`cached_gt_loss`, its gradient graph built once
        (:class:`~mmal.influence.ImageHessian`); a subclass may have a
        closed form."""
        return ImageHessian(lambda: self.cached_gt_loss(model, entry), params)

    def cached_gt_loss(self, model: nn.Module, entry: Dict) -> torch.Tensor:
        """:meth:`gt_loss` of a cached image (same value)."""
        model = self.unwrap(model)
        feats = entry['feats']
        return self.loss(model, feats, self.head_forward(model, feats),
                         dict(sample_id=[entry['sample_id']]),
                         [entry['sample']])
