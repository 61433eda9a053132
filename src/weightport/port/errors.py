"""The error of a model that cannot be ported."""
from __future__ import annotations

from ..errors import UserError


class PortError(UserError):
    """An op, module or value the port cannot translate; the message names it and where it comes from."""
