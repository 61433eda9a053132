"""BoTNets (Bottleneck Transformers, arXiv 2101.11605): timm's ByobNet variants and the paper's BoT50 / BoT50-S1.

The torch twins are timm: `timm.create_model` for the four timm BoTNets, timm's `ByobNet` on the
configs in `configs.py` for BoT50 / BoT50-S1. The Paddle twins port that ByobNet subset with the
same module names. MHSA everywhere is timm's `BottleneckAttn`: one 1x1 qkv conv without bias,
relative position logits from per-axis tables (`pos_embed.height_rel` / `width_rel`, [2L - 1, d])
turned into absolute positions as in the authors' gist, and a 2x2 avg-pool after attention on
stride 2. timm's models add the relative logits to the scaled q k^T (q unscaled in the position
term, timm's default); BoT50 / BoT50-S1 scale both terms (`scale_pos_embed=True`), as the
authors' gist scales q before either logit.
"""
from ..registry import ModelSpec, Preprocessing

_TORCH = "weightport.models.botnet.modeling_torch"
_PADDLE = "weightport.models.botnet.modeling_paddle"


def _spec(name: str, input_size: int, preprocessing: Preprocessing, description: str) -> ModelSpec:
    return ModelSpec(
        name=name,
        family="botnet",
        table="botnet",
        torch_factory=f"{_TORCH}:{name}",
        paddle_factory=f"{_PADDLE}:{name}",
        input_size=input_size,
        preprocessing=preprocessing,
        description=description,
    )


# timm.models.byoanet default_cfgs: bicubic, crop 0.95 (0.94 for sebotnet33ts), ImageNet mean/std.
_TIMM_BICUBIC_095 = Preprocessing(interpolation="bicubic", crop_pct=0.95)
# No evaluation pipeline ships with the paper; we document the TensorFlow TPU ResNet one it builds on
# (resnet_preprocessing: centre crop with 32 px padding, i.e. 224 / 256 = 0.875, bicubic resize) with
# ImageNet mean/std.
_PAPER = Preprocessing(interpolation="bicubic", crop_pct=0.875)

MODELS = [
    _spec("botnet26t_256", 256, _TIMM_BICUBIC_095,
          "BoTNet-26T: timm `botnet26t_256` (byoanet.py; ResNet26-T tiered stem, MHSA in c4/c5) <-> Paddle port"),
    _spec("sebotnet33ts_256", 256, Preprocessing(interpolation="bicubic", crop_pct=0.94),
          "SE-BoTNet-33TS: timm `sebotnet33ts_256` (byoanet.py; SiLU, SE, MHSA in c3-c5, 1280-ch final conv) "
          "<-> Paddle port"),
    _spec("eca_botnext26ts_256", 256, _TIMM_BICUBIC_095,
          "ECA-BoTNeXt-26TS: timm `eca_botnext26ts_256` (byoanet.py; grouped 3x3, ECA, SiLU, MHSA with dim_head 16 "
          "in c4/c5) <-> Paddle port"),
    _spec("botnet50ts_256", 256, _TIMM_BICUBIC_095,
          "BoTNet-50TS: timm `botnet50ts_256` (byoanet.py; ResNet50-T, SiLU, MHSA in c3-c5; timm has no weights) "
          "<-> Paddle port"),
    _spec("botnet50", 224, _PAPER,
          "Paper BoT50 (arXiv 2101.11605) on timm ByobNet: ResNet-50, c5 with 4-head MHSA (timm BottleneckAttn, "
          "relative logits as the authors' gist, q scaled in both terms), 2x2 avg-pool after MHSA <-> Paddle port"),
    _spec("botnet50_s1", 224, _PAPER,
          "Paper BoT50-S1 (arXiv 2101.11605) on timm ByobNet: BoT50 with c5 at stride 1 (MHSA on 14x14) "
          "<-> Paddle port"),
]
