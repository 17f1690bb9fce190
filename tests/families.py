"""The detector families beyond the paper's FCOS and Faster R-CNN at test
size: each family's configs/isal_<family>_shapes.py with its head narrowed
(2 channels) so that an explicit Hessian of θ stays small, and the θ that
the rule (the weights of the layers producing the head's outputs) must find
in it; :func:`hessian_blocks` splits such a Hessian by θ's parameters."""
import itertools


def hessian_blocks(H, sizes):
    """``blocks[i][j]``: the block of an explicit Hessian ``H`` (n, n) over
    θ's parameters ``i`` and ``j`` (``sizes``: their numbers of entries, in
    θ's order)."""
    edges = [0, *itertools.accumulate(sizes)]
    assert H.shape == (edges[-1], edges[-1])
    return [[H[a:b, c:d] for c, d in zip(edges, edges[1:])]
            for a, b in zip(edges, edges[1:])]


#: family -> (config, overrides, θ's parameter names)
FAMILIES = {
    'retinanet': ('isal_retinanet_shapes.py', {
        'model.bbox_head.feat_channels': 2,
        'model.bbox_head.anchor_generator.scales_per_octave': 1,
        'model.bbox_head.anchor_generator.ratios': [1.0],
    }, ['bbox_head.retina_cls.weight', 'bbox_head.retina_reg.weight']),
    'atss': ('isal_atss_shapes.py', {
        'model.bbox_head.feat_channels': 2,
        'model.bbox_head.norm_cfg.num_groups': 2,
    }, [
        'bbox_head.atss_cls.weight', 'bbox_head.atss_reg.weight',
        'bbox_head.atss_centerness.weight'
    ]),
    'gfl': ('isal_gfl_shapes.py', {
        'model.bbox_head.feat_channels': 2,
        'model.bbox_head.norm_cfg.num_groups': 2,
        'model.bbox_head.reg_max': 2,
    }, ['bbox_head.gfl_cls.weight', 'bbox_head.gfl_reg.weight']),
    'rtmdet': ('isal_rtmdet_shapes.py', {
        'model.bbox_head.feat_channels': 2,
    }, [
        f'bbox_head.rtm_{b}.{i}.weight' for b in ('cls', 'reg')
        for i in range(3)
    ]),
    'yolox': ('isal_yolox_shapes.py', {
        'model.bbox_head.feat_channels': 2,
    }, [
        f'bbox_head.multi_level_conv_{b}.{i}.weight'
        for b in ('cls', 'reg', 'obj') for i in range(3)
    ]),
}
