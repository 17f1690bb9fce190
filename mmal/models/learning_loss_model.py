"""A target model (the detector or classifier) trained jointly with learning
loss's loss-prediction module (Yoo & Kweon, CVPR 2019)."""
import contextlib
import copy
from typing import Any, Dict, Iterator, List, Optional, Sequence, Union

import torch
from mmengine.model import BaseModel
from torch import nn

from mmal.registry import AL_ADAPTERS, MODELS, build_in_mmal_scope
from mmal.utils.tensor_utils import detach
from .auto_adapter import adapter_for
from .base_adapter import BaseModelAdapter
from .loss_prediction import LossPredictionModule, ranking_loss

#: Prefixes of the wrapper's own state-dict keys; any other key of a
#: checkpoint being loaded is the target model's (:class:`LearningLossModel`).
_OWN_PREFIXES = ('model.', 'loss_predictor.', 'data_preprocessor.')


def _flat_tensors(obj: Any) -> List[torch.Tensor]:
    if isinstance(obj, torch.Tensor):
        return [obj]
    if isinstance(obj, (list, tuple)):
        return [t for o in obj for t in _flat_tensors(o)]
    raise TypeError(f'expected tensors or tuples of them, got {type(obj)}')


def default_feature_modules(model: nn.Module) -> List[str]:
    """What feeds the loss-prediction module when ``feature_modules`` is
    not given: the neck's outputs (a detector's FPN levels, a classifier's
    pooled vector), else the backbone's."""
    for name in ('neck', 'backbone'):
        if isinstance(getattr(model, name, None), nn.Module):
            return [name]
    raise ValueError(f'{type(model).__name__} has no neck or backbone: set '
                     'feature_modules of mmal.LearningLossModel')


def probe_in_channels(model: nn.Module, names: Sequence[str]) -> List[int]:
    """Channels of each map the modules ``names`` output, from one
    ``extract_feat`` of a blank image (for modules whose attributes do not
    say, e.g. a ViT or MobileNet backbone)."""
    from .classifier_adapter import ImageClassifierAdapter
    modules = dict(model.named_modules())
    outputs: Dict[str, Any] = {}
    hooks = [
        modules[n].register_forward_hook(
            lambda m, i, out, n=n: outputs.__setitem__(n, out)) for n in names
    ]
    modes = {m: m.training for m in model.modules()}
    model.eval()

    def blanks() -> Iterator[torch.Tensor]:
        for size in (64, 224):
            blank = ImageClassifierAdapter.dummy_inputs(model, size)
            yield blank
            if blank.shape[1] != 3:  # the first conv reads more than the
                # image (a space-to-depth stem, YOLOX's Focus): an RGB image
                yield blank.new_zeros((1, 3) + tuple(blank.shape[2:]))

    try:
        for blank in blanks():
            outputs.clear()  # of a pass that failed
            try:
                with torch.no_grad():
                    model.extract_feat(blank)
                break
            except (RuntimeError, ValueError, AssertionError):
                continue  # e.g. an image too small for the backbone
    finally:
        for h in hooks:
            h.remove()
        for m, mode in modes.items():
            m.training = mode
    missing = [n for n in names if n not in outputs]
    if missing:
        raise ValueError(f'cannot tell the output channels of {missing} '
                         '(they did not run in extract_feat): set in_channels '
                         'of mmal.LearningLossModel')
    return [int(t.shape[1]) for n in names for t in _flat_tensors(outputs[n])]


