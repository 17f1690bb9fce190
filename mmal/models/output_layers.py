"""θ by rule: the layers that produce a head's outputs.

ISAL restricts influence to a few weights; the paper's choice for FCOS is
the weights of the head's last conv of each output branch (``conv_cls``,
``conv_reg``, ``conv_centerness``), for a classifier the last linear layer.
For a head without a paper setting the same rule is found from the model,
not from a table of names: run the head once and, from each tensor it
returns, walk its autograd graph back to the first conv or linear layer
on every path. What lies between that layer and the output (a ``Scale``,
``exp``, ``relu``, a reshape, a sum of branches) is not a conv or linear
layer and is walked through; the walk stops at the layer, so the tower
below it is never reached.
"""
from typing import Any, Callable, Dict, List, Sequence

import torch
from torch import nn

#: Module types whose outputs end a walk (the "last layers").
LAYER_TYPES = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


def _tensors(obj: Any) -> List[torch.Tensor]:
    if isinstance(obj, torch.Tensor):
        return [obj]
    if isinstance(obj, dict):
        return [t for v in obj.values() for t in _tensors(v)]
    if isinstance(obj, (list, tuple)):
        return [t for o in obj for t in _tensors(o)]
    return []


def output_layers(module: nn.Module,
                  run: Callable[[], Any],
                  prefix: str = '') -> List[str]:
    """Names of the conv / linear layers whose outputs reach ``run()``'s
    tensors without passing another conv / linear layer.

    Args:
        module (nn.Module): The module whose layers are searched (e.g. a
            detector's ``bbox_head``).
        run (Callable): Runs the forward that produces the outputs (e.g.
            ``lambda: head(feats)``); its inputs need no grad.
        prefix (str): Prepended to the names (e.g. ``'bbox_head.'``).

    Returns:
        list[str]: Module names in ``module.named_modules()`` order (each
        once, even when it serves several levels or outputs).
    """
    layers = {
        m: name
        for name, m in module.named_modules() if isinstance(m, LAYER_TYPES)
    }
    ends: Dict[Any, nn.Module] = {}  # autograd node of a layer's output

    def record(m: nn.Module, _inputs, out) -> None:
        for t in _tensors(out):
            if t.grad_fn is not None:
                ends[t.grad_fn] = m

    hooks = [m.register_forward_hook(record) for m in layers]
    frozen = [p for p in module.parameters() if not p.requires_grad]
    for p in frozen:  # a frozen layer's output would have no graph
        p.requires_grad_(True)
    try:
        with torch.enable_grad():
            outputs = _tensors(run())
    finally:
        for h in hooks:
            h.remove()
        for p in frozen:
            p.requires_grad_(False)
    found = set()
    seen = set()
    stack = [t.grad_fn for t in outputs if t.grad_fn is not None]
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        if node in ends:
            found.add(ends[node])
            continue
        stack.extend(n for n, _ in node.next_functions)
    return [f'{prefix}{name}' for m, name in layers.items() if m in found]


def weights_of(layers: Sequence[str], model: nn.Module) -> List[str]:
    """``<layer>.weight`` of each layer that has one (θ's parameter names;
    biases are left out, as in the official ISAL code)."""
    modules = dict(model.named_modules())
    return [
        f'{name}.weight' for name in layers
        if isinstance(getattr(modules[name], 'weight', None), nn.Parameter)
    ]
