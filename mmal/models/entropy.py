"""Entropies of model outputs (nats), the uncertainty of entropy sampling."""
import torch


def binary_entropy(p: torch.Tensor) -> torch.Tensor:
    """Entropy of Bernoulli variables, element-wise.

    ``H(p) = -p ln p - (1 - p) ln(1 - p)``, with ``0 ln 0 = 0``: 0 at
    ``p`` = 0 and 1, ``ln 2`` at 0.5.

    Args:
        p (Tensor): Probabilities in [0, 1], any shape.

    Returns:
        Tensor: Same shape as ``p``.
    """
    return torch.special.entr(p) + torch.special.entr(1 - p)


def categorical_entropy(p: torch.Tensor) -> torch.Tensor:
    """Entropy of categorical distributions, ``-sum_c p_c ln p_c``.

    Args:
        p (Tensor): Probabilities (..., C) summing to 1 over the last
            dimension.

    Returns:
        Tensor: Shape (...).
    """
    return torch.special.entr(p).sum(dim=-1)
