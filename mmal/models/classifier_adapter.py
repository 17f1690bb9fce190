"""Adapter for mmpretrain image classifiers (``ImageClassifier``)."""
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn

from mmal.influence import (HvpFn, softmax_ce_directional, softmax_ce_grad_sum,
                            softmax_ce_hvp)
from mmal.registry import AL_ADAPTERS
from mmal.utils.tensor_utils import per_image_entries
from .base_adapter import BaseModelAdapter
from .entropy import categorical_entropy

#: Module types whose weights ``param_types=('Conv2d', 'Linear')`` selects.
_TYPE_NAMES = ('Conv1d', 'Conv2d', 'Conv3d', 'Linear')


@AL_ADAPTERS.register_module()
class ImageClassifierAdapter(BaseModelAdapter):
    """mmpretrain ``ImageClassifier``: θ, per-image loss and pseudo labels.

    The pseudo label of an unlabeled image is its predicted class (argmax;
    every image gets one, ``score_thr`` is not used). The per-image loss is
    the head's own training loss (``head._get_loss``).

    θ is configurable:

    * ``param_names`` (default ``('head.fc.weight',)``, the last linear
      layer): the backbone and neck then run without autograd and only the
      head is differentiated;
    * ``param_types``: every ``weight`` of the modules of these types, in
      the model's order; ``('Conv2d', 'Linear')`` is the official ISAL code's
      θ for CIFAR (every conv and linear weight, no BN, no bias: 11.2 M
      entries for ResNet-18). Then the whole network is differentiated
      (run it in eval mode: BN uses its running statistics, so an image's
      loss does not depend on the other images of a batch).

    **Closed form.** When θ is the weight ``W`` of a ``LinearClsHead``'s
    ``fc`` under plain softmax cross-entropy (``CrossEntropyLoss`` without
    sigmoid, soft labels or class weights), one image's gradient is
    ``w (p - e_y) fᵀ`` and its Hessian ``w (diag p - p pᵀ) ⊗ f fᵀ``
    (``f`` the pre-logits feature, ``p`` the softmax, ``w`` the loss
    weight): the fast path's gradients, HVPs and scores then come from one
    feature pass, without autograd (:mod:`mmal.influence.linear_softmax`).
    The per-image path (``fast_path=False``) always uses autograd, the
    reference the tests compare with.

    Args:
        param_names (Sequence[str], optional): Full names of θ's weights.
        param_types (Sequence[str], optional): Module type names whose
            weights form θ (instead of ``param_names``).
        lissa_scale (Sequence[float], optional): LiSSA scale (one value for
            every block, or one per block). Defaults to 10000 (official).
        closed_form (bool): Use the closed form where it applies. Defaults
            to True.
    """

    task_type = 'ClassificationTask'
    default_param_names = ('head.fc.weight', )
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
        super().__init__(param_names=param_names, lissa_scale=lissa_scale)
        if self.param_types:  # not the default names: resolved in prepare
            self.param_names = []
        self.closed_form = bool(closed_form)

    # -- θ ------------------------------------------------------------------
    def resolve_param_names(self, model: nn.Module) -> List[str]:
        """θ's names; with ``param_types``, every weight of those modules
        (resolved on the first model and kept)."""
        if self.param_types and not self.param_names:
            self.param_names = [
                f'{name}.weight'
                for name, m in self.unwrap(model).named_modules()
                if type(m).__name__ in self.param_types
                and isinstance(getattr(m, 'weight', None), nn.Parameter)
            ]
            if not self.param_names:
                raise ValueError(f'{type(self.unwrap(model)).__name__} has no '
                                 f'module of types {self.param_types}')
        return self.param_names

    @property
    def head_only(self) -> bool:
        """Whether θ lies in the head (the trunk then runs without grad)."""
        return bool(self.param_names) and all(
            n.startswith('head.') for n in self.param_names)

    def uses_closed_form(self, model: nn.Module) -> bool:
        """Whether θ is a ``LinearClsHead``'s fc weight under plain
        softmax cross-entropy (see the class doc)."""
        if not self.closed_form or self.param_names != ['head.fc.weight']:
            return False
        head = self.unwrap(model).head
        loss = getattr(head, 'loss_module', None)
        return (type(head).__name__ == 'LinearClsHead'
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
        """The head's input features (B, D): for a ``LinearClsHead`` after
        global average pooling, the 512-d vector before the fc of
        ResNet-18 (core-set's embedding in the paper)."""
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
        super().prepare(model, seed)
        self.resolve_param_names(model)
        return model

    def parameters(self, model: nn.Module) -> List[Tuple[str, nn.Parameter]]:
        self.resolve_param_names(model)
        return super().parameters(model)

    # -- the closed form on the fast path ----------------------------------
    def _pre_logits(self, model: nn.Module, feats: Any) -> torch.Tensor:
        return model.head.pre_logits(feats)

    def _logits(self, model: nn.Module, f: torch.Tensor) -> torch.Tensor:
        return model.head.fc(f)

    def _loss_weight(self, model: nn.Module) -> float:
        return float(model.head.loss_module.loss_weight)

    def cache_entries(self, model: nn.Module, data: Dict) -> List[Dict]:
        """With the closed form: per image its pre-logits feature ``f``
        (1, D) and logits (1, C); else the base class's entries."""
        model = self.unwrap(model)
        soft = any('gt_score' in s for s in data['data_samples'])
        if soft or not self.uses_closed_form(model):  # soft targets: autograd
            return super().cache_entries(model, data)
        with torch.no_grad():
            f = self._pre_logits(model,
                                 self.extract_features(model, data['inputs']))
            logits = self._logits(model, f)
        return per_image_entries(data, 'linear', (f, logits))

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
        if not self.uses_closed_form(bare):
            return super().directional_scores(model, data, direction,
                                              score_thr)
        with torch.no_grad():
            f = self._pre_logits(bare,
                                 self.extract_features(bare, data['inputs']))
            logits = self._logits(bare, f)
            labels = logits.argmax(dim=1)
            values = softmax_ce_directional(f, logits, labels,
                                            direction[0].to(f),
                                            self._loss_weight(bare))
        for sample, row in zip(data['data_samples'], logits):
            self.set_pseudo_labels(sample, row, score_thr)  # argmax
        return [(float(v), 1) for v in values.tolist()]
