"""Torch twins of the ResNets: timm's own definitions."""
import timm


def _timm(name: str, **kwargs):
    return timm.create_model(name, pretrained=False, **kwargs)


def resnet18(**kwargs):
    return _timm("resnet18", **kwargs)


def resnet34(**kwargs):
    return _timm("resnet34", **kwargs)


def resnet50(**kwargs):
    return _timm("resnet50", **kwargs)


def resnet101(**kwargs):
    return _timm("resnet101", **kwargs)


def resnet152(**kwargs):
    return _timm("resnet152", **kwargs)
