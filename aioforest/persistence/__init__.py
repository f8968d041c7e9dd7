"""Model files and checkpoints: versioned arrays plus JSON metadata, never pickle."""

from ._container import FORMAT_VERSION, FormatError
from ._model import load, load_bytes, save, save_bytes

__all__ = ["FORMAT_VERSION", "FormatError", "load", "load_bytes", "save", "save_bytes"]
