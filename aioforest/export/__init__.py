"""Fitted forests in formats that serving stacks read.

* :func:`to_treelite` -- a fitted forest (or tree) as a ``treelite.Model`` through treelite's
  model builder (the ``aioforest[treelite]`` extra, imported only here). Numeric splits,
  categorical splits and where missing values go are carried over as they are; treelite
  can then save it (``model.serialize(path)``), predict with ``treelite.gtil.predict`` or
  compile it to a shared library with TL2cgen.
* :func:`encoded_input` -- the float64 matrix such a model reads: numeric columns as they
  are, categorical ones as the index of their category, missing values and unseen
  categories as NaN. The same encoding the forest's own ``predict`` applies first.
"""

from ._treelite import encoded_input, to_treelite

__all__ = ["encoded_input", "to_treelite"]
