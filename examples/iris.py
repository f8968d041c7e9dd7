"""The seed article's example: iris, a 10-tree forest (2 features per split), 5-fold
cross-validation, mean accuracy. GoLearn's workflow, one call per step.

    python examples/iris.py
"""

from pathlib import Path

import aioforest
from aioforest.evaluation import accuracy, cross_validated_metric, summary

HERE = Path(__file__).resolve().parent


def main() -> None:
    iris = aioforest.read_csv(HERE / "datasets" / "iris_headers.csv")
    forest = aioforest.RandomForestClassifier(n_estimators=10, max_features=2, random_state=1)
    matrices = aioforest.cross_validate(forest, iris, folds=5, random_state=1)
    mean, variance = cross_validated_metric(matrices, accuracy)
    print(summary(sum(matrices[1:], matrices[0])))
    print(f"5-fold cross-validated accuracy: {mean:.4f} (variance {variance:.5f})")


if __name__ == "__main__":
    main()
