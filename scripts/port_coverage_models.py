"""Models from outside timm for `scripts/port_coverage.py --others`: each built with its own library
(Hugging Face transformers, torchvision, vit-pytorch, segmentation_models_pytorch,
EfficientNet-PyTorch, pretrainedmodels), random weights, nothing downloaded.

Each factory is a `module:function` source for `weightport port` (with scripts/ on PYTHONPATH):

    weightport port port_coverage_models:tv_r3d_18 --out r3d/

Transformers are built from small configs (two or four layers, hidden size 64) so that a port
takes seconds on a CPU; the layers and code paths are the library's own. `OTHERS` describes each
model's input as data (shape, keyword name, dtype, the size it is ported at and a second size), so
that the runner can pass the calling-convention options `weightport port` offers.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Spec:
    """A model of the list and its input. `shape` is the whole input shape where it is not one
    N x 3 x size x size batch (video, token ids); its last two entries are the spatial ones (a
    video's) or the sequence length (tokens). `second` is a second spatial size to check the twin
    at (None where the input has no spatial size)."""

    library: str
    size: int = 224
    second: int | None = 160
    shape: tuple[int, ...] | None = None
    input_name: str = "x"
    dtype: str = "float32"

    def input_shape(self, size: int | None = None) -> tuple[int, ...]:
        """The input's shape with batch 1, at `size` (the port's size by default)."""
        size = size or self.size
        if self.shape is None:
            return (1, 3, size, size)
        if self.dtype.startswith("int"):
            return self.shape
        return (*self.shape[:-2], size, size)


def _eval(model):
    return model.eval()


# --- Hugging Face transformers -------------------------------------------------------------------

_SMALL_VIT = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128)


def hf_vit():
    from transformers import ViTConfig, ViTForImageClassification

    return _eval(ViTForImageClassification(ViTConfig(**_SMALL_VIT, image_size=224, patch_size=16, num_labels=10)))


def hf_deit():
    from transformers import DeiTConfig, DeiTForImageClassification

    return _eval(DeiTForImageClassification(DeiTConfig(**_SMALL_VIT, image_size=224, patch_size=16, num_labels=10)))


def hf_dinov2():
    from transformers import Dinov2Config, Dinov2Model

    return _eval(Dinov2Model(Dinov2Config(**_SMALL_VIT, image_size=224, patch_size=14)))


def hf_pvt_v2():
    from transformers import PvtV2Config, PvtV2ForImageClassification

    config = PvtV2Config(depths=[1, 1, 1, 1], hidden_sizes=[16, 32, 64, 128], num_attention_heads=[1, 1, 2, 4], num_labels=10)
    return _eval(PvtV2ForImageClassification(config))


def hf_regnet():
    from transformers import RegNetConfig, RegNetForImageClassification

    config = RegNetConfig(embedding_size=16, hidden_sizes=[16, 32, 64, 128], depths=[1, 1, 2, 1], groups_width=8, num_labels=10)
    return _eval(RegNetForImageClassification(config))


def hf_resnet():
    from transformers import ResNetConfig, ResNetForImageClassification

    config = ResNetConfig(embedding_size=16, hidden_sizes=[16, 32, 64, 128], depths=[1, 1, 1, 1], layer_type="basic", num_labels=10)
    return _eval(ResNetForImageClassification(config))


def hf_convnextv2():
    from transformers import ConvNextV2Config, ConvNextV2ForImageClassification

    config = ConvNextV2Config(depths=[1, 1, 2, 1], hidden_sizes=[16, 32, 64, 128], num_labels=10)
    return _eval(ConvNextV2ForImageClassification(config))


def hf_swinv2():
    from transformers import Swinv2Config, Swinv2ForImageClassification

    config = Swinv2Config(image_size=224, embed_dim=24, depths=[1, 1, 2, 1], num_heads=[1, 2, 2, 4], window_size=7, num_labels=10)
    return _eval(Swinv2ForImageClassification(config))


def hf_segformer():
    from transformers import SegformerConfig, SegformerForSemanticSegmentation

    config = SegformerConfig(depths=[1, 1, 1, 1], hidden_sizes=[16, 32, 64, 128], num_attention_heads=[1, 1, 2, 4],
                             decoder_hidden_size=64, num_labels=5)
    return _eval(SegformerForSemanticSegmentation(config))


def hf_mobilenet_v2_seg():
    from transformers import MobileNetV2Config, MobileNetV2ForSemanticSegmentation

    return _eval(MobileNetV2ForSemanticSegmentation(MobileNetV2Config(depth_multiplier=0.5, num_labels=5)))


def hf_dpt_depth():
    from transformers import DPTConfig, DPTForDepthEstimation

    config = DPTConfig(hidden_size=64, num_hidden_layers=4, num_attention_heads=2, intermediate_size=128, image_size=224,
                       patch_size=16, backbone_out_indices=[0, 1, 2, 3], neck_hidden_sizes=[16, 32, 64, 64],
                       fusion_hidden_size=32, head_in_index=-1)
    return _eval(DPTForDepthEstimation(config))


def hf_bert():
    from transformers import BertConfig, BertModel

    config = BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                        max_position_embeddings=64)
    return _eval(BertModel(config))


# --- torchvision ---------------------------------------------------------------------------------


def _torchvision(name: str, **kwargs):
    from torchvision import models

    return _eval(models.get_model(name, weights=None, **kwargs))


def tv_fcn_resnet50():
    return _torchvision("fcn_resnet50", weights_backbone=None, num_classes=5)


def tv_deeplabv3_mobilenet_v3_large():
    return _torchvision("deeplabv3_mobilenet_v3_large", weights_backbone=None, num_classes=5)


def tv_efficientnet_v2_s():
    return _torchvision("efficientnet_v2_s")


def tv_regnet_y_400mf():
    return _torchvision("regnet_y_400mf")


def tv_convnext_tiny():
    return _torchvision("convnext_tiny")


def tv_swin_t():
    return _torchvision("swin_t")


def tv_swin_v2_t():
    return _torchvision("swin_v2_t")


def tv_maxvit_t():
    return _torchvision("maxvit_t")


def tv_vit_small():
    """torchvision's VisionTransformer (nn.MultiheadAttention inside), two layers wide 64."""
    from torchvision.models.vision_transformer import VisionTransformer

    return _eval(VisionTransformer(image_size=224, patch_size=16, num_layers=2, num_heads=2, hidden_dim=64, mlp_dim=128,
                                   num_classes=10))


