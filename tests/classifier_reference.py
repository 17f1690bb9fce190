"""Inputs shared by the classifier tests: random images as mmal's loaders
give them, stacked as the fast path stacks them, and random directions."""
import copy

import torch
from mmpretrain.structures import DataSample
from torch import nn

from mmal.datasets.shape_batches import same_shape_batches


def image_batches(num: int,
                  seed: int,
                  size: int,
                  num_classes: int,
                  labeled: bool = True,
                  prefix: str = 'img') -> list:
    """Collated batches of one random uint8 image (3, size, size) each, as
    mmal's id loaders give them (``inputs``, ``data_samples``,
    ``sample_id``); unlabeled samples carry no ``gt_label``."""
    gen = torch.Generator().manual_seed(seed)
    out = []
    for i in range(num):
        img = torch.randint(
            0, 256, (3, size, size), generator=gen, dtype=torch.uint8)
        sample = DataSample()
        if labeled:
            sample.set_gt_label(
                int(torch.randint(num_classes, (1, ), generator=gen)))
        out.append(
            dict(
                inputs=[img],
                data_samples=[sample],
                sample_id=[f'{prefix}{i}']))
    return out


def batched(model, adapter, batches: list) -> dict:
    """All ``batches`` preprocessed and stacked into one batch, as the
    selector's fast path does (:func:`same_shape_batches`)."""
    data = next(
        same_shape_batches(
            lambda b: adapter.preprocess(model, copy.deepcopy(b)), batches,
            len(batches), adapter.image_key))
    assert len(data['sample_id']) == len(batches)
    return data


def random_like(params, seed: int) -> list:
    """A seeded float64 normal tensor shaped like each of ``params``."""
    gen = torch.Generator().manual_seed(seed)
    return [
        torch.randn(p.shape, generator=gen, dtype=torch.float64)
        for p in params
    ]


def randomise_batch_norm(model: nn.Module) -> None:
    """Non-trivial running statistics and affine parameters in every batch
    norm (eval mode then uses them: an untrained model's are 0 and 1).
    Call under ``torch.no_grad()``."""
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.running_mean.normal_(0, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.uniform_(0.5, 1.5)
            m.bias.normal_(0, 0.2)
