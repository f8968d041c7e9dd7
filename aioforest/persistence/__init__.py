"""Model files and checkpoints: versioned arrays plus JSON metadata, never pickle."""

from ..tree import set_model_writer
from ._container import FORMAT_VERSION, FormatError
from ._model import load, load_bytes, save, save_bytes

set_model_writer(save)

__all__ = ["FORMAT_VERSION", "FormatError", "load", "load_bytes", "save", "save_bytes"]