def tv_r3d_18():
    return _torchvision("r3d_18")


def tv_mc3_18():
    return _torchvision("mc3_18")


def tv_s3d():
    return _torchvision("s3d")


def tv_mvit_v2_s():
    return _torchvision("mvit_v2_s")


# --- vit-pytorch (einops) ------------------------------------------------------------------------

_SMALL_VP = dict(num_classes=10, dim=64, heads=2, mlp_dim=128)


def vp_vit():
    from vit_pytorch import ViT

    return _eval(ViT(image_size=224, patch_size=16, depth=2, **_SMALL_VP))


def vp_simple_vit():
    from vit_pytorch import SimpleViT

    return _eval(SimpleViT(image_size=224, patch_size=16, depth=2, **_SMALL_VP))


def vp_cait():
    from vit_pytorch.cait import CaiT

    return _eval(CaiT(image_size=224, patch_size=16, depth=2, cls_depth=1, **_SMALL_VP))


def vp_pit():
    from vit_pytorch.pit import PiT

    return _eval(PiT(image_size=224, patch_size=14, depth=(1, 1, 1), **_SMALL_VP))


def vp_cross_vit():
    from vit_pytorch.cross_vit import CrossViT

    return _eval(CrossViT(image_size=224, num_classes=10, sm_dim=32, lg_dim=64, sm_patch_size=16, lg_patch_size=32,
                          depth=1, sm_enc_depth=1, lg_enc_depth=1, sm_enc_heads=2, lg_enc_heads=2, sm_enc_mlp_dim=64,
                          lg_enc_mlp_dim=128, cross_attn_depth=1, cross_attn_heads=2))


# --- segmentation_models_pytorch (encoders built without weights) --------------------------------


