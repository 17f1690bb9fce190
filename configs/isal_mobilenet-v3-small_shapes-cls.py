# ISAL on MobileNetV3-Small, the built-in classification demo (generated
# shapes; see _base_/mobilenet-v3-small_shapes-cls.py). θ, LiSSA's scale
# and the closed form come from the adapter and the model.
_base_ = './_base_/mobilenet-v3-small_shapes-cls.py'

al_cfg = dict(
    # TODO auto: drop once the driver picks the adapter from the model type
    adapter=dict(type='mmal.ImageClassifierAdapter'),
    selector=dict(
        type='mmal.InfluenceSelector',
        solver=dict(type='mmal.LiSSA', depth=40, repeats=2)))
