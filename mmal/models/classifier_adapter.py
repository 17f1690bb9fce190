"""Adapter for mmpretrain image classifiers (``ImageClassifier``)."""
import weakref
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
from mmengine.logging import print_log
from torch import nn

from mmal.influence import (HvpFn, softmax_ce_directional, softmax_ce_grad_sum,
                            softmax_ce_hvp)
from mmal.registry import AL_ADAPTERS
from mmal.utils.tensor_utils import per_image_entries
from .base_adapter import BaseModelAdapter
from .entropy import categorical_entropy
from .output_layers import output_layers, weights_of

#: Module types whose weights ``param_types=('Conv2d', 'Linear')`` selects.
_TYPE_NAMES = ('Conv1d', 'Conv2d', 'Conv3d', 'Linear')
#: Square sizes of the dummy image that finds θ when the backbone names no
#: ``img_size`` (the second if the first fails, e.g. too small).
_DUMMY_SIZES = (32, 224)


@dataclass
class _HeadInfo:
    """What one dummy pass of a model's head tells (see
    :meth:`ImageClassifierAdapter.head_info`).

    Attributes:
        output_layers (list[str]): The conv / linear layers whose outputs
            reach the head's output without another such layer (full
            names, ``head.``...).
        rule_params (list[str]): Their weights: θ by rule.
        final_linear (str | None): The one ``nn.Linear`` whose output *is*
            the head's output (called once, its output returned as it is),
            else None: where the closed form may apply.
    """
    output_layers: List[str]
    rule_params: List[str]
    final_linear: Optional[str]


