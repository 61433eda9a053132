"""Paddle twins of the ResNets: paddle.vision's own definitions."""
from ...frameworks import quiet_paddle_import

_models = quiet_paddle_import().vision.models


def resnet18(**kwargs):
    return _models.resnet18(**kwargs)


def resnet34(**kwargs):
    return _models.resnet34(**kwargs)


def resnet50(**kwargs):
    return _models.resnet50(**kwargs)


def resnet101(**kwargs):
    return _models.resnet101(**kwargs)


def resnet152(**kwargs):
    return _models.resnet152(**kwargs)
