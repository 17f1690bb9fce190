# ISAL on a tiny ConvNeXt, the built-in classification demo (generated
# shapes; see _base_/convnext-tiny_shapes-cls.py). al_cfg names the selector
# only: the adapter (chosen from the model's type), θ (the head's last
# linear layer, found by rule) and LiSSA's scale come from the model.
_base_ = './_base_/convnext-tiny_shapes-cls.py'

al_cfg = dict(
    selector=dict(
        type='mmal.InfluenceSelector',
        solver=dict(type='mmal.LiSSA', depth=40, repeats=2)))
