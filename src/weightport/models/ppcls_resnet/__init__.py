"""PaddleClas ResNets (vb and vd) in PaddleClas's layout, against timm's ResNets.

The Paddle twins port PaddleClas's `ppcls/arch/backbone/legendary_models/resnet.py` (@d178931):
`stem.N`, one flat `blocks.N` Sequential, ConvBNLayer's `.conv` / `.bn` (the old paddle.nn.BatchNorm),
`short` shortcuts, `fc`, so that PaddleClas's released `.pdparams` load strictly. The torch twins
are timm's `resnetN` / `resnetNd`. For depths 50 and up the two are the same network tensor for
tensor. PaddleClas's ResNet18/34 (vb and vd) also project the first block's 64 -> 64 shortcut
(its default `use_first_short_conv=True`), which timm's do not: their torch twin is timm's model with
that projection added in `layer1.0` (see modeling_torch), so plain timm resnet18/34(d) checkpoints,
which lack `layer1.0.downsample.*`, are refused, naming those tensors.
"""
from ..registry import ModelSpec, Preprocessing

# PaddleClas's ImageNet eval pipeline for its ResNets (ppcls/configs/ImageNet/ResNet/*.yaml):
# ResizeImage resize_short 256 (cv2, bilinear), CropImage 224, ImageNet mean/std.
_PADDLECLAS_EVAL = Preprocessing(interpolation="bilinear", crop_pct=224 / 256)

_PROJECTED = "; layer1.0 of the timm twin gets the 64 -> 64 projection PaddleClas adds (plain timm {} checkpoints lack it)"


def _spec(depth: int, vd: bool) -> ModelSpec:
    suffix = "_vd" if vd else ""
    timm_name = f"resnet{depth}{'d' if vd else ''}"
    description = (f"PaddleClas layout: PaddleClas `ResNet{depth}{suffix}` (legendary_models/resnet.py) "
                   f"<-> timm `{timm_name}`")
    if depth < 50:
        description += _PROJECTED.format(timm_name)
    return ModelSpec(
        name=f"ppcls_resnet{depth}{suffix}",
        family="ppcls_resnet",
        table=f"ppcls_resnet{depth}{suffix}",
        torch_factory=f"weightport.models.ppcls_resnet.modeling_torch:ppcls_resnet{depth}{suffix}",
        paddle_factory=f"weightport.models.ppcls_resnet.modeling_paddle:ppcls_resnet{depth}{suffix}",
        input_size=224,
        preprocessing=_PADDLECLAS_EVAL,
        description=description,
    )


MODELS = [_spec(depth, vd) for vd in (False, True) for depth in (18, 34, 50, 101, 152)]
