"""ResNets whose twins both come from well-kept libraries: timm (torch) and paddle.vision (Paddle).

timm's plain `resnetN` and paddle.vision's `resnetN` are the same ResNet v1.5 (stride on the
3x3 convolution) with the same module names, so the table only renames BatchNorm statistics
and transposes the classifier.
"""
from ..registry import ModelSpec, Preprocessing

_DEPTHS = (18, 34, 50, 101, 152)

MODELS = [
    ModelSpec(
        name=f"resnet{depth}",
        family="resnet",
        table="resnet",
        torch_factory=f"weightport.models.resnet.modeling_torch:resnet{depth}",
        paddle_factory=f"weightport.models.resnet.modeling_paddle:resnet{depth}",
        input_size=224,
        # timm's resnet default_cfg: bicubic, crop 0.95 (the a1_in1k recipe)
        preprocessing=Preprocessing(interpolation="bicubic", crop_pct=0.95),
        description=f"ResNet-{depth}: timm `resnet{depth}` <-> `paddle.vision.models.resnet{depth}`",
    )
    for depth in _DEPTHS
]
