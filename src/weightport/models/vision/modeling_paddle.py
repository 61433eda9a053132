"""Paddle twins of the torchvision zoo: paddle.vision's own definitions of the same architectures."""
from ...frameworks import quiet_paddle_import

_models = quiet_paddle_import().vision.models


def alexnet(**kwargs):
    return _models.alexnet(**kwargs)


def vgg11(**kwargs):
    return _models.vgg11(**kwargs)


def vgg11_bn(**kwargs):
    return _models.vgg11(batch_norm=True, **kwargs)


def vgg13(**kwargs):
    return _models.vgg13(**kwargs)


def vgg13_bn(**kwargs):
    return _models.vgg13(batch_norm=True, **kwargs)


def vgg16(**kwargs):
    return _models.vgg16(**kwargs)


def vgg16_bn(**kwargs):
    return _models.vgg16(batch_norm=True, **kwargs)


def vgg19(**kwargs):
    return _models.vgg19(**kwargs)


def vgg19_bn(**kwargs):
    return _models.vgg19(batch_norm=True, **kwargs)


def densenet121(**kwargs):
    return _models.densenet121(**kwargs)


def densenet161(**kwargs):
    return _models.densenet161(**kwargs)


def densenet169(**kwargs):
    return _models.densenet169(**kwargs)


def densenet201(**kwargs):
    return _models.densenet201(**kwargs)


def mobilenet_v2(**kwargs):
    return _models.mobilenet_v2(**kwargs)


def mobilenet_v3_small(**kwargs):
    return _models.mobilenet_v3_small(**kwargs)


def mobilenet_v3_large(**kwargs):
    return _models.mobilenet_v3_large(**kwargs)


def shufflenet_v2_x0_5(**kwargs):
    return _models.shufflenet_v2_x0_5(**kwargs)


def shufflenet_v2_x1_0(**kwargs):
    return _models.shufflenet_v2_x1_0(**kwargs)


def shufflenet_v2_x1_5(**kwargs):
    return _models.shufflenet_v2_x1_5(**kwargs)


def inception_v3(**kwargs):
    return _models.inception_v3(**kwargs)


def resnext50_32x4d(**kwargs):
    return _models.resnext50_32x4d(**kwargs)


def resnext101_64x4d(**kwargs):
    return _models.resnext101_64x4d(**kwargs)


def wide_resnet50_2(**kwargs):
    return _models.wide_resnet50_2(**kwargs)


def wide_resnet101_2(**kwargs):
    return _models.wide_resnet101_2(**kwargs)
