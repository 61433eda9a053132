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


def cait(image_size: int = 64, num_classes: int = 10):
    """vit-pytorch's CaiT (layer dropout draws with uniform_ in training)."""
    from vit_pytorch.cait import CaiT

    return CaiT(image_size=image_size, patch_size=16, num_classes=num_classes, dim=64, depth=2, cls_depth=1, heads=2,
                mlp_dim=128, dropout=0.1, emb_dropout=0.1, layer_dropout=0.1)


def mobile_vit(image_size: int = 64, num_classes: int = 10):
    from vit_pytorch.mobile_vit import MobileViT

    return MobileViT(image_size=(image_size, image_size), dims=[32, 40, 48], channels=[8, 16, 24, 24, 32, 32, 40, 40, 48, 48, 96],
                     num_classes=num_classes)


def max_vit(num_classes: int = 10):
    from vit_pytorch.max_vit import MaxViT

    return MaxViT(num_classes=num_classes, dim_conv_stem=16, dim=16, dim_head=8, depth=(1, 1), window_size=2, dropout=0.1)


def cross_vit(image_size: int = 64, num_classes: int = 10):
    from vit_pytorch.cross_vit import CrossViT

    return CrossViT(image_size=image_size, num_classes=num_classes, sm_dim=32, lg_dim=48, sm_patch_size=8, sm_enc_depth=1,
                    sm_enc_heads=2, sm_enc_mlp_dim=64, sm_enc_dim_head=16, lg_patch_size=16, lg_enc_depth=1, lg_enc_heads=2,
                    lg_enc_mlp_dim=64, lg_enc_dim_head=16, cross_attn_depth=1, cross_attn_heads=2, cross_attn_dim_head=16,
                    depth=2, dropout=0.1, emb_dropout=0.1)


def pit(image_size: int = 64, num_classes: int = 10):
    from vit_pytorch.pit import PiT

    return PiT(image_size=image_size, patch_size=8, num_classes=num_classes, dim=32, depth=(1, 1, 1), heads=2, mlp_dim=64,
               dropout=0.1, emb_dropout=0.1)
