"""Real images for `verify --images`, preprocessed as each model's reference evaluates them:
resize the short side to size / crop_pct, centre crop, scale to [0, 1], normalise."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..errors import UserError
from ..models.registry import Preprocessing

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".ppm", ".tif", ".tiff"}


def preprocess(image, prep: Preprocessing, size: int | tuple[int, int]) -> np.ndarray:
    """One PIL image -> a CHW float32 array (of (height, width) `size`: resized to it, as text
    recognisers and detectors are fed, rather than cropped)."""
    from PIL import Image

    resample = {"bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC, "nearest": Image.NEAREST}[prep.interpolation]
    if isinstance(size, tuple):
        image = image.convert("RGB").resize((size[1], size[0]), resample)
        return _normalised(image, prep)
    scale = math.floor(size / prep.crop_pct)
    width, height = image.size
    if width <= height:
        new = (scale, int(scale * height / width))
    else:
        new = (int(scale * width / height), scale)
    image = image.convert("RGB").resize(new, resample)
    left, top = (new[0] - size) // 2, (new[1] - size) // 2
    return _normalised(image.crop((left, top, left + size, top + size)), prep)


def _normalised(image, prep: Preprocessing) -> np.ndarray:
    array = np.asarray(image, dtype=np.float32) / 255.0
    array = (array - np.array(prep.mean, dtype=np.float32)) / np.array(prep.std, dtype=np.float32)
    return array.transpose(2, 0, 1).copy()


def load_image_batch(directory: str, prep: Preprocessing, size: int | tuple[int, int], limit: int) -> np.ndarray:
    """Up to `limit` images from `directory` (sorted by name) as one NCHW batch."""
    from PIL import Image, UnidentifiedImageError

    folder = Path(directory)
    if not folder.is_dir():
        raise UserError(f"{directory}: not a folder of images")
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)[:limit]
    if not paths:
        raise UserError(f"{directory}: no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    arrays = []
    for path in paths:
        try:
            with Image.open(path) as image:
                arrays.append(preprocess(image, prep, size))
        except (OSError, UnidentifiedImageError) as exc:
            raise UserError(f"{path}: cannot read the image ({exc})") from None
    return np.stack(arrays)
