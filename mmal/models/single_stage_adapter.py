"""Adapters for mmdet single-stage dense detectors (FCOS, RetinaNet, ...)."""
import contextlib
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from mmdet.models.utils import unpack_gt_instances
from torch import nn

from mmal.registry import AL_ADAPTERS
from mmal.utils.tensor_utils import per_image_entries
from .detection_adapter import DetectionAdapter, blank_image
from .output_layers import output_layers, weights_of


class TwiceDifferentiableFocalLoss(nn.Module):
    """mmdet's ``FocalLoss`` forced onto its pure-PyTorch path.

    On CUDA, mmdet computes the sigmoid focal loss with mmcv's op, whose
    backward cannot be differentiated again (Hessian-vector products fail).
    Given one-hot targets, mmdet takes its PyTorch implementation instead,
    which computes the same value on any device.
    """

    def __init__(self, focal_loss: nn.Module) -> None:
        super().__init__()
        self.focal_loss = focal_loss

    def forward(self, pred: torch.Tensor, target: torch.Tensor, *args,
                **kwargs) -> torch.Tensor:
        if target.dim() == 1:  # class indices, num_classes = background
            num_classes = pred.size(1)
            target = torch.nn.functional.one_hot(
                target, num_classes=num_classes + 1)[:, :num_classes]
            target = target.type_as(pred)
        return self.focal_loss(pred, target, *args, **kwargs)