def _smp(architecture: str, encoder: str = "resnet18"):
    import segmentation_models_pytorch as smp

    return _eval(getattr(smp, architecture)(encoder_name=encoder, encoder_weights=None, classes=3))


def smp_unet_plus_plus():
    return _smp("UnetPlusPlus")


def smp_linknet():
    return _smp("Linknet")


def smp_pspnet():
    return _smp("PSPNet")


def smp_manet():
    return _smp("MAnet")


def smp_unet_efficientnet_b0():
    return _smp("Unet", "efficientnet-b0")


# --- EfficientNet-PyTorch, pretrainedmodels ------------------------------------------------------


def effnet_b3():
    from efficientnet_pytorch import EfficientNet

    return _eval(EfficientNet.from_name("efficientnet-b3"))


def _pretrainedmodels(name: str):
    import pretrainedmodels

    return _eval(pretrainedmodels.__dict__[name](num_classes=1000, pretrained=None))


def pm_inceptionresnetv2():
    return _pretrainedmodels("inceptionresnetv2")


def pm_xception():
    return _pretrainedmodels("xception")


def pm_polynet():
    return _pretrainedmodels("polynet")


_HF = "transformers"
_TV = "torchvision"
_VIDEO = (1, 3, 8, 112, 112)
OTHERS: dict[str, Spec] = {
    "hf_vit": Spec(_HF, input_name="pixel_values"),
    "hf_deit": Spec(_HF, input_name="pixel_values"),
    "hf_dinov2": Spec(_HF, second=168, input_name="pixel_values"),
    "hf_pvt_v2": Spec(_HF, input_name="pixel_values"),
    "hf_regnet": Spec(_HF, input_name="pixel_values"),
    "hf_resnet": Spec(_HF, input_name="pixel_values"),
    "hf_convnextv2": Spec(_HF, input_name="pixel_values"),
    "hf_swinv2": Spec(_HF, input_name="pixel_values"),
    "hf_segformer": Spec(_HF, input_name="pixel_values"),
    "hf_mobilenet_v2_seg": Spec(_HF, input_name="pixel_values"),
    "hf_dpt_depth": Spec(_HF, input_name="pixel_values"),
    "hf_bert": Spec(_HF, second=None, shape=(1, 16), input_name="input_ids", dtype="int64"),
    "tv_fcn_resnet50": Spec(_TV),
    "tv_deeplabv3_mobilenet_v3_large": Spec(_TV),
    "tv_efficientnet_v2_s": Spec(_TV),
    "tv_regnet_y_400mf": Spec(_TV),
    "tv_convnext_tiny": Spec(_TV),
    "tv_swin_t": Spec(_TV),
    "tv_swin_v2_t": Spec(_TV, size=256, second=192),
    "tv_maxvit_t": Spec(_TV),
    "tv_vit_small": Spec(_TV),
    "tv_r3d_18": Spec(_TV, size=112, second=96, shape=_VIDEO),
    "tv_mc3_18": Spec(_TV, size=112, second=96, shape=_VIDEO),
    "tv_s3d": Spec(_TV, second=256, shape=(1, 3, 16, 224, 224)),
    "tv_mvit_v2_s": Spec(_TV, shape=(1, 3, 16, 224, 224)),
    "vp_vit": Spec("vit-pytorch"),
    "vp_simple_vit": Spec("vit-pytorch"),
    "vp_cait": Spec("vit-pytorch"),
    "vp_pit": Spec("vit-pytorch"),
    "vp_cross_vit": Spec("vit-pytorch"),
    "smp_unet_plus_plus": Spec("segmentation_models_pytorch", second=192),
    "smp_linknet": Spec("segmentation_models_pytorch", second=192),
    "smp_pspnet": Spec("segmentation_models_pytorch", second=192),
    "smp_manet": Spec("segmentation_models_pytorch", second=192),
    "smp_unet_efficientnet_b0": Spec("segmentation_models_pytorch", second=192),
    "effnet_b3": Spec("efficientnet_pytorch", size=300, second=224),
    "pm_inceptionresnetv2": Spec("pretrainedmodels", size=299, second=331),
    "pm_xception": Spec("pretrainedmodels", size=299, second=224),
    "pm_polynet": Spec("pretrainedmodels", size=331, second=299),
}
