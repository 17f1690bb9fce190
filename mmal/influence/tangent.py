"""Directional derivatives along θ by forward-mode AD, without a backward.

The parameters θ that influence is computed for are weights of linear
layers (convolutions, fully connected): a layer's output ``f(x, W) + b`` is
linear in ``W``, so its derivative along a direction ``S`` of ``W`` is
``f(x, S)``, one extra product with the layer's input. Attaching that as the
forward-mode tangent of the layer's output (:func:`torch.autograd.forward_ad`)
carries it through the rest of the network and the loss: the tangent of the
loss is then ``∇θ L · S`` for the price of a second forward of the layers
after θ, with no autograd graph and no backward.
"""
import contextlib
from typing import Any, Dict, Iterator, Sequence

import torch
import torch.autograd.forward_ad as fwAD
from torch import nn
from torch.nn import functional as F

LINEAR_TYPES = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


def primal(obj: Any) -> Any:
    """``obj`` with every dual tensor replaced by its primal (nested)."""
    if isinstance(obj, torch.Tensor):
        return fwAD.unpack_dual(obj).primal
    if isinstance(obj, (list, tuple)):
        return type(obj)(primal(o) for o in obj)
    if isinstance(obj, dict):
        return {k: primal(o) for k, o in obj.items()}
    return obj


def tangent_of(t: torch.Tensor) -> torch.Tensor:
    """The forward-mode tangent of ``t`` (zeros when it has none)."""
    tan = fwAD.unpack_dual(t).tangent
    return torch.zeros_like(primal(t)) if tan is None else tan


def _linear_part(module: nn.Module, x: torch.Tensor,
                 weight: torch.Tensor) -> torch.Tensor:
    """``module``'s output for input ``x`` with ``weight`` and no bias."""
    if isinstance(module, nn.Linear):
        return F.linear(x, weight)
    return module._conv_forward(x, weight, None)


class TangentHooks:
    """Forward hooks that give θ-layers' outputs the tangent along ``S``.

    Use inside ``forward_ad.dual_level()``. Every ``(name, S_b)`` names a
    weight of a convolution or linear layer; while enabled, the layer's
    output gets the tangent ``f(x, S_b)`` (added to the tangent it already
    has, when its input is itself downstream of θ).

    Args:
        model (nn.Module): The (unwrapped) model.
        param_names (Sequence[str]): Full names of the weights θ.
        direction (Sequence[Tensor]): ``S``, one tensor per weight.

    Raises:
        TypeError: a name is not the ``weight`` of a linear layer.
    """

    def __init__(self, model: nn.Module, param_names: Sequence[str],
                 direction: Sequence[torch.Tensor]) -> None:
        modules = dict(model.named_modules())
        self.targets: Dict[nn.Module, torch.Tensor] = {}
        for name, s in zip(param_names, direction):
            owner, _, attr = name.rpartition('.')
            module = modules.get(owner)
            if attr != 'weight' or not isinstance(module, LINEAR_TYPES):
                raise TypeError(
                    f'the fast path needs θ to be weights of convolution '
                    f'or linear layers; {name!r} is '
                    f'{type(module).__name__}.{attr}. Set '
                    'al_cfg.selector.fast_path=False to use the per-image '
                    'path')
            self.targets[module] = s.detach()
        self.enabled = True
        self._handles = []

    def __enter__(self) -> 'TangentHooks':
        self._handles = [
            m.register_forward_hook(self._hook) for m in self.targets
        ]
        return self

    def __exit__(self, *exc) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """No tangents inside (e.g. for predictions, NMS)."""
        self.enabled = False
        try:
            yield
        finally:
            self.enabled = True

    def _hook(self, module: nn.Module, inputs, output):
        if not self.enabled:
            return None
        x = primal(inputs[0])
        tan = _linear_part(module, x, self.targets[module].to(x.dtype))
        out = fwAD.unpack_dual(output)
        if out.tangent is not None:
            tan = tan + out.tangent
        return fwAD.make_dual(out.primal, tan)