def infer_in_channels(module: nn.Module, name: str) -> List[int]:
    """Channels of each map ``module`` outputs, from its attributes.

    An FPN-like neck (``out_channels`` and ``num_outs``): ``num_outs``
    maps of ``out_channels``; a ``Sequential`` of blocks (a ResNet stage):
    its last block's ``out_channels``; else the module's ``out_channels``,
    unless it reads several levels (``in_channels`` a list) without saying
    how many maps it outputs (RTMDet's and YOLOX's PAFPN necks).

    Raises:
        ValueError: None of these applies (set ``in_channels``, or probe
            the module: :func:`probe_in_channels`).
    """
    out = getattr(module, 'out_channels', None)
    num = getattr(module, 'num_outs', None)
    if isinstance(out, int) and isinstance(num, int):
        return [out] * num
    if isinstance(module, nn.Sequential) and len(module):
        last = getattr(module[-1], 'out_channels', None)
        if isinstance(last, int):
            return [last]
    levels = getattr(module, 'in_channels', None)
    if isinstance(out, int) and not isinstance(levels, (list, tuple)):
        return [out]
    raise ValueError(f'cannot tell the output channels of {name!r} '
                     f'({type(module).__name__}): set in_channels of '
                     'mmal.LearningLossModel to one value per feature map')


class _Recorder:
    """What one forward of the target model computed on the way."""

    def __init__(self) -> None:
        self.trunk: Any = None
        self.outputs: Dict[str, List[Any]] = {}


