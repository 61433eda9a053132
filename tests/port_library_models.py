"""Small models from libraries other than timm, as `weightport port module:factory` sources for the
port's end-to-end tests (random weights, nothing downloaded)."""
from __future__ import annotations


def vit(image_size: int = 64, num_classes: int = 10):
    """vit-pytorch's ViT (einops' Rearrange layer, rearrange and repeat in its forward)."""
    from vit_pytorch import ViT

    return ViT(image_size=image_size, patch_size=16, num_classes=num_classes, dim=64, depth=2, heads=2, mlp_dim=128)


def simple_vit(image_size: int = 64, num_classes: int = 10):
    """vit-pytorch's SimpleViT (sin-cos position embedding built from the patch grid)."""
    from vit_pytorch.simple_vit import SimpleViT

    return SimpleViT(image_size=image_size, patch_size=16, num_classes=num_classes, dim=64, depth=2, heads=2, mlp_dim=128)
