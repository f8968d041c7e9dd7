"""Histogram decision trees grown level by level, and the arrays that hold them.

The package separates the pieces as scikit-learn's ``tree`` does: criteria
(``_criterion``), split search (``_splitter``), the level-wise builder (``_builder``), the
fitted tree arrays (``_arrays``), prediction (``_predict``) and the estimators
(``_classes``).
"""

from ._arrays import TreeArrays
from ._classes import DecisionTreeClassifier, DecisionTreeRegressor
from ._export import export_text
from ._model import model_classes, register_model, set_model_writer

__all__ = [
    "DecisionTreeClassifier",
    "DecisionTreeRegressor",
    "TreeArrays",
    "export_text",
    "model_classes",
    "register_model",
    "set_model_writer",
]
