"""Model files and checkpoints: versioned arrays plus JSON metadata, never pickle.

The top layer that knows the estimators (through :func:`aioforest.tree.model_classes`, a
registry the estimator classes join by decorator, not a hard-coded list):

* :func:`save` / :func:`load` (and the ``_bytes`` forms) write and read model files.
* :func:`dumps` / :func:`loads`, :func:`write_atomic` and :func:`fsync_dir` are the
  checksummed container and the crash-safe file writes checkpoints use too;
  :func:`trees_to_arrays` / :func:`trees_from_arrays` pack trees for it and for the wire.
* :func:`encode_params` / :func:`decode_params` (and ``_value``): the one tagged JSON
  encoding of estimator parameters, for model files and checkpoint specs.
* :func:`file_version`: the format version in a file's header; :data:`SAME_TREES_SINCE`
  the oldest version whose trees were grown by today's rules (checkpoints resume from it).
* :class:`FormatError` names what is wrong with a damaged or foreign file
  (:class:`FormatVersionError`: a file of a format version not read here).
"""

from ..tree import set_model_writer
from ._container import (
    FORMAT_VERSION,
    SAME_TREES_SINCE,
    FormatError,
    FormatVersionError,
    dumps,
    file_version,
    fsync_dir,
    loads,
    write_atomic,
)
from ._model import load, load_bytes, save, save_bytes, trees_from_arrays, trees_to_arrays
from ._params import decode_params, decode_value, encode_params, encode_value

set_model_writer(save)

__all__ = [
    "FORMAT_VERSION",
    "SAME_TREES_SINCE",
    "FormatError",
    "FormatVersionError",
    "decode_params",
    "decode_value",
    "dumps",
    "encode_params",
    "encode_value",
    "file_version",
    "fsync_dir",
    "load",
    "load_bytes",
    "loads",
    "save",
    "save_bytes",
    "trees_from_arrays",
    "trees_to_arrays",
    "write_atomic",
]
