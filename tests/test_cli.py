"""The command line: progress (a live line on a terminal, plain lines in a log) and the
task (classification or regression) chosen from the target."""

from __future__ import annotations

import io
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from aioforest import FitProgress, load
from aioforest.master import ProgressLine, resolve_task
from aioforest.persistence import FORMAT_VERSION


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _feed(line: ProgressLine, clock: FakeClock, total: int, step: float) -> None:
    for done in range(1, total + 1):
        clock.now = done * step
        line(FitProgress(done - 1, done, total, clock.now))
    line.end()


def test_a_log_gets_plain_lines_at_most_every_few_seconds_and_the_last() -> None:
    log, clock = io.StringIO(), FakeClock()
    _feed(ProgressLine(log, True, log_interval=5.0, clock=clock), clock, total=20, step=1.0)
    text = log.getvalue()
    assert "\r" not in text
    lines = text.splitlines()
    assert [ln.split()[1] for ln in lines] == ["1/20", "6/20", "11/20", "16/20", "20/20"]
    assert text.endswith("\n")


def test_a_terminal_gets_one_live_line() -> None:
    tty, clock = Terminal(), FakeClock()
    _feed(ProgressLine(tty, True, clock=clock), clock, total=5, step=1.0)
    text = tty.getvalue()
    assert text.count("\r") == 5 and text.count("\n") == 1 and text.endswith("trees/s  ETA "
                                                                              "   0.0s\n")


def test_quiet_writes_nothing() -> None:
    out, clock = io.StringIO(), FakeClock()
    _feed(ProgressLine(out, False, clock=clock), clock, total=3, step=10.0)
    assert out.getvalue() == ""


# --- the task: classification or regression ---------------------------------------------
def _dataset(labels: list[str]) -> Any:
    from aioforest import read_csv

    rows = "\n".join(f"{i},{i % 7},{v}" for i, v in enumerate(labels))
    return read_csv(io.StringIO(f"a,b,target\n{rows}\n"))


def test_a_float_target_is_regression_and_integer_grades_are_classes() -> None:
    floats = _dataset([f"{0.37 * i:.3f}" for i in range(200)])
    assert resolve_task(floats, "auto").task == "regression"
    grades = _dataset([str(1 + i % 6) for i in range(200)])
    assert resolve_task(grades, "auto").task == "classification"
    assert resolve_task(grades, "regression").task == "regression"
    many_ints = _dataset([str(i % 120) for i in range(400)])  # more than 50 values
    assert resolve_task(many_ints, "auto").task == "regression"
    assert resolve_task(many_ints, "classification").task == "classification"
    words = _dataset(["yes" if i % 3 else "no" for i in range(30)])
    assert resolve_task(words, "auto").task == "classification"
    with pytest.raises(ValueError, match="needs a numeric target; 'no'"):
        resolve_task(words, "regression")


def test_a_classification_with_absurdly_many_classes_is_refused() -> None:
    floats = _dataset([f"{0.37 * i:.3f}" for i in range(200)])
    with pytest.raises(ValueError, match=r"200 classes in 200 rows.*--task regression"):
        resolve_task(floats, "classification")


