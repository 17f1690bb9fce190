"""Learning loss's loss-prediction module and its ranking loss
(Yoo & Kweon, "Learning Loss for Active Learning", CVPR 2019)."""
from typing import List, Sequence

import torch
from mmengine.model import BaseModule
from torch import nn

from mmal.registry import MODELS


@MODELS.register_module()
class LossPredictionModule(BaseModule):
    """Predicts an image's target loss from feature maps of the target model.

    Per feature level: global average pooling -> ``Linear(C_l, 128)`` ->
    ReLU; the levels' vectors are concatenated and ``Linear(128 L, 1)``
    gives the predicted loss (the paper's module).

    Args:
        in_channels (Sequence[int]): Channels ``C_l`` of each level, in the
            order the levels are given to :meth:`forward`.
        hidden_channels (int): Width of each level's FC. Defaults to 128.
        init_cfg (dict, optional): mmengine initialisation config.
    """

    def __init__(self,
                 in_channels: Sequence[int],
                 hidden_channels: int = 128,
                 init_cfg=None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.in_channels = [int(c) for c in in_channels]
        if not self.in_channels or min(self.in_channels) < 1:
            raise ValueError('in_channels must be a non-empty list of '
                             f'positive channel counts, got {in_channels}')
        self.levels = nn.ModuleList(
            nn.Sequential(nn.Linear(c, hidden_channels), nn.ReLU())
            for c in self.in_channels)
        self.out = nn.Linear(hidden_channels * len(self.in_channels), 1)

    def forward(self, feats: Sequence[torch.Tensor]) -> torch.Tensor:
        """Predicted losses of a batch.

        Args:
            feats (Sequence[Tensor]): One map (B, C_l, H_l, W_l) (or an
                already pooled (B, C_l)) per level.

        Returns:
            Tensor: (B, ) predicted losses.
        """
        if len(feats) != len(self.levels):
            raise ValueError(
                f'the loss-prediction module has {len(self.levels)} levels '
                f'(in_channels={self.in_channels}) but got {len(feats)} '
                'feature maps: set in_channels to match feature_modules')
        pooled: List[torch.Tensor] = []
        for i, (x, fc) in enumerate(zip(feats, self.levels)):
            if x.dim() > 2:
                x = x.flatten(2).mean(dim=2)
            if x.shape[1] != self.in_channels[i]:
                raise ValueError(
                    f'feature level {i} has {x.shape[1]} channels, the '
                    f'loss-prediction module expects {self.in_channels[i]} '
                    f'(in_channels={self.in_channels})')
            pooled.append(fc(x))
        return self.out(torch.cat(pooled, dim=1)).squeeze(1)


def ranking_loss(pred: torch.Tensor,
                 target: torch.Tensor,
                 margin: float = 1.0) -> torch.Tensor:
    """Learning loss's pair-wise ranking loss on the pairs (i, B-1-i).

    For each pair ``(i, j = B-1-i)``, ``i < B // 2`` (the middle image of
    an odd batch has no partner)::

        max(0, -sign(l_i - l_j) * (l̂_i - l̂_j) + margin)

    averaged over the pairs. ``target`` (the true losses ``l``) is
    detached: only the predictions ``l̂`` receive gradients. Two equal
    targets (``sign = 0``) contribute the constant ``margin``.

    Args:
        pred (Tensor): (B, ) predicted losses ``l̂``.
        target (Tensor): (B, ) true per-image losses ``l``.
        margin (float): ξ. Defaults to 1 (the paper).

    Returns:
        Tensor: Scalar; 0 (still attached to ``pred``) when B < 2.
    """
    if pred.shape != target.shape or pred.dim() != 1:
        raise ValueError('pred and target must both be (B, ), got '
                         f'{tuple(pred.shape)} and {tuple(target.shape)}')
    half = pred.shape[0] // 2
    if half == 0:
        return pred.sum() * 0
    target = target.detach().to(pred.dtype)
    diff_pred = (pred - pred.flip(0))[:half]
    diff_target = (target - target.flip(0))[:half]
    return torch.clamp(
        -torch.sign(diff_target) * diff_pred + margin, min=0).mean()
