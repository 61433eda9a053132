"""The torchvision <-> paddle.vision zoo: every architecture both libraries define as the same network.

Both twins are the libraries' own models (torchvision's as the torch twin, paddle.vision's as the
Paddle twin), so this family is tables only. The architectures the two libraries define differently
are refused by name (`REFUSED`), with where they differ.
"""
from ..registry import ModelSpec, Preprocessing

# torchvision's evaluation transforms: resize 256 (342 for Inception v3), centre crop, bilinear.
_PREPROCESSING = Preprocessing(interpolation="bilinear", crop_pct=224 / 256)

_TABLES = {
    "alexnet": ["alexnet"],
    "vgg": [f"vgg{depth}{bn}" for depth in (11, 13, 16, 19) for bn in ("", "_bn")],
    "densenet": [f"densenet{depth}" for depth in (121, 161, 169, 201)],
    "mobilenet_v2": ["mobilenet_v2"],
    "mobilenet_v3_small": ["mobilenet_v3_small"],
    "mobilenet_v3_large": ["mobilenet_v3_large"],
    "shufflenet_v2": ["shufflenet_v2_x0_5", "shufflenet_v2_x1_0", "shufflenet_v2_x1_5"],
    "inception_v3": ["inception_v3"],
    "resnext": ["resnext50_32x4d", "resnext101_64x4d", "wide_resnet50_2", "wide_resnet101_2"],
}

# What makes the twins of these train differently, although eval-mode outputs agree once the table
# has adjusted the weights; `verify --all --train` checks them in eval mode only and says why.
TRAINING_DIFFERS = {
    "alexnet": "paddle.vision's Dropout(mode='downscale_in_infer') before _fc6 and _fc7 scales at inference, torchvision's "
               "at training: the table doubles those weights, so their gradients halve and SGD/AdamW steps move them differently",
    "inception_v3": "torchvision's BatchNorm eps is 1e-3, paddle.vision's 1e-5: folded into the running variance for eval, "
                    "but training normalises each batch with the twin's own eps; the fc weights are scaled by 1.25 "
                    "(paddle.vision's downscale_in_infer dropout, p 0.2)",
}

# Architectures both libraries name but define differently: not registered, and `weightport` says why.
REFUSED = {
    "googlenet": "torchvision's GoogLeNet (6.6 M parameters in 287 tensors, BatchNorm after every conv) and paddle.vision's "
                 "(11.5 M in 69: no BatchNorm, two auxiliary classifiers always built) are different networks",
    "shufflenet_v2_x2_0": "torchvision's ShuffleNetV2 x2.0 has 7,427,712 parameters and paddle.vision's 7,399,952 "
                          "(other stage widths): different networks",
    "squeezenet1_0": "torchvision's max pools round up (ceil_mode=True), paddle.vision's down: outputs agree only at input "
                     "sizes where every pool divides evenly (227, not 224), and the classifier's dropout scales differently",
    "squeezenet1_1": "torchvision's max pools round up (ceil_mode=True), paddle.vision's down: the feature maps differ in "
                     "size at 224 and at 227",
}

MODELS = [
    ModelSpec(
        name=name,
        family="torchvision",
        table=f"vision_{table}",
        torch_factory=f"weightport.models.vision.modeling_torch:{name}",
        paddle_factory=f"weightport.models.vision.modeling_paddle:{name}",
        input_size=299 if name == "inception_v3" else 224,
        preprocessing=Preprocessing(interpolation="bilinear", crop_pct=299 / 342) if name == "inception_v3" else _PREPROCESSING,
        description=f"torchvision `{name}` <-> `paddle.vision.models."
                    f"{name[:-3] + '(batch_norm=True)' if name.endswith('_bn') else name}`",
        training_differs=TRAINING_DIFFERS.get(name, ""),
    )
    for table, names in _TABLES.items()
    for name in names
]