def test_the_cli_trains_a_regressor_on_a_numeric_target(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 3))
    y = 2.0 * X[:, 0] + X[:, 1] ** 2
    path = tmp_path / "reg.csv"
    path.write_text("a,b,c,target\n" + "\n".join(
        ",".join(f"{v:.6f}" for v in (*row, t)) for row, t in zip(X, y, strict=True)) + "\n")
    model = tmp_path / "reg.aiof"
    out = subprocess.run(
        [sys.executable, "-m", "aioforest.master", "--data", str(path), "--trees", "8",
         "--seed", "1", "--local-workers", "1", "--out", str(model), "--quiet"],
        capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    assert re.search(r"training R²: 0\.\d{4}  RMSE: [\d.]+", out.stdout), out.stdout
    assert type(load(model)).__name__ == "RandomForestRegressor"
    refused = subprocess.run(
        [sys.executable, "-m", "aioforest.master", "--data", str(path), "--task",
         "classification"], capture_output=True, text=True, timeout=60, check=False)
    assert refused.returncode == 2
    assert "300 classes in 300 rows" in refused.stderr and "--task regression" in refused.stderr
    assert "Traceback" not in refused.stderr


def test_the_forest_parameters_reach_the_estimator(tmp_path: Path) -> None:
    from forest_helpers import assert_same_forest

    from aioforest import RandomForestClassifier, read_csv
    from aioforest.datasets import path as dataset_path

    data = str(dataset_path("iris_headers.csv"))
    model = tmp_path / "iris.aiof"
    flags = ["--max-depth", "3", "--min-samples-leaf", "2", "--min-samples-split", "0.05",
             "--criterion", "entropy", "--class-weight", "balanced", "--max-samples", "0.8",
             "--max-bins", "16", "--no-bootstrap"]
    out = subprocess.run(
        [sys.executable, "-m", "aioforest.master", "--data", data, "--trees", "6", "--seed",
         "2", "--local-workers", "1", "--out", str(model), "--quiet", *flags],
        capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    local = RandomForestClassifier(
        n_estimators=6, random_state=2, max_depth=3, min_samples_leaf=2,
        min_samples_split=0.05, criterion="entropy", class_weight="balanced",
        max_samples=0.8, max_bins=16, bootstrap=False).fit(read_csv(data))
    fitted = load(model)
    assert fitted.get_params() == local.get_params()
    assert_same_forest(fitted, local)
    bad = subprocess.run(
        [sys.executable, "-m", "aioforest.master", "--data", data, "--trees", "2",
         "--local-workers", "1", "--quiet", "--criterion", "purity"],
        capture_output=True, text=True, timeout=120, check=False)
    # refused by the estimator, in the options' terms, before any worker starts
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr.strip().splitlines()[-1] == (
        "aioforest-master: error: --criterion must be one of ('gini', 'entropy'), got "
        "'purity'"), bad.stderr
    assert "Traceback" not in bad.stderr


def test_class_weights_parse_as_labels_and_weights() -> None:
    import argparse

    from aioforest.master import parse_class_weight, parse_count

    assert parse_class_weight("balanced") == "balanced"
    assert parse_class_weight("yes=2,no=0.5") == {"yes": 2.0, "no": 0.5}
    with pytest.raises(argparse.ArgumentTypeError, match="LABEL=WEIGHT"):
        parse_class_weight("yes:2")
    assert parse_count("3") == 3 and parse_count("0.25") == 0.25
    with pytest.raises(argparse.ArgumentTypeError):
        parse_count("many")


# --- predict and info -------------------------------------------------------------------
@pytest.fixture(scope="module")
def iris_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from aioforest import RandomForestClassifier, read_csv
    from aioforest.datasets import path as dataset_path
    from aioforest.persistence import save

    data = Path(dataset_path("iris_headers.csv"))
    model = tmp_path_factory.mktemp("m") / "iris.aiof"
    save(RandomForestClassifier(5, random_state=0).fit(read_csv(data)), model)
    return model, data


def test_predict_writes_the_models_predictions_in_input_order(
    iris_model: tuple[Path, Path], tmp_path: Path
) -> None:
    import csv

    from aioforest import read_csv

    model, data = iris_model
    expected = load(model).predict(read_csv(data, target=None))
    out = subprocess.run([sys.executable, "-m", "aioforest", "predict", "--model", str(model),
                          "--data", str(data)], capture_output=True, text=True, timeout=60,
                         check=True)
    rows = list(csv.reader(io.StringIO(out.stdout)))
    assert rows[0] == ["prediction"]
    assert [r[0] for r in rows[1:]] == [str(v) for v in expected]
    proba_file = tmp_path / "p.csv"
    from aioforest._commands import predict_main

    assert predict_main(["--model", str(model), "--data", str(data), "--proba",
                         "--out", str(proba_file)]) == 0
    with proba_file.open() as f:
        proba = list(csv.reader(f))
    fitted = load(model)
    assert proba[0] == [f"proba_{c}" for c in fitted.classes_]
    np.testing.assert_array_equal(np.array(proba[1:], dtype=float),
                                  fitted.predict_proba(read_csv(data, target=None)))


def test_predict_and_info_errors_are_one_line(
    iris_model: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from aioforest._commands import info_main, predict_main

    model, data = iris_model
    not_a_model = tmp_path / "x.aiof"
    not_a_model.write_text("hello")
    other = tmp_path / "other.csv"
    other.write_text("u,v\n1,2\n")
    cases = [
        (["--model", str(tmp_path / "nope.aiof"), "--data", str(data)], "no such model file"),
        (["--model", str(not_a_model), "--data", str(data)], "aioforest file"),
        (["--model", str(model), "--data", str(tmp_path / "nope.csv")], "nope.csv"),
        (["--model", str(model), "--data", str(other)], "column"),
    ]
    for argv, what in cases:
        assert predict_main(argv) == 2
        err = capsys.readouterr().err
        assert what in err and len(err.strip().splitlines()) == 1, err
    assert info_main(["--model", str(not_a_model)]) == 2
    assert "aioforest file" in capsys.readouterr().err


def test_info_says_what_a_model_is(iris_model: tuple[Path, Path],
                                   capsys: pytest.CaptureFixture[str]) -> None:
    from aioforest._commands import info_main

    model, _ = iris_model
    assert info_main(["--model", str(model)]) == 0
    out = capsys.readouterr().out
    for needle in ("kind: RandomForestClassifier", "trees: 5", "features: 4",
                   "classes: Iris-setosa", "n_estimators: 5", f"format version: {FORMAT_VERSION}",
                   f"file size: {model.stat().st_size} bytes",
                   "training rows drawn per tree: 150"):
        assert needle in out, out
    assert re.search(r"\n  Sepal length: numeric\n", out)


def test_log_format_json_writes_one_object_per_line() -> None:
    import json

    out = subprocess.run(
        [sys.executable, "-m", "aioforest.master", "--log-format", "json", "--trees", "6",
         "--seed", "1", "--local-workers", "2", "--dashboard", "127.0.0.1:0"],
        capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    logged = [json.loads(line) for line in out.stderr.splitlines()]
    said = [json.loads(line) for line in out.stdout.splitlines()]
    events = [e["event"] for e in logged]
    assert events.count("worker_joined") == 2
    assert {e["worker"] for e in logged if e["event"] == "worker_joined"} == {"local-1",
                                                                             "local-2"}
    progress = [e for e in logged if e["event"] == "progress"]
    assert progress and progress[-1]["done"] == progress[-1]["total"] == 6
    assert [e["event"] for e in said] == ["listening", "dashboard", "report"]
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/", said[1]["url"])
    assert not said[1]["url"].endswith(":0/")  # the port actually bound
    report = said[-1]
    assert report["trees"] == 6 and report["rows"] == 150
    assert 0.9 <= report["training_accuracy"] <= 1.0
    assert report["workers_lost"] == 0 and "\r" not in out.stderr