@AL_ADAPTERS.register_module()
class ImageClassifierAdapter(BaseModelAdapter):
    """mmpretrain ``ImageClassifier``: θ, per-image loss and pseudo labels.

    Any head that ends in a linear layer: ``LinearClsHead`` (ResNet,
    ConvNeXt), ``StackedLinearClsHead`` (MobileNetV3),
    ``VisionTransformerClsHead`` (ViT), ...

    The pseudo label of an unlabeled image is its predicted class (argmax;
    every image gets one, ``score_thr`` is not used). The per-image loss is
    the head's own training loss (``head._get_loss``).

    θ is configurable:

    * by default, **by rule**: the weight of the head's last linear layer,
      found from the model, not from a table of names
      (:func:`~mmal.models.output_layers.output_layers`: the layers whose
      outputs reach the head's output without passing another conv or
      linear layer, on a dummy image in :meth:`prepare`): ``head.fc.weight``
      of a ``LinearClsHead``, ``head.layers.<last>.fc.weight`` of a
      ``StackedLinearClsHead``, ``head.layers.head.weight`` of a
      ``VisionTransformerClsHead``. The backbone and neck then run
      without autograd and only the head is differentiated;
    * ``param_names``: full names of θ's weights;
    * ``param_types``: every ``weight`` of the modules of these types, in
      the model's order; ``('Conv2d', 'Linear')`` is the official ISAL code's
      θ for CIFAR (every conv and linear weight, no BN, no bias: 11.2 M
      entries for ResNet-18). Then the whole network is differentiated
      (run it in eval mode: BN uses its running statistics, so an image's
      loss does not depend on the other images of a batch).

    **Closed form.** When θ is the weight ``W`` of the head's final linear
    layer ``M`` (the ``nn.Linear`` whose output is returned by the head as
    it is, called once per forward) under plain softmax cross-entropy
    (``CrossEntropyLoss`` without sigmoid, soft labels or class weights,
    through ``ClsHead._get_loss``), one image's gradient is
    ``w (p - e_y) fᵀ`` and its Hessian ``w (diag p - p pᵀ) ⊗ f fᵀ``
    (``f`` the input of ``M``, ``p`` the softmax, ``w`` the loss
    weight): the fast path's gradients, HVPs and scores then come from one
    feature pass, without autograd (:mod:`mmal.influence.linear_softmax`).
    That the head's output is ``M``'s is checked on every batch (the
    object the head returns must be the one ``M`` returned, from the input
    ``f`` recorded as ``M`` ran); where it is not, the batch takes autograd.
    The per-image path (``fast_path=False``) always uses autograd, the
    reference the tests compare with.

    Args:
        param_names (Sequence[str], optional): Full names of θ's weights.
            Defaults to θ by rule (see above).
        param_types (Sequence[str], optional): Module type names whose
            weights form θ (instead of ``param_names``).
        lissa_scale (Sequence[float], optional): LiSSA scale (one value for
            every block, or one per block). Defaults to 10000 (official).
        closed_form (bool): Use the closed form where it applies. Defaults
            to True.
    """

    task_type = 'ClassificationTask'
    #: Empty: θ by rule (the head's last linear layer's weight, found in
    #: :meth:`prepare`).
    default_param_names = ()
    default_lissa_scale = (10000.0, )
    head_module = 'head'

    def __init__(self,
                 param_names: Optional[Sequence[str]] = None,
                 param_types: Optional[Sequence[str]] = None,
                 lissa_scale: Optional[Sequence[float]] = None,
                 closed_form: bool = True) -> None:
        if param_names and param_types:
            raise ValueError('give param_names or param_types, not both')
        self.param_types = tuple(param_types or ())
        unknown = sorted(set(self.param_types) - set(_TYPE_NAMES))
        if unknown:
            raise ValueError(f'param_types {unknown} are not supported; '
                             f'choose among {list(_TYPE_NAMES)}')
        #: θ found from the model (neither names nor types given)
        self.by_rule = not param_names and not self.param_types
        # the base class wants names; θ by types or by rule is resolved in
        # prepare (resolve_param_names)
        super().__init__(
            param_names=param_names or ('<resolved in prepare>', ),
            lissa_scale=lissa_scale)
        if not param_names:
            self.param_names = []
        self.closed_form = bool(closed_form)
        self._info: Optional[Tuple[Any, _HeadInfo]] = None

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state['_info'] = None  # a weak reference: found again when needed
        return state

    # -- the head, found from the model ------------------------------------
    @staticmethod
    def dummy_inputs(model: nn.Module, size: int) -> torch.Tensor:
        """Zeros (1, C, H, W) in the model's dtype and device: ``H, W`` the
        backbone's ``img_size`` where it has one (ViT), else ``size``;
        ``C`` the first conv's input channels (3 without conv)."""
        params = list(model.parameters())
        like = params[0] if params else torch.zeros(())
        img_size = getattr(getattr(model, 'backbone', None), 'img_size', None)
        if isinstance(img_size, int):
            img_size = (img_size, img_size)
        h, w = tuple(img_size) if img_size else (size, size)
        conv = next((m for m in model.modules() if isinstance(m, nn.Conv2d)),
                    None)
        channels = conv.in_channels if conv is not None else 3
        return torch.zeros((1, channels, h, w),
                           dtype=like.dtype,
                           device=like.device)

    def _dummy_features(self, model: nn.Module) -> Any:
        """``model.extract_feat`` of a dummy image (no grad, eval mode)."""
        modes = {m: m.training for m in model.modules()}
        model.eval()
        error: Optional[Exception] = None
        try:
            with torch.no_grad():
                for size in _DUMMY_SIZES:
                    try:
                        return model.extract_feat(
                            self.dummy_inputs(model, size))
                    except (RuntimeError, ValueError,
                            AssertionError) as e:  # e.g. an image too small
                        error = e
        finally:
            for m, mode in modes.items():
                m.training = mode
        raise RuntimeError(
            f'{type(self).__name__}: cannot run {type(model).__name__}'
            f'.extract_feat on a dummy image (sizes {_DUMMY_SIZES}) to find '
            f'the head\'s last layer ({error}); set param_names') from error

    def head_info(self, model: nn.Module) -> _HeadInfo:
        """The head's output layers, θ by rule and the final linear layer,
        from one pass of the head on a dummy image's features (computed
        once per model)."""
        bare = self.unwrap(model)
        if self._info is not None and self._info[0]() is bare:
            return self._info[1]
        head = getattr(bare, 'head', None)
        if not isinstance(head, nn.Module):
            raise ValueError(f'{type(self).__name__} needs a model with a '
                             f'head, got {type(bare).__name__}')
        feats = self._dummy_features(bare)
        modes = {m: m.training for m in head.modules()}
        head.eval()
        try:
            layers = output_layers(head, lambda: head(feats), prefix='head.')
            with torch.no_grad():
                final = self._final_linear(bare, feats, layers)
        finally:
            for m, mode in modes.items():
                m.training = mode
        info = _HeadInfo(layers, weights_of(layers, bare), final)
        self._info = (weakref.ref(bare), info)
        return info

    def _final_linear(self, model: nn.Module, feats: Any,
                      layers: List[str]) -> Optional[str]:
        """The one output layer that is an ``nn.Linear`` whose output the
        head returns as it is, else None."""
        if len(layers) != 1:
            return None
        module = model.get_submodule(layers[0])
        if type(module) is not nn.Linear:
            return None
        return layers[0] if self._linear_pass(model, feats,
                                              module) is not None else None

    @staticmethod
    def _linear_pass(
            model: nn.Module, feats: Any,
            module: nn.Module) -> Optional[Tuple[torch.Tensor, torch.Tensor]]:
        """``(f, logits)`` of ``head(feats)`` where ``module`` ran once on
        ``f`` (N, D) and its output is the head's output (the same tensor);
        else None."""
        calls: List[Tuple[torch.Tensor, torch.Tensor]] = []

        def record(_m, inputs, output) -> None:
            calls.append((inputs[0] if inputs else None, output))

        handle = module.register_forward_hook(record)
        try:
            out = model.head(feats)
        finally:
            handle.remove()
        if len(calls) != 1:
            return None
        f, logits = calls[0]
        if logits is not out or not isinstance(f, torch.Tensor) or \
                f.dim() != 2 or out.dim() != 2 or len(f) != len(out) or \
                out.numel() == 0:
            return None
        return f, logits

    # -- θ ------------------------------------------------------------------
    def resolve_param_names(self, model: nn.Module) -> List[str]:
        """θ's names; with ``param_types``, every weight of those modules;
        by rule, the weight of the head's last linear layer (resolved on
        the first model and kept; logged once)."""
        if self.param_names:
            return self.param_names
        bare = self.unwrap(model)
        if self.param_types:
            self.param_names = [
                f'{name}.weight' for name, m in bare.named_modules()
                if type(m).__name__ in self.param_types
                and isinstance(getattr(m, 'weight', None), nn.Parameter)
            ]
            if not self.param_names:
                raise ValueError(f'{type(bare).__name__} has no '
                                 f'module of types {self.param_types}')
            return self.param_names
        self.param_names = self.param_names_by_rule(bare)
        named = dict(bare.named_parameters())
        blocks = ', '.join(f'{n} {tuple(named[n].shape)} ({named[n].numel()})'
                           for n in self.param_names)
        print_log(
            f'{type(self).__name__}: θ by rule (the last layer of '
            f'{type(bare.head).__name__}): {blocks}; '
            f'{sum(named[n].numel() for n in self.param_names)} entries',
            logger='current')
        return self.param_names

    def param_names_by_rule(self, model: nn.Module) -> List[str]:
        """θ by rule: the weight of the head's last linear layer (of each
        layer whose output reaches the head's output without another conv
        or linear layer; :meth:`head_info`)."""
        bare = self.unwrap(model)
        names = list(self.head_info(bare).rule_params)
        if not names:
            raise ValueError(
                f'{type(bare.head).__name__}: no conv or linear layer with a '
                'weight produces the head\'s output; set param_names')
        return names

    @property
    def head_only(self) -> bool:
        """Whether θ lies in the head (the trunk then runs without grad)."""
        return bool(self.param_names) and all(
            n.startswith('head.') for n in self.param_names)

    def uses_closed_form(self, model: nn.Module) -> bool:
        """Whether θ is the weight of the head's final linear layer under
        plain softmax cross-entropy (see the class doc)."""
        if not self.closed_form or len(self.param_names) != 1:
            return False
        bare = self.unwrap(model)
        final = self.head_info(bare).final_linear
        if final is None or self.param_names != [f'{final}.weight']:
            return False
        head = bare.head
        loss = getattr(head, 'loss_module', None)
        get_loss = getattr(type(head), '_get_loss', None)
        return (getattr(get_loss, '__qualname__', '') == 'ClsHead._get_loss'
                and type(loss).__name__ == 'CrossEntropyLoss'
                and not getattr(loss, 'use_sigmoid', False)
                and not getattr(loss, 'use_soft', False)
                and getattr(loss, 'class_weight', None) is None)

    # -- the contract -------------------------------------------------------
    def extract_features(self, model: nn.Module, inputs: torch.Tensor) -> Any:
        """The neck's output (no grad) when θ is in the head; else the
        images themselves (θ reaches into the backbone)."""
        if not self.head_only:
            return inputs
        with torch.no_grad():
            return model.extract_feat(inputs)

    def head_forward(self, model: nn.Module, feats: Any) -> torch.Tensor:
        """Logits (B, num_classes)."""
        if not self.head_only:
            feats = model.extract_feat(feats)
        return model.head(feats)

    def predict(self, model: nn.Module, feats: Any, outs: torch.Tensor,
                samples: Sequence) -> List[torch.Tensor]:
        """Class probabilities, one (num_classes, ) tensor per image."""
        return list(torch.softmax(outs, dim=1))

    def prediction_entropy(self, pred: torch.Tensor) -> float:
        """Softmax entropy of one image's class probabilities (nats)."""
        return float(categorical_entropy(pred.double()))

    def embed(self, model: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
        """The head's ``pre_logits`` (B, D): for a ``LinearClsHead`` after
        global average pooling, the 512-d vector before the fc of
        ResNet-18 (core-set's embedding in the paper); the hidden layers'
        output of a ``StackedLinearClsHead``; ViT's class token."""
        model = self.unwrap(model)
        with torch.no_grad():
            return model.head.pre_logits(model.extract_feat(inputs))

    def loss(self, model: nn.Module, feats: Any, outs: torch.Tensor,
             batch: Dict, samples: Sequence) -> torch.Tensor:
        with self.loss_scope(batch):
            losses = model.head._get_loss(outs, list(samples))
        loss, _ = model.parse_losses(losses)
        return loss

    def per_image_losses(
            self,
            model: nn.Module,
            feats: Any,
            outs: Optional[torch.Tensor],
            data_samples: Sequence,
            sample_ids: Optional[Sequence[str]] = None) -> torch.Tensor:
        """Each image's training loss from the head's logits (B, C).

        ``feats`` is the neck's output (``model.extract_feat``), whatever
        θ is. With hard labels the head's loss module gives all of them
        in one call (``reduction_override='none'``); otherwise one
        :meth:`loss` per image.

        Returns:
            Tensor: (B, ) losses, detached.
        """
        bare = self.unwrap(model)
        with torch.no_grad():
            outs = bare.head(feats) if outs is None else outs.detach()
            loss_module = getattr(bare.head, 'loss_module', None)
            if loss_module is not None and all('gt_score' not in s
                                               for s in data_samples):
                labels = torch.cat(
                    [s.gt_label.reshape(-1) for s in data_samples])
                if labels.numel() == len(data_samples):
                    values = loss_module(
                        outs,
                        labels.to(outs.device),
                        reduction_override='none')
                    if values.shape == (len(data_samples), ):
                        return values
            return super().per_image_losses(bare, feats, outs, data_samples,
                                            sample_ids)

    def set_pseudo_labels(self, data_sample: Any, pred: torch.Tensor,
                          score_thr: float) -> int:
        """The predicted class becomes the label (always 1 pseudo label)."""
        if 'gt_score' in data_sample:
            del data_sample.gt_score
        data_sample.set_gt_label(int(pred.argmax()))
        return 1

    def prepare(self, model: nn.Module, seed: int = 0) -> nn.Module:
        """Finds the head's last layers on a dummy image (θ by rule, the
        final linear layer of the closed form)."""
        super().prepare(model, seed)
        self.head_info(model)
        self.resolve_param_names(model)
        return model

    def parameters(self, model: nn.Module) -> List[Tuple[str, nn.Parameter]]:
        self.resolve_param_names(model)
        return super().parameters(model)

    # -- the closed form on the fast path ----------------------------------
    def _final_module(self, model: nn.Module) -> nn.Module:
        return model.get_submodule(self.head_info(model).final_linear)

    def _pre_logits(self, model: nn.Module, feats: Any) -> torch.Tensor:
        """The input ``f`` (B, D) of the head's final linear layer."""
        found = self._linear_pass(model, feats, self._final_module(model))
        if found is None:
            raise RuntimeError('the head\'s output is not its final linear '
                               'layer\'s on this batch')
        return found[0]

    def _logits(self, model: nn.Module, f: torch.Tensor) -> torch.Tensor:
        """The final linear layer applied to ``f``."""
        return self._final_module(model)(f)

    def _closed_form_pass(
            self, model: nn.Module,
            inputs: torch.Tensor) -> Optional[Tuple[torch.Tensor, ...]]:
        """``(f, logits)`` of a batch, no grad, when the closed form applies
        to it (:meth:`uses_closed_form` and the head's output is its final
        linear layer's on this batch); else None (autograd)."""
        if not self.uses_closed_form(model):
            return None
        with torch.no_grad():
            return self._linear_pass(model,
                                     self.extract_features(model, inputs),
                                     self._final_module(model))

    def _loss_weight(self, model: nn.Module) -> float:
        return float(model.head.loss_module.loss_weight)

    def cache_entries(self, model: nn.Module, data: Dict) -> List[Dict]:
        """With the closed form: per image the final linear layer's input
        ``f`` (1, D) and logits (1, C); else the base class's entries."""
        model = self.unwrap(model)
        soft = any('gt_score' in s for s in data['data_samples'])
        found = None if soft else self._closed_form_pass(model, data['inputs'])
        if found is None:  # soft targets, another loss or head: autograd
            return super().cache_entries(model, data)
        return per_image_entries(data, 'linear', found)

    def cached_gt_grad(self, model: nn.Module, entry: Dict,
                       params: Sequence[torch.Tensor]) -> List[torch.Tensor]:
        if 'linear' not in entry:
            return super().cached_gt_grad(model, entry, params)
        f, logits = entry['linear']
        label = entry['sample'].gt_label.reshape(1).to(logits.device)
        return [
            softmax_ce_grad_sum(f, logits, label,
                                self._loss_weight(self.unwrap(model)))
        ]

    def cached_hvp(self, model: nn.Module, entry: Dict,
                   params: Sequence[torch.Tensor]) -> HvpFn:
        if 'linear' not in entry:
            return super().cached_hvp(model, entry, params)
        f, logits = entry['linear']
        weight = self._loss_weight(self.unwrap(model))
        return lambda h: [softmax_ce_hvp(f, logits, h[0].to(f), weight)]

    def directional_scores(
            self, model: nn.Module, data: Dict,
            direction: Sequence[torch.Tensor],
            score_thr: float) -> List[Tuple[Optional[float], int]]:
        """With the closed form ``w (p - e_ŷ)ᵀ S f`` per image from one
        feature pass (ŷ = argmax); else the base class's batched pass."""
        bare = self.unwrap(model)
        found = self._closed_form_pass(bare, data['inputs'])
        if found is None:
            return super().directional_scores(model, data, direction,
                                              score_thr)
        f, logits = found
        with torch.no_grad():
            labels = logits.argmax(dim=1)
            values = softmax_ce_directional(f, logits, labels,
                                            direction[0].to(f),
                                            self._loss_weight(bare))
        for sample, row in zip(data['data_samples'], logits):
            self.set_pseudo_labels(sample, row, score_thr)  # argmax
        return [(float(v), 1) for v in values.tolist()]
