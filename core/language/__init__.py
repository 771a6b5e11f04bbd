"""The YAML rule language: parse and check packs (`load_packs`), with every error located."""

from .errors import PackError, RuleError, VarsOrigin
from .loader import load_pack, load_packs, pack_files

__all__ = ["PackError", "RuleError", "VarsOrigin", "load_pack", "load_packs", "pack_files"]
