"""Torch twins of the torchvision zoo: torchvision's own definitions, built without downloading weights."""
import torchvision.models as _models


def _build(name: str, **kwargs):
    return getattr(_models, name)(weights=None, **kwargs)


def alexnet(**kwargs):
    return _build("alexnet", **kwargs)


def vgg11(**kwargs):
    return _build("vgg11", **kwargs)


def vgg11_bn(**kwargs):
    return _build("vgg11_bn", **kwargs)


def vgg13(**kwargs):
    return _build("vgg13", **kwargs)


def vgg13_bn(**kwargs):
    return _build("vgg13_bn", **kwargs)


def vgg16(**kwargs):
    return _build("vgg16", **kwargs)


def vgg16_bn(**kwargs):
    return _build("vgg16_bn", **kwargs)


def vgg19(**kwargs):
    return _build("vgg19", **kwargs)


def vgg19_bn(**kwargs):
    return _build("vgg19_bn", **kwargs)


def densenet121(**kwargs):
    return _build("densenet121", **kwargs)


def densenet161(**kwargs):
    return _build("densenet161", **kwargs)


def densenet169(**kwargs):
    return _build("densenet169", **kwargs)


def densenet201(**kwargs):
    return _build("densenet201", **kwargs)


def mobilenet_v2(**kwargs):
    return _build("mobilenet_v2", **kwargs)


def mobilenet_v3_small(**kwargs):
    return _build("mobilenet_v3_small", **kwargs)


def mobilenet_v3_large(**kwargs):
    return _build("mobilenet_v3_large", **kwargs)


def shufflenet_v2_x0_5(**kwargs):
    return _build("shufflenet_v2_x0_5", **kwargs)


def shufflenet_v2_x1_0(**kwargs):
    return _build("shufflenet_v2_x1_0", **kwargs)


def shufflenet_v2_x1_5(**kwargs):
    return _build("shufflenet_v2_x1_5", **kwargs)


def inception_v3(**kwargs):
    # Paddle's has neither the auxiliary classifier nor the input re-normalisation; torchvision's
    # checkpoints carry AuxLogits.*, which the table drops on the way to Paddle.
    return _build("inception_v3", aux_logits=False, transform_input=False, init_weights=False, **kwargs)


def resnext50_32x4d(**kwargs):
    return _build("resnext50_32x4d", **kwargs)


def resnext101_64x4d(**kwargs):
    return _build("resnext101_64x4d", **kwargs)


def wide_resnet50_2(**kwargs):
    return _build("wide_resnet50_2", **kwargs)


def wide_resnet101_2(**kwargs):
    return _build("wide_resnet101_2", **kwargs)