class _RecordLevels(nn.Module):
    """Appended to a head tower: stores its output at every level."""

    def __init__(self) -> None:
        super().__init__()
        self.levels: List[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.levels.append(x)
        return x


class _ReplayLevels(nn.Module):
    """Stands for a head tower: returns its recorded output, level by level."""

    def __init__(self, levels: Sequence[torch.Tensor]) -> None:
        super().__init__()
        self.levels = list(levels)
        self.next = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.levels[self.next]
        self.next += 1
        return out


@contextlib.contextmanager
def _swap_towers(head: nn.Module, towers: Dict[str, nn.ModuleList]):
    old = {name: getattr(head, name) for name in towers}
    try:
        for name, tower in towers.items():
            setattr(head, name, tower)
        yield
    finally:
        for name, tower in old.items():
            setattr(head, name, tower)


@AL_ADAPTERS.register_module()
class SingleStageAdapter(DetectionAdapter):
    """Adapter for an mmdet ``SingleStageDetector`` with a dense head.

    θ lives in ``bbox_head`` only, so the backbone and neck run without
    autograd (their output does not depend on θ) and only the head is
    differentiated.

    For the fast path, the outputs of the head's conv towers
    (``cls_convs``, ``reg_convs`` in mmdet's anchor-free and anchor heads)
    are what a labeled image's HVP needs: they do not depend on θ, and only
    the last layers and the loss run per LiSSA step. Heads without such
    towers, or whose outputs the towers' replay does not reproduce (checked
    on the first batch), cache the trunk features instead.
    """

    towers: Tuple[str, ...] = ('cls_convs', 'reg_convs')
    head_module = 'bbox_head'

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._replay_ok: Optional[bool] = None

    def prepare(self, model: nn.Module, seed: int = 0) -> nn.Module:
        super().prepare(model, seed)
        head = self.unwrap(model).bbox_head
        loss_cls = getattr(head, 'loss_cls', None)
        if type(loss_cls).__name__ == 'FocalLoss':
            head.loss_cls = TwiceDifferentiableFocalLoss(loss_cls)
        return model

    def param_names_by_rule(self, model: nn.Module) -> List[str]:
        """θ of a head without a paper setting: the weights of the conv /
        linear layers that produce the head's outputs (per level where the
        head has per-level layers), found by running the head once on the
        trunk's features of a blank image (:func:`output_layers`); for FCOS
        this is the paper's ``conv_cls``, ``conv_reg``, ``conv_centerness``.
        """
        head = model.bbox_head
        with torch.no_grad():
            feats = self.extract_features(model, blank_image(model))
        return weights_of(
            output_layers(head, lambda: head(feats), 'bbox_head.'), model)

    def head_forward(self, model: nn.Module, feats):
        return model.bbox_head(feats)

    def predict(self, model: nn.Module, feats, outs, samples):
        metas = [s.metainfo for s in samples]
        return model.bbox_head.predict_by_feat(
            *outs, batch_img_metas=metas, rescale=False)

    def loss(self, model: nn.Module, feats, outs, batch: Dict,
             samples) -> torch.Tensor:
        gts, gts_ignore, metas = unpack_gt_instances(samples)
        with self.loss_scope(batch):
            losses = model.bbox_head.loss_by_feat(*outs, gts, metas,
                                                  gts_ignore)
        loss, _ = model.parse_losses(losses)
        return loss

    def embed(self, model: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
        """Core-set's image feature: the head's towers, pooled.

        The outputs of the classification and regression towers
        (``cls_convs``, ``reg_convs``; ``FCOSHead.forward_single`` discards
        them) are recorded during the head's forward, average-pooled over
        each level's positions, averaged over the levels, and the two
        branches concatenated (the paper's supplement): 2 x 256 = 512-d
        for FCOS R-50. The pooling includes the padding of the batch's
        common padded shape, as the head sees it. A head without such
        towers (one ``ModuleList`` of layers per tower, shared by the
        levels) gives the neck's output, pooled the same way.

        Returns:
            Tensor: (B, sum of the towers' channels).
        """
        model = self.unwrap(model)
        head = model.bbox_head
        if not self._has_towers(head):  # e.g. per-level towers (RTMDet)
            with torch.no_grad():
                feats = self.extract_features(model, inputs)
            return torch.stack([x.mean(dim=(2, 3)) for x in feats]).mean(0)
        with torch.no_grad():
            towers = self._record_towers(head,
                                         self.extract_features(model,
                                                               inputs))[1]
        return torch.cat([
            torch.stack([x.mean(dim=(2, 3)) for x in towers[name]]).mean(0)
            for name in self.towers
        ],
                         dim=1)

    def forward_with_towers(self, model: nn.Module, inputs: torch.Tensor):
        """The head's outputs with the per-level outputs of its towers.

        Args:
            model (nn.Module): The detector (possibly wrapped).
            inputs (Tensor): A preprocessed batch (B, 3, H, W).

        Returns:
            tuple: The head's outputs, and per tower name (``cls_convs``,
            ``reg_convs``) its outputs per level (B, C, H_l, W_l); for a
            head without towers shared by the levels, ``{'neck': levels}``
            (the features the head reads).
        """
        model = self.unwrap(model)
        head = model.bbox_head
        feats = self.extract_features(model, inputs)
        if not self._has_towers(head):
            return head(feats), {'neck': list(feats)}
        return self._record_towers(head, feats)

    # -- caching the towers' outputs ------------------------------------------
    def _record_towers(self, head: nn.Module, feats):
        """The head's outputs and its towers' per-level outputs."""
        record = {name: _RecordLevels() for name in self.towers}
        with _swap_towers(
                head, {
                    name: nn.ModuleList([*getattr(head, name), rec])
                    for name, rec in record.items()
                }):
            outs = head(feats)
        return outs, {name: rec.levels for name, rec in record.items()}

    def _has_towers(self, head: nn.Module) -> bool:
        """Whether the head has the towers as one ``ModuleList`` each,
        shared by the levels (not a list per level, as RTMDet's)."""
        towers = [getattr(head, name, None) for name in self.towers]
        return all(
            isinstance(t, nn.ModuleList) and not any(
                isinstance(m, nn.ModuleList) for m in t) for t in towers)

    def _head_from_towers(self, head: nn.Module,
                          towers: Dict[str, List[torch.Tensor]]):
        replay = {
            name: nn.ModuleList([_ReplayLevels(levels)])
            for name, levels in towers.items()
        }
        first = towers[self.towers[0]]
        with _swap_towers(head, replay):
            return head(list(first))

    def cache_entries(self, model: nn.Module, data: Dict) -> List[Dict]:
        """Per image, the outputs of the head's towers (see the class doc).

        Returns:
            list[dict]: ``towers`` (tower name -> per-level tensors
            (1, C, H_l, W_l)), ``sample``, ``sample_id``; or the trunk
            features (:meth:`BaseModelAdapter.cache_entries`) for heads
            without replayable towers.
        """
        model = self.unwrap(model)
        head = model.bbox_head
        if self._replay_ok is False or not self._has_towers(head):
            return super().cache_entries(model, data)
        feats = self.extract_features(model, data['inputs'])
        with torch.no_grad():
            if self._replay_ok is None:  # once: does the replay reproduce?
                self._replay_ok, towers = self._checked_towers(head, feats)
                if not self._replay_ok:
                    return super().cache_entries(model, data)
            else:
                towers = self._record_towers(head, feats)[1]
        return per_image_entries(data, 'towers', towers)

    def _checked_towers(self, head: nn.Module, feats) -> Tuple[bool, Dict]:
        """The towers' outputs, and whether the head run from them gives
        exactly the outputs of a plain run: as many tensors, each equal (a
        head whose forward does not go through the towers as expected, or
        fails with them swapped, is not replayed)."""
        try:
            outs, towers = self._record_towers(head, feats)
            again = self._head_from_towers(head, towers)
        except Exception:  # a layout the replay does not fit
            return False, {}
        plain, replayed = _flat(outs), _flat(again)
        return bool(plain) and len(plain) == len(replayed) and all(
            a.shape == b.shape and torch.equal(a, b)
            for a, b in zip(plain, replayed)), towers

    def cached_gt_loss(self, model: nn.Module, entry: Dict) -> torch.Tensor:
        if 'towers' not in entry:
            return super().cached_gt_loss(model, entry)
        model = self.unwrap(model)
        outs = self._head_from_towers(model.bbox_head, entry['towers'])
        return self.loss(model, None, outs,
                         dict(sample_id=[entry['sample_id']]),
                         [entry['sample']])


def _flat(obj) -> List[torch.Tensor]:
    if isinstance(obj, torch.Tensor):
        return [obj]
    return [t for o in obj for t in _flat(o)]


@AL_ADAPTERS.register_module()
class FCOSAdapter(SingleStageAdapter):
    """FCOS: θ = weights of the head's last convs (cls, reg, centerness).

    Biases are excluded and the LiSSA scales are ``[100, 8000, 5000]``, as
    in the official ISAL code.
    """

    default_param_names = ('bbox_head.conv_cls.weight',
                           'bbox_head.conv_reg.weight',
                           'bbox_head.conv_centerness.weight')
    default_lissa_scale = (100.0, 8000.0, 5000.0)
