"""Registries of mmal.

mmal's registries are children of mmengine's root registries, so configs
built by an mmdet / mmpretrain ``Runner`` can refer to mmal's objects with the
``mmal.`` prefix (``type='mmal.PoolSubsetDataset'``). mmal also owns three root
registries for objects that mmengine has no notion of:

* ``SELECTORS``: query strategies. A registered class must provide
  ``rank(context) -> SelectionResult`` (see :mod:`mmal.selectors.base`).
* ``INFLUENCE_SOLVERS``: solvers for ``s_test = H^-1 v``. A registered class
  must provide ``solve(v, hvp_fn, sample_ids) -> list[Tensor]``
  (see :mod:`mmal.influence.lissa`).
* ``AL_ADAPTERS``: per-model adapters that tell the influence machinery which
  head parameters to use, how to get pseudo labels and a per-image loss
  (see :mod:`mmal.models.base_adapter`).
"""
from mmengine.registry import DATASETS as MMENGINE_DATASETS
from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmengine.registry import LOOPS as MMENGINE_LOOPS
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import TRANSFORMS as MMENGINE_TRANSFORMS
from mmengine.registry import Registry, build_from_cfg


def build_in_mmal_scope(cfg: dict, registry: Registry, default_args=None):
    """Build from one of mmal's own root registries.

    Those registries are not in mmdet's registry tree, so building them while
    mmdet is the default scope would make mmengine search the wrong tree
    (and warn); ``_scope_='mmal'`` pins the search to mmal.
    """
    cfg = dict(cfg)
    cfg.setdefault('_scope_', 'mmal')
    return build_from_cfg(cfg, registry, default_args)


DATASETS = Registry(
    'dataset', parent=MMENGINE_DATASETS, locations=['mmal.datasets'])
TRANSFORMS = Registry(
    'transform', parent=MMENGINE_TRANSFORMS, locations=['mmal.datasets'])
MODELS = Registry('model', parent=MMENGINE_MODELS, locations=['mmal.models'])
HOOKS = Registry('hook', parent=MMENGINE_HOOKS, locations=['mmal.engine'])
LOOPS = Registry('loop', parent=MMENGINE_LOOPS, locations=['mmal.engine'])

SELECTORS = Registry(
    'selector',
    scope='mmal',
    locations=['mmal.selectors'],
    build_func=build_in_mmal_scope)
INFLUENCE_SOLVERS = Registry(
    'influence solver',
    scope='mmal',
    locations=['mmal.influence'],
    build_func=build_in_mmal_scope)
AL_ADAPTERS = Registry(
    'active learning model adapter',
    scope='mmal',
    locations=['mmal.models'],
    build_func=build_in_mmal_scope)
