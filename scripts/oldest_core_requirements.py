"""The oldest versions pyproject.toml admits of weightport's framework-free dependencies, one
requirement a line (`numpy==1.24.*`): what CI installs beside the oldest Python declared, to prove
that the core (every format, inspect, convert from a layout manifest) runs at the bottom of each range."""
import re
import sys
from pathlib import Path

import tomllib

FRAMEWORKS = {"torch", "torchvision", "timm", "paddlepaddle"}

project = tomllib.loads((Path(__file__).resolve().parent.parent / "pyproject.toml").read_text())["project"]
for requirement in project["dependencies"]:
    match = re.fullmatch(r"([A-Za-z0-9_.-]+)>=([0-9.]+)[^;]*(;.*)?", requirement.strip())
    if match is None:
        sys.exit(f"cannot read the oldest version of {requirement!r}")
    if match.group(1) not in FRAMEWORKS:
        print(f"{match.group(1)}=={match.group(2)}.*")
