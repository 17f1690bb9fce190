"""Registries of mmal.

mmal's registries are children of mmengine's root registries, so configs
built by an mmdet / mmpretrain ``Runner`` can refer to mmal's objects with the
``mmal.`` prefix (``type='mmal.PoolSubsetDataset'``). mmal also owns four root
registries for objects that mmengine has no notion of:

* ``SELECTORS``: query strategies, subclasses of
  :class:`mmal.selectors.BaseSelector` implementing
  ``rank(context: SelectionContext) -> SelectionResult``.
* ``INFLUENCE_SOLVERS``: solvers for ``s_test = H^-1 v``, subclasses of
  :class:`mmal.influence.DampedSolver` implementing
  ``estimate(v, problem: HessianProblem) -> list[Tensor]``.
* ``AL_ADAPTERS``: per-model adapters, subclasses of
  :class:`mmal.models.BaseModelAdapter`: the parameters θ, feature
  extraction, the θ-dependent forward, predictions, per-image losses and
  pseudo labels.
* ``TASKS``: what differs between detection and classification
  (:class:`mmal.tasks.BaseTask`): annotation loading, metric and unit,
  annotation cost, demo data.
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
TASKS = Registry(
    'active learning task',
    scope='mmal',
    locations=['mmal.tasks'],
    build_func=build_in_mmal_scope)
AL_ADAPTERS = Registry(
    'active learning model adapter',
    scope='mmal',
    locations=['mmal.models'],
    build_func=build_in_mmal_scope)

#: Every registry above; importing their ``locations`` registers all of
#: mmal (:func:`mmal.utils.register_all_modules`).
MMAL_REGISTRIES = (DATASETS, TRANSFORMS, MODELS, HOOKS, LOOPS, SELECTORS,
                   INFLUENCE_SOLVERS, TASKS, AL_ADAPTERS)
