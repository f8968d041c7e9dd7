"""Clusters over TLS on loopback: in-process workers, LocalCluster subprocesses, the CLI."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest
from cluster_helpers import HOST, TEST_TIMEOUT, TOKEN, in_process_cluster, small_data
from forest_helpers import assert_same_forest
from tls_certs import write_pki

from aioforest import RandomForestClassifier
from aioforest.cluster import Backoff, ClusterTLS, LocalCluster, Master, Worker
from aioforest.wire import client_ssl_context, server_ssl_context


@pytest.fixture
def pki(tmp_path: Path) -> dict[str, str]:
    return write_pki(tmp_path)


@pytest.mark.asyncio
async def test_mutual_tls_cluster_fit_matches_a_local_fit(pki: dict[str, str]) -> None:
    X, y = small_data(n=150, d=4, seed=3)
    local = RandomForestClassifier(n_estimators=6, random_state=2).fit(X, y)
    server = server_ssl_context(pki["server_cert"], pki["server_key"], ca=pki["ca"])
    client = client_ssl_context(pki["ca"], pki["client_cert"], pki["client_key"])
    async with in_process_cluster(2, ssl=server, worker_ssl=client) as (master, _):
        forest = await master.fit(RandomForestClassifier(n_estimators=6, random_state=2), X, y)
        peers = [w["peer"] for w in master.status()["workers"].values()]
    assert len(peers) == 2
    assert_same_forest(forest, local)


@pytest.mark.asyncio
async def test_a_mutual_tls_master_refuses_a_worker_without_a_certificate(
    pki: dict[str, str],
) -> None:
    server = server_ssl_context(pki["server_cert"], pki["server_key"], ca=pki["ca"])
    no_cert = client_ssl_context(pki["ca"])
    async with asyncio.timeout(TEST_TIMEOUT), Master(token=TOKEN, ssl=server) as master:
        worker = Worker(HOST, master.port, TOKEN, processes=1, ssl=no_cert,
                        backoff=Backoff(max_attempts=1))
        with pytest.raises(ConnectionError, match="after 1 attempts"):
            await worker.run()
        assert master.workers == []


@pytest.mark.asyncio
async def test_a_worker_refuses_a_master_from_an_untrusted_ca(pki: dict[str, str]) -> None:
    server = server_ssl_context(pki["server_cert"], pki["server_key"])
    wrong_ca = client_ssl_context(pki["other_ca"])
    async with asyncio.timeout(TEST_TIMEOUT), Master(token=TOKEN, ssl=server) as master:
        worker = Worker(HOST, master.port, TOKEN, processes=1, ssl=wrong_ca,
                        backoff=Backoff(max_attempts=1))
        with pytest.raises(ConnectionError, match="certificate verify failed"):
            await worker.run()
        assert master.workers == []


@pytest.mark.asyncio
async def test_local_cluster_passes_tls_to_its_worker_processes(pki: dict[str, str]) -> None:
    X, y = small_data(n=120, d=3, seed=6)
    local = RandomForestClassifier(n_estimators=4, random_state=1).fit(X, y)
    tls = ClusterTLS(pki["ca"], pki["server_cert"], pki["server_key"],
                     pki["client_cert"], pki["client_key"])
    async with asyncio.timeout(TEST_TIMEOUT), LocalCluster(2, tls=tls) as cluster:
        forest = await cluster.master.fit(
            RandomForestClassifier(n_estimators=4, random_state=1), X, y
        )
        assert len(cluster.master.workers) == 2
    assert_same_forest(forest, local)
    np.testing.assert_array_equal(forest.predict(X), local.predict(X))
    assert all(p.returncode == 0 for p in cluster.processes)


def test_cli_master_with_tls_and_local_workers(
    pki: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    from aioforest.master import main

    argv = ["--trees", "4", "--seed", "2", "--local-workers", "1", "-q",
            "--tls-cert", pki["server_cert"], "--tls-key", pki["server_key"],
            "--tls-ca", pki["ca"], "--tls-worker-cert", pki["client_cert"],
            "--tls-worker-key", pki["client_key"]]
    assert main(argv) == 0
    assert "trained 4 trees" in capsys.readouterr().out


def test_cli_tls_usage_errors(pki: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    from aioforest.master import main as master_main
    from aioforest.worker import main as worker_main

    for argv, message in [
        (["--tls-cert", pki["server_cert"]], "--tls-cert and --tls-key go together"),
        (["--tls-ca", pki["ca"]], "need --tls-cert/--tls-key"),
        (["--tls-cert", pki["server_cert"], "--tls-key", pki["server_key"]],
         "TLS with local workers needs --tls-ca"),
    ]:
        with pytest.raises(SystemExit):
            master_main(argv)
        assert message in capsys.readouterr().err
    for argv, message in [
        (["--connect", "127.0.0.1:1", "--tls-cert", "c"], "--tls-cert and --tls-key go together"),
        (["--connect", "127.0.0.1:1", "--tls-cert", "c", "--tls-key", "k"], "needs --tls-ca"),
    ]:
        with pytest.raises(SystemExit):
            worker_main(argv)
        assert message in capsys.readouterr().err
    missing = str(Path(pki["ca"]).parent / "missing.pem")
    assert worker_main(["--connect", "127.0.0.1:1", "--tls-ca", missing]) == 2
    assert "cannot load the TLS files" in capsys.readouterr().err
