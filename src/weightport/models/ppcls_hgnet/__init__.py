"""PaddleClas PP-HGNet and PP-HGNetV2 <-> timm `hgnet_*` / `hgnetv2_b*`.

Paddle twins: PaddleClas @d178931 `ppcls/arch/backbone/legendary_models/pp_hgnet.py` (PPHGNet_tiny,
_small, _base) and `pp_hgnet_v2.py` (PPHGNetV2_B0 ... B6), rewritten with PaddleClas's names and
defaults. Torch twins: timm 1.0's `hgnet.py`, whose weights were ported from PaddleClas, so the
networks are the same but for three things (docs/ppcls_hgnet.md): module names (the tables),
PPHGNet_base's downscale-in-infer dropout before fc (folded into fc's weight), and, in V2 B0-B3,
timm's zero padding of the stem's max-pool, which the B0-B3 torch twins replace by PaddleClas's.
"""
from ..registry import ModelSpec, Preprocessing

# timm's hgnet default_cfg: 224 px, bicubic, crop 0.965 (PaddleClas: resize 232, crop 224).
_PREPROCESSING = Preprocessing(interpolation="bicubic", crop_pct=0.965)
_TORCH = "weightport.models.ppcls_hgnet.modeling_torch"
_PADDLE = "weightport.models.ppcls_hgnet.modeling_paddle"

_V1 = {"tiny": "Tiny", "small": "Small", "base": "Base"}
_V2 = [f"b{i}" for i in range(7)]
_STEM_POOL_FIXED = {"b0", "b1", "b2", "b3"}

# What makes the twins of these train differently although eval-mode outputs agree; `verify --all
# --train` checks them in eval mode only and says why.
TRAINING_DIFFERS = {
    "ppcls_pphgnet_base": "PaddleClas's Dropout(p=0.2, mode='downscale_in_infer') before fc scales at inference, timm's "
                          "(drop_rate 0) never: the table multiplies fc's weight by 1.25, so its gradients are 0.8x "
                          "timm's and SGD/AdamW steps move it differently; in training PaddleClas drops 20 % of the "
                          "features without rescaling, timm drops none",
}


def _spec(name: str, table: str, description: str) -> ModelSpec:
    return ModelSpec(
        name=name,
        family="ppcls_hgnet",
        table=table,
        torch_factory=f"{_TORCH}:{name}",
        paddle_factory=f"{_PADDLE}:{name}",
        input_size=224,
        preprocessing=_PREPROCESSING,
        description=description,
        training_differs=TRAINING_DIFFERS.get(name, ""),
    )


MODELS = [
    *(_spec(f"ppcls_pphgnet_{v}", "ppcls_hgnet_base" if v == "base" else "ppcls_hgnet",
            f"PP-HGNet-{title}: timm `hgnet_{v}` <-> PaddleClas `PPHGNet_{v}` (pp_hgnet.py)"
            + (" (fc scaled for its 0.8 dropout)" if v == "base" else ""))
      for v, title in _V1.items()),
    *(_spec(f"ppcls_pphgnetv2_{v}", "ppcls_hgnetv2",
            f"PP-HGNetV2-{v.upper()}: timm `hgnetv2_{v}` "
            + ("(stem max-pool padded as PaddleClas's) " if v in _STEM_POOL_FIXED else "")
            + f"<-> PaddleClas `PPHGNetV2_{v.upper()}` (pp_hgnet_v2.py)")
      for v in _V2),
]
