"""``python -m aioforest predict`` and ``python -m aioforest info``: apply and inspect a
saved model from the command line.

Bad input is a one-line error (exit 2) that names the file and what is wrong, never a
traceback: a missing file, a file that is not a model, a data file whose columns do not
match the model's features.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
from collections.abc import Sequence
from typing import Any, TextIO

import numpy as np

from .data import DataError, read_csv
from .persistence import FormatError, file_version, load

__all__ = ["info_main", "predict_main"]

EXIT_USAGE = 2

_PREDICT_EXAMPLES = """\
examples:
  python -m aioforest predict --model model.aiof --data new.csv > predictions.csv
  python -m aioforest predict --model model.aiof --data new.csv --proba --out proba.csv
"""


def predict_main(argv: Sequence[str] | None = None) -> int:
    """Write the model's predictions for every row of a CSV file, in input order."""
    parser = argparse.ArgumentParser(
        prog="python -m aioforest predict", description=predict_main.__doc__,
        epilog=_PREDICT_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, metavar="MODEL", help="a saved model")
    parser.add_argument("--data", required=True, metavar="FILE",
                        help="CSV with a header; columns are matched to the model's features "
                        "by name (extra ones, such as the target, are ignored; unseen "
                        "categories count as missing)")
    parser.add_argument("--out", metavar="FILE", help="write here (default: stdout)")
    parser.add_argument("--proba", action="store_true",
                        help="one proba_<class> column per class (classifiers)")
    args = parser.parse_args(argv)
    try:
        model = _model(args.model)
        if args.proba and not hasattr(model, "predict_proba"):
            raise ValueError(f"{args.model} is a {type(model).__name__}: it has no "
                             "probabilities (drop --proba)")
        rows = read_csv(args.data, target=None)
        if args.proba:
            header = [f"proba_{c}" for c in model.classes_]
            values: Any = model.predict_proba(rows)
        else:
            header, values = ["prediction"], np.asarray(model.predict(rows))[:, None]
    except (OSError, FormatError, DataError, ValueError) as exc:
        where = "" if str(args.data) in str(exc) or str(args.model) in str(exc) else (
            f"{args.data}: ")
        print(f"{parser.prog}: error: {where}{exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.out is None:
        try:
            _write(sys.stdout, header, values)
            sys.stdout.flush()
        except BrokenPipeError:  # `| head`: the reader left; say nothing more
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 1
    else:
        with open(args.out, "w", newline="") as f:
            _write(f, header, values)
    return 0


def _model(path: str) -> Any:
    if not os.path.exists(path):
        raise OSError(f"{path}: no such model file")
    return load(path)


def _write(stream: TextIO, header: list[str], values: Any) -> None:
    writer = csv.writer(stream, lineterminator="\n")
    writer.writerow(header)
    for row in values.tolist():
        writer.writerow([repr(v) if isinstance(v, float) else v for v in row])


def info_main(argv: Sequence[str] | None = None) -> int:
    """Say what a saved model is: its kind, trees, features, classes and parameters."""
    parser = argparse.ArgumentParser(prog="python -m aioforest info",
                                     description=info_main.__doc__)
    parser.add_argument("--model", required=True, metavar="MODEL", help="a saved model")
    args = parser.parse_args(argv)
    try:
        model = _model(args.model)
        version = file_version(args.model)
    except (OSError, FormatError) as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    for line in describe(model, version, os.path.getsize(args.model)):
        print(line)
    return 0


def describe(model: Any, version: int, size: int) -> list[str]:
    """The lines ``info`` prints."""
    trees = getattr(model, "trees_", [])
    lines = [f"kind: {type(model).__name__}", f"trees: {len(trees)}",
             f"nodes: {sum(t.node_count for t in trees)}"]
    plan = getattr(model, "plan_", None)
    if plan is not None:
        lines.append(f"training rows drawn per tree: {plan.n_draws} "
                     f"({'bootstrap' if plan.bootstrap else 'no bootstrap'})")
    features = getattr(model, "features_", ())
    lines.append(f"features: {len(features)}")
    for f in features:
        kind = (f"categorical ({len(f.categories)} categories)" if f.kind == "categorical"
                else f.kind)
        lines.append(f"  {f.name}: {kind}")
    if hasattr(model, "classes_"):
        lines.append(f"classes: {', '.join(str(c) for c in model.classes_)}")
    if getattr(model, "oob_score_", None) is not None:
        lines.append(f"out-of-bag score: {model.oob_score_:.4f}")
    lines.append("parameters:")
    lines += [f"  {k}: {v!r}" for k, v in sorted(model.get_params().items())]
    lines += [f"format version: {version}", f"file size: {size} bytes"]
    return lines
