"""Per-model adapters: what the influence machinery needs from a model."""
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn

from mmal.influence import select_parameters


class BaseModelAdapter:
    """Interface between a model and influence-based selection.

    An adapter names the parameter blocks θ that influence is computed for,
    and gives two per-image losses with autograd through θ:

    * :meth:`gt_loss`: the training loss on the image's own annotations
      (labeled images: reference gradient, Hessian-vector products);
    * :meth:`pseudo_loss`: the loss on the model's own predictions above a
      score threshold (unlabeled images), fused with the inference pass.

    Args:
        param_names (Sequence[str], optional): Full names of the parameters
            θ. Defaults to the class's ``default_param_names``.
        default_scales (Sequence[float], optional): LiSSA scale per block
            for these parameters. Defaults to ``default_lissa_scale``.
    """

    default_param_names: Tuple[str, ...] = ()
    default_lissa_scale: Tuple[float, ...] = ()

    def __init__(self,
                 param_names: Optional[Sequence[str]] = None,
                 lissa_scale: Optional[Sequence[float]] = None) -> None:
        self.param_names = list(param_names or self.default_param_names)
        if not self.param_names:
            raise ValueError(f'{type(self).__name__} needs param_names')
        self.lissa_scale = list(lissa_scale or self.default_lissa_scale)

    @staticmethod
    def unwrap(model: nn.Module) -> nn.Module:
        """The bare model under DDP-style wrappers."""
        return getattr(model, 'module', model)

    def prepare(self, model: nn.Module) -> nn.Module:
        """Make ``model`` ready for influence computations (in place).

        Called once on the loaded model before any gradient is taken; the
        default does nothing. Adapters use it to swap parts whose backward is
        not twice differentiable (custom CUDA ops) for equivalent ones.
        """
        return model

    def parameters(self, model: nn.Module) -> List[Tuple[str, nn.Parameter]]:
        """``(name, parameter)`` of each block of θ, in config order."""
        return select_parameters(self.unwrap(model), self.param_names)

    def preprocess(self, model: nn.Module, batch: Dict) -> Dict:
        """Run the model's data preprocessor in test mode."""
        return self.unwrap(model).data_preprocessor(batch, False)

    def gt_loss(self, model: nn.Module, batch: Dict) -> torch.Tensor:
        """Per-image loss on ground-truth annotations.

        Args:
            batch (dict): One collated image (``inputs`` and
                ``data_samples`` with ``gt_instances``).

        Returns:
            Tensor: Scalar loss, differentiable w.r.t. θ.
        """
        raise NotImplementedError

    def pseudo_loss(self, model: nn.Module, batch: Dict,
                    score_thr: float) -> Tuple[Optional[torch.Tensor], int]:
        """Per-image loss on the model's own predictions (pseudo labels).

        Returns:
            tuple[Tensor | None, int]: The scalar loss (None when no
            prediction reaches ``score_thr``) and the number of pseudo boxes.
        """
        raise NotImplementedError
