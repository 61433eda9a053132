"""FCViT ("A Close Look at Spatial Modeling: From Attention to Convolution", arXiv 2212.12552).

Twins of the official implementation, ma-xu/FCViT `models/fcvit.py`, with the
reference's module names so that its released timm checkpoints (`.pth.tar`
with `state_dict` / `state_dict_ema`) load strictly. The reference's
default_cfgs: bicubic, crop 0.9 for the small models ('s': tiny, b12) and
0.95 for the larger ones ('m': b24, b48).
"""
from weightport.models.registry import IMAGENET_MEAN, IMAGENET_STD, ModelSpec, Preprocessing

_MODULE = "weightport.models.fcvit"

# name -> (crop_pct, short description of the configuration)
_VARIANTS = {
    "fcvit_tiny": (0.9, "depths 3-3-5-2, dims 32-64-160-320"),
    "fcvit_b12": (0.9, "depths 2-2-6-2, dims 64-128-320-512"),
    "fcvit_b24": (0.95, "depths 4-4-12-4, dims 64-128-320-512"),
    "fcvit_b48": (0.95, "depths 8-8-24-8, dims 64-128-320-512"),
}

MODELS = [
    ModelSpec(
        name=name,
        family="fcvit",
        table="fcvit",
        torch_factory=f"{_MODULE}.modeling_torch:{name}",
        paddle_factory=f"{_MODULE}.modeling_paddle:{name}",
        input_size=224,
        num_classes=1000,
        preprocessing=Preprocessing(interpolation="bicubic", crop_pct=crop_pct, mean=IMAGENET_MEAN, std=IMAGENET_STD),
        description=f"FCViT {name.split('_')[1]} ({config}), as ma-xu/FCViT models/fcvit.py `{name}`",
    )
    for name, (crop_pct, config) in _VARIANTS.items()
]