@MODELS.register_module()
class LearningLossModel(BaseModel):
    """A target model and learning loss's loss-prediction module, trained
    together (Yoo & Kweon, "Learning Loss for Active Learning").

    A model in ``MODELS``: a config sets ``model`` to it, wrapping the
    original model dict::

        model = dict(
            type='mmal.LearningLossModel',
            model=dict(type='FCOS', ...),      # the target model, unchanged
            feature_modules=['neck'])          # every FPN level

    Training (``mode='loss'``) returns the target model's own losses plus
    ``loss_ranking = loss_weight x`` :func:`ranking_loss` of the module's
    predictions against each image's true target loss (the adapter's
    :meth:`~mmal.models.BaseModelAdapter.per_image_losses`, detached; the
    head outputs that the target loss computed are reused, not recomputed).
    The module reads the outputs of ``feature_modules`` (names of
    submodules of the target model; a module returning several maps, like an
    FPN, gives one level per map). With ``detach_features`` these enter the
    module detached: the ranking loss then trains the module only, never
    the target model (:class:`~mmal.engine.LearningLossStopGradHook` switches
    it at an epoch). ``mode='predict'`` and ``'tensor'`` are the
    target model's, so evaluators, visualisers and ``tools/test.py`` work as
    before. :meth:`predict_loss` gives the predicted losses that
    :class:`~mmal.selectors.LearningLossSelector` ranks by.

    **Parameter names.** The target model's parameters are under ``model.``
    (``model.backbone.conv1.weight``), the module's under
    ``loss_predictor.``. Loading a checkpoint of the plain target model
    (``load_from``, ``init_cfg`` of type ``Pretrained``) works: keys
    without one of these prefixes are read as the target model's, and the
    module keeps its initialisation. To load this model's checkpoint into
    the plain target model, drop the prefix:
    ``load_checkpoint(model, path, revise_keys=[(r'^model\\.', '')])``.

    Args:
        model (dict | nn.Module): The target model's config (a detector of
            mmdet or a classifier of mmpretrain), or the model itself.
        feature_modules (Sequence[str], optional): Submodules whose outputs
            feed the module, e.g. ``['neck']`` (the FPN levels of a
            detector) or ``['backbone.layer1', ..., 'backbone.layer4']``
            (the 4 stages of an mmpretrain ResNet, the paper's). Defaults
            to the neck, else the backbone (:func:`default_feature_modules`).
        in_channels (Sequence[int], optional): Channels of each map.
            Defaults to what the modules' attributes say
            (:func:`infer_in_channels`), else to what one ``extract_feat``
            of a blank image gives (:func:`probe_in_channels`).
        hidden_channels (int): Width of each level's FC. Defaults to 128.
        margin (float): ξ of the ranking loss. Defaults to 1.
        loss_weight (float): λ, the ranking loss's weight. Defaults to 1.
        detach_features (bool): Initial stop-gradient state. Defaults to
            False.
        adapter (dict, optional): The adapter giving per-image losses
            (``mmal.AL_ADAPTERS``). Defaults to the one of the target
            model's family (:func:`~mmal.models.auto_adapter.adapter_for`).
        data_preprocessor (dict, optional): Given to the target model when
            its own config has none (mmengine's Runner passes a config's
            top-level ``data_preprocessor`` here).
        init_cfg (dict, optional): Initialisation of the whole model.
    """

    def __init__(self,
                 model: Union[dict, nn.Module],
                 feature_modules: Optional[Sequence[str]] = None,
                 in_channels: Optional[Sequence[int]] = None,
                 hidden_channels: int = 128,
                 margin: float = 1.0,
                 loss_weight: float = 1.0,
                 detach_features: bool = False,
                 adapter: Optional[dict] = None,
                 data_preprocessor: Optional[Union[dict, nn.Module]] = None,
                 init_cfg: Optional[dict] = None) -> None:
        if isinstance(model, nn.Module):  # wrapped as it is
            target = model
        else:
            model = copy.deepcopy(model)
            if data_preprocessor is not None:
                model.setdefault('data_preprocessor', data_preprocessor)
            target = MODELS.build(model)
        super().__init__(
            data_preprocessor=target.data_preprocessor, init_cfg=init_cfg)
        self.model = target
        self.feature_modules = list(
            default_feature_modules(target) if feature_modules is
            None else feature_modules)
        if not self.feature_modules:
            raise ValueError('feature_modules must name at least one module')
        modules = dict(target.named_modules())
        missing = [n for n in self.feature_modules if n not in modules]
        if missing:
            raise ValueError(
                f'feature_modules {missing} are not submodules of '
                f'{type(target).__name__}; some of its modules: '
                f'{[n for n in modules if n and n.count(".") < 2][:20]}')
        if in_channels is None:
            try:
                in_channels = [
                    c for n in self.feature_modules
                    for c in infer_in_channels(modules[n], n)
                ]
            except ValueError:  # the attributes do not say: run it once
                in_channels = probe_in_channels(target, self.feature_modules)
        # on a side copy of torch's generator: the target model's own
        # initialisation (init_weights, later) then draws what it draws
        # without the module, so a seed gives the plain config's target model
        with torch.random.fork_rng(devices=[]):
            self.loss_predictor = LossPredictionModule(in_channels,
                                                       hidden_channels)
        self.margin = float(margin)
        self.loss_weight = float(loss_weight)
        self.detach_features = bool(detach_features)
        self.adapter = self._build_adapter(adapter)
        # whose output is the head outputs, recorded for per_image_losses
        head = self.adapter.head_module
        self._head_module = head if head in modules else None
        self._register_load_state_dict_pre_hook(self._target_keys_hook)

    @property
    def target_model(self) -> nn.Module:
        """The wrapped target model (what adapters work on)."""
        return self.model

    def _build_adapter(self, cfg: Optional[dict]) -> BaseModelAdapter:
        if cfg is None:  # the target model's family's (auto_adapter)
            try:
                cfg = adapter_for(dict(type=type(self.model)))
            except ValueError as e:
                raise ValueError(
                    'mmal.LearningLossModel needs an adapter giving per-image '
                    f'losses: set adapter=dict(type=...); {e}') from e
        return build_in_mmal_scope(dict(cfg), AL_ADAPTERS)

    @staticmethod
    def _target_keys_hook(state_dict: dict, prefix: str, *args) -> None:
        """Read a plain target model's keys as ``model.``'s."""
        for key in list(state_dict):
            if not key.startswith(prefix):
                continue
            rest = key[len(prefix):]
            if not rest.startswith(_OWN_PREFIXES):
                state_dict[f'{prefix}model.{rest}'] = state_dict.pop(key)

    # -- recording what the target model computes -----------------------------
    @contextlib.contextmanager
    def _recording(self, head: bool) -> Iterator[_Recorder]:
        """Record the trunk's output (``extract_feat``), every output of
        ``feature_modules`` and (``head``) of the adapter's head module."""
        rec = _Recorder()
        names = list(self.feature_modules)
        if head and self._head_module is not None:
            names.append(self._head_module)
        handles = []
        for name in dict.fromkeys(names):
            rec.outputs[name] = []
            module = self.model.get_submodule(name)
            handles.append(
                module.register_forward_hook(
                    lambda m, i, o, name=name: rec.outputs[name].append(o)))
        extract = self.model.extract_feat

        def recorded_extract(*args, **kwargs):
            rec.trunk = extract(*args, **kwargs)
            return rec.trunk

        self.model.extract_feat = recorded_extract  # an instance attribute
        try:
            yield rec
        finally:
            del self.model.extract_feat
            for h in handles:
                h.remove()

    def _features(self, rec: _Recorder) -> List[torch.Tensor]:
        feats = []
        for name in self.feature_modules:
            calls = rec.outputs[name]
            if len(calls) != 1:
                raise RuntimeError(
                    f'feature module {name!r} ran {len(calls)} times in one '
                    'forward of the target model; learning loss needs exactly '
                    'one output per image batch')
            feats += _flat_tensors(calls[0])
        if self.detach_features:
            feats = [f.detach() for f in feats]
        return feats

    # -- BaseModel ----------------------------------------------------------
    def forward(
            self,
            inputs: torch.Tensor,
            data_samples: Optional[list] = None,
            mode: str = 'tensor') -> Union[Dict[str, torch.Tensor], list, Any]:
        """``'loss'``: the target model's losses and ``loss_ranking``;
        ``'predict'`` / ``'tensor'``: the target model's own."""
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        return self.model(inputs, data_samples, mode=mode)

    def loss(self, inputs: torch.Tensor,
             data_samples: list) -> Dict[str, torch.Tensor]:
        """The target model's losses plus the weighted ranking loss.

        Args:
            inputs (Tensor): Preprocessed images (B, C, H, W).
            data_samples (list): The batch's samples with labels (B).

        Returns:
            dict[str, Tensor]: The target model's loss terms (a term named
            ``loss``, mmpretrain's, renamed ``loss_task``: mmengine names
            the total ``loss``) and ``loss_ranking``.
        """
        with self._recording(head=True) as rec:
            losses = dict(self.model.loss(inputs, data_samples))
        if 'loss' in losses:  # mmpretrain's key: 'loss' is the total's name
            losses['loss_task'] = losses.pop('loss')
        if rec.trunk is None:
            raise RuntimeError(
                f'{type(self.model).__name__}.loss did not call extract_feat;'
                ' mmal.LearningLossModel needs it for the per-image losses')
        pred = self.loss_predictor(self._features(rec))
        head_calls = rec.outputs.get(self._head_module or '', [])
        outs = head_calls[0] if len(head_calls) == 1 else None
        target = self.adapter.per_image_losses(self.model, detach(rec.trunk),
                                               outs, data_samples)
        losses['loss_ranking'] = self.loss_weight * ranking_loss(
            pred, target.to(pred.device), self.margin)
        return losses

    @torch.no_grad()
    def predict_loss(self, inputs: torch.Tensor) -> torch.Tensor:
        """Predicted target loss of each image of a preprocessed batch.

        Only what ``feature_modules`` need runs: the trunk
        (``extract_feat``), or the whole target-model forward when a feature
        module lies beyond it.

        Args:
            inputs (Tensor): Preprocessed images (B, C, H, W).

        Returns:
            Tensor: (B, ) predicted losses.
        """
        with self._recording(head=False) as rec:
            self.model.extract_feat(inputs)
            if any(not rec.outputs[n] for n in self.feature_modules):
                for calls in rec.outputs.values():
                    calls.clear()
                self.model(inputs, None, mode='tensor')
            feats = self._features(rec)
        return self.loss_predictor(feats)
