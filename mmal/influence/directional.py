"""Directional derivatives ``∇θ l · S`` without a backward to θ.

The parameters θ that influence is computed for are weights of linear
layers (convolutions, fully connected): a layer's output ``o = f(x, W) + b``
is linear in ``W``, so ``∇θ l · S = Σ_b <∂l/∂o_b, f(x_b, S_b)>``: the
gradient of the loss w.r.t. the θ layers' *outputs* (a backward through
the layers after θ and the loss only) against one extra product of each θ
layer's input with ``S``. :class:`OutputProbe` provides both: while it is
active, each θ layer's output becomes a fresh autograd leaf and ``f(x, S_b)``
is computed next to it.
"""
import contextlib
from typing import Any, Dict, Hashable, Iterator, List, Sequence, Tuple

import torch
from torch import nn
from torch.nn import functional as F

LINEAR_TYPES = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


def _linear_part(module: nn.Module, x: torch.Tensor,
                 weight: torch.Tensor) -> torch.Tensor:
    """``module``'s output for input ``x`` with ``weight`` and no bias."""
    if isinstance(module, nn.Linear):
        return F.linear(x, weight)
    return module._conv_forward(x, weight, None)


@contextlib.contextmanager
def frozen_parameters(model: nn.Module) -> Iterator[None]:
    """No parameter of ``model`` requires grad inside (restored after), so
    that autograd records only what depends on the probe's leaves."""
    flags = [(p, p.requires_grad) for p in model.parameters()]
    try:
        for p, _ in flags:
            p.requires_grad_(False)
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)


class OutputProbe:
    """Forward hooks that turn θ layers' outputs into leaves with tangents.

    Every ``(name, S_b)`` names the weight of a convolution or linear layer.
    While enabled, each call of such a layer records ``(tag, leaf, tangent)``:
    ``leaf`` is a zero tensor requiring grad, added to the layer's output (so
    its gradient is ``∂l/∂o`` through every later layer, θ layers
    included), ``tangent = f(x, S_b)``. After a
    backward of losses to the recorded leaves, :meth:`contract` gives
    ``∇θ l · S`` per tag.

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
        self.tag: Hashable = None
        self.records: List[Tuple[Hashable, torch.Tensor, torch.Tensor]] = []
        self._handles: List[Any] = []

    def __enter__(self) -> 'OutputProbe':
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
        """Layers behave as usual inside (e.g. for predictions)."""
        self.enabled = False
        try:
            yield
        finally:
            self.enabled = True

    def _hook(self, module: nn.Module, inputs, output):
        if not self.enabled:
            return None
        with torch.no_grad():
            x = inputs[0]
            tangent = _linear_part(module, x, self.targets[module].to(x))
        # a zero leaf added to the output: its gradient is the loss's full
        # derivative w.r.t. this output, through later θ layers too (a
        # detached output would cut the paths through them)
        leaf = torch.zeros_like(output, requires_grad=True)
        self.records.append((self.tag, leaf, tangent))
        return output + leaf

    def contract(self, loss: torch.Tensor,
                 batch_tag: Hashable) -> Dict[Hashable, float]:
        """``∇θ l_i · S`` per image from one backward of ``loss = Σ_i l_i``.

        Leaves recorded under ``batch_tag`` hold the whole batch (image
        ``i`` is row ``i``); leaves recorded under the tag ``i`` belong to
        image ``i`` alone. Each image's loss must depend only on its rows.

        Returns:
            dict: image index -> derivative.
        """
        leaves = [leaf for _, leaf, _ in self.records]
        grads = torch.autograd.grad(loss, leaves, allow_unused=True)
        out: Dict[Hashable, float] = {}
        for (tag, _, tangent), grad in zip(self.records, grads):
            if grad is None:
                continue
            if tag == batch_tag:
                rows = (grad * tangent).flatten(1).sum(1)
                for i, value in enumerate(rows.tolist()):
                    out[i] = out.get(i, 0.0) + value
            else:
                out[tag] = out.get(tag, 0.0) + float((grad * tangent).sum())
        return out
