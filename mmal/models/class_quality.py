"""Where PPAL's per-class quality is kept: the detector head's buffer
``class_quality`` (:class:`~mmal.engine.ClassQualityHook` registers and
updates it during training; checkpoints save it with the weights)."""
from typing import List, Optional

import torch
from mmengine.runner.checkpoint import CheckpointLoader
from torch import nn

from mmal.utils.checkpoint import trusted_checkpoint_loading
from .base_adapter import BaseModelAdapter

#: The head buffer's name, and its key's end in a checkpoint's state_dict.
QUALITY_BUFFER = 'class_quality'
QUALITY_KEY = 'bbox_head.' + QUALITY_BUFFER
#: Every buffer the hook adds to the head (the moving average's momenta).
HOOK_BUFFERS = (QUALITY_BUFFER, 'class_momentum')


def bbox_head_of(model: nn.Module) -> Optional[nn.Module]:
    """The detector's ``bbox_head`` under DDP-style and learning-loss
    wrappers; None when it has none."""
    head = getattr(BaseModelAdapter.unwrap(model), 'bbox_head', None)
    return head if isinstance(head, nn.Module) else None


def add_quality_buffers(model: nn.Module, state_dict: dict) -> List[str]:
    """Give a freshly built detector's head the class-quality buffers
    that ``state_dict`` holds, so that loading it keeps them.

    :class:`~mmal.engine.ClassQualityHook` adds them to the head during
    training; a model built from the config lacks them, and loading would
    drop them as unexpected keys.

    Args:
        model (nn.Module): The bare detector.
        state_dict (dict): The checkpoint's ``state_dict``.

    Returns:
        list[str]: The buffers added (their state_dict keys).
    """
    head = getattr(model, 'bbox_head', None)
    added = []
    for name in HOOK_BUFFERS:
        key = 'bbox_head.' + name
        if head is not None and key in state_dict and not hasattr(head, name):
            head.register_buffer(name, torch.zeros_like(state_dict[key]))
            added.append(key)
    return added


def class_quality_of(
        model: Optional[nn.Module],
        checkpoint: Optional[str] = None) -> Optional[torch.Tensor]:
    """PPAL's per-class quality of a trained detector.

    Args:
        model (nn.Module, optional): The detector (wrapped or not).
        checkpoint (str, optional): A checkpoint of it, read when the
            model's head has no ``class_quality`` buffer (a detector built
            afresh and loaded non-strictly drops it).

    Returns:
        Tensor | None: The quality, shape (C,) (a CPU copy), from the head's
        buffer, else from the checkpoint's ``state_dict`` key ending in
        ``bbox_head.class_quality``; None when neither has it.
    """
    head = None if model is None else bbox_head_of(model)
    buffer = getattr(head, 'class_quality', None)
    if isinstance(buffer, torch.Tensor):
        return buffer.detach().cpu().clone()
    if checkpoint is None:
        return None
    with trusted_checkpoint_loading():
        ckpt = CheckpointLoader.load_checkpoint(checkpoint, map_location='cpu')
    state = ckpt.get('state_dict', ckpt) if isinstance(ckpt, dict) else {}
    keys = [
        k for k in state if k == QUALITY_KEY or k.endswith('.' + QUALITY_KEY)
    ]
    if not keys:
        return None
    if len(keys) > 1 and QUALITY_KEY not in keys:
        raise ValueError(f'{checkpoint}: several class qualities '
                         f'({", ".join(sorted(keys))})')
    key = QUALITY_KEY if QUALITY_KEY in keys else keys[0]
    return state[key].detach().cpu().clone()
