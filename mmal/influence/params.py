"""Selection of the parameters that influence functions are computed for."""
from typing import List, Sequence, Tuple

import torch
from torch import nn


def select_parameters(model: nn.Module,
                      names: Sequence[str]) -> List[Tuple[str, nn.Parameter]]:
    """Look up parameters of ``model`` by their full names.

    Args:
        model (nn.Module): The (unwrapped) model.
        names (Sequence[str]): Full parameter names, e.g.
            ``'bbox_head.conv_cls.weight'``.

    Returns:
        list[tuple[str, nn.Parameter]]: ``(name, parameter)`` in the order of
        ``names``.

    Raises:
        KeyError: a name is not a parameter of the model; the message lists
            the parameters of the closest module.
    """
    named = dict(model.named_parameters())
    out = []
    for name in names:
        if name not in named:
            prefix = name.rsplit('.', 2)[0]
            near = sorted(n for n in named if n.startswith(prefix))[:20]
            raise KeyError(
                f'{type(model).__name__} has no parameter {name!r}; '
                f'parameters under {prefix!r}: {near or "none"}')
        out.append((name, named[name]))
    return out


def flat_dot(a: Sequence[torch.Tensor],
             b: Sequence[torch.Tensor]) -> torch.Tensor:
    """Inner product of two lists of tensors block by block, summed.

    Args:
        a, b (Sequence[Tensor]): Blocks of equal shapes.

    Returns:
        Tensor: Scalar ``sum_b <a_b, b_b>``.
    """
    return sum((x * y).sum() for x, y in zip(a, b))
