"""Helpers written once: the warm-start warning, JSON type names, integer and TLS checks."""

from __future__ import annotations

import asyncio
import warnings

import numpy as np
import pytest

from aioforest.ensemble import RandomForestRegressor
from aioforest.wire import json_type


@pytest.mark.parametrize(
    ("value", "name"),
    [(None, "null"), (True, "boolean"), (3, "integer"), (1.5, "number"), ("s", "string"),
     ([1], "array"), ({"a": 1}, "object"), (b"x", "bytes")],
)
def test_json_type_names(value: object, name: str) -> None:
    assert json_type(value) == name


def _warm_forest() -> tuple[RandomForestRegressor, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 2))
    y = X[:, 0]
    forest = RandomForestRegressor(n_estimators=2, warm_start=True, random_state=0).fit(X, y)
    return forest, X, y


def test_the_warm_start_warning_names_the_callers_line_in_fit_and_fit_async() -> None:
    forest, X, y = _warm_forest()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        forest.fit(X, y)

        async def fit_async() -> None:
            async for _ in forest.iter_fit_async(X, y):
                pass

        asyncio.run(fit_async())
    assert [str(w.message) for w in caught] == [
        "warm_start fit without a larger n_estimators fits no new tree"
    ] * 2
    assert caught[0].filename == __file__


def test_the_master_checks_fit_options_before_any_work() -> None:
    from aioforest.cluster import Master

    forest = RandomForestRegressor(oob_score=True)
    with pytest.raises(ValueError, match="oob_score=True is not supported with mode='shards'"):
        Master.check_fit_options(forest, "shards")
    with pytest.raises(ValueError, match="n_shards needs mode='shards'"):
        Master.check_fit_options(forest, "model", n_shards=2)
    with pytest.raises(ValueError, match="replicas must be an integer >= 1, got 0"):
        Master.check_fit_options(forest, "shards", replicas=0)
    with pytest.raises(ValueError, match="mode must be"):
        Master.check_fit_options(forest, "rows")
    Master.check_fit_options(RandomForestRegressor(), "shards", n_shards=2, replicas=2)
    with pytest.raises(ValueError, match="heartbeat_interval < heartbeat_timeout"):
        Master.check_heartbeats(1.0, 0.5)


def test_tls_pairs_are_checked_once_for_the_classes_and_the_clis() -> None:
    from aioforest.cluster import ClusterTLS
    from aioforest.wire import check_tls_pair, client_ssl_context

    check_tls_pair(None, None)
    check_tls_pair("c", "k")
    with pytest.raises(ValueError, match="--a and --b go together"):
        check_tls_pair("c", None, ("--a", "--b"))
    with pytest.raises(ValueError, match="cert and key go together"):
        client_ssl_context("ca.pem", "cert.pem")
    with pytest.raises(ValueError, match="worker_cert and worker_key go together"):
        ClusterTLS("ca.pem", "c.pem", "k.pem", worker_key="wk.pem")
    with pytest.raises(ValueError, match="needs ca"):
        ClusterTLS(None, "c.pem", "k.pem")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--oob", "--mode", "shards"], "--oob is not supported with --mode shards"),
        (["--shards", "2"], "--shards needs --mode shards"),
        (["--heartbeat-interval", "0"], "need 0 < --heartbeat-interval < --heartbeat-timeout"),
        (["--tls-cert", "c", "--tls-key", "k", "--tls-ca", "ca", "--tls-worker-cert", "w"],
         "--tls-worker-cert and --tls-worker-key go together"),
    ],
)
def test_the_master_cli_reports_the_classes_errors_as_usage_errors(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from aioforest.master import main

    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_one_integer_check_for_cluster_and_cross_validation() -> None:
    from aioforest.cluster import LocalCluster
    from aioforest.evaluation import cross_validate

    for bad in (0, True, 1.5):
        with pytest.raises(ValueError, match="n_workers must be an integer >= 1"):
            LocalCluster(bad)  # type: ignore[arg-type]
    X = np.zeros((6, 1))
    with pytest.raises(ValueError, match="folds must be an integer >= 2, got 1"):
        cross_validate(RandomForestRegressor(), X, np.arange(6), folds=1)
