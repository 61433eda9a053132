"""Torch twins of the PaddleClas ResNets: timm's `resnetN` (vb) and `resnetNd` (vd).

For depths 50 and up timm's model is PaddleClas's network as it stands. PaddleClas's ResNet18/34
(and their vd variants) also project the first block's 64 -> 64 shortcut, which timm's do not; their
twin is timm's model with that projection added to `layer1.0` as timm builds its other shortcuts
(`downsample_conv`: `downsample.0` conv + `downsample.1` BN; vd: `downsample_avg` at stride 1, an
Identity pool then `downsample.1` conv + `downsample.2` BN). A plain timm resnet18/34(d) checkpoint
lacks those tensors: it is not this network, and converting it towards Paddle is refused by name.
"""
import timm
from timm.models.resnet import downsample_avg, downsample_conv


def _timm(name: str, first_block_projected: bool = False, **kwargs):
    model = timm.create_model(name, pretrained=False, **kwargs)
    if first_block_projected:
        block = model.layer1[0]
        assert block.downsample is None, f"timm's {name} already projects layer1.0"
        channels = block.conv1.in_channels
        make = downsample_avg if name.endswith("d") else downsample_conv
        block.downsample = make(channels, channels, kernel_size=1, stride=1)
    return model


def ppcls_resnet18(**kwargs):
    return _timm("resnet18", first_block_projected=True, **kwargs)


def ppcls_resnet34(**kwargs):
    return _timm("resnet34", first_block_projected=True, **kwargs)


def ppcls_resnet50(**kwargs):
    return _timm("resnet50", **kwargs)


def ppcls_resnet101(**kwargs):
    return _timm("resnet101", **kwargs)


def ppcls_resnet152(**kwargs):
    return _timm("resnet152", **kwargs)


def ppcls_resnet18_vd(**kwargs):
    return _timm("resnet18d", first_block_projected=True, **kwargs)


def ppcls_resnet34_vd(**kwargs):
    return _timm("resnet34d", first_block_projected=True, **kwargs)


def ppcls_resnet50_vd(**kwargs):
    return _timm("resnet50d", **kwargs)


def ppcls_resnet101_vd(**kwargs):
    return _timm("resnet101d", **kwargs)


def ppcls_resnet152_vd(**kwargs):
    return _timm("resnet152d", **kwargs)
