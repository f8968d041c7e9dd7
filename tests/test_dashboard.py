"""The status page: the view of a master's status, Prometheus text, the token, and
``/status.json`` and ``/metrics`` answering during a two-worker fit."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from cluster_helpers import TEST_TIMEOUT, TOKEN, SteppedExecutor, in_process_cluster, small_data
from prometheus_client.parser import text_string_to_metric_families

from aioforest import RandomForestClassifier
from aioforest.cluster import Master
from aioforest.dashboard import Dashboard, metrics_text, parse_bind, status_view


def _status(**changes: Any) -> dict[str, Any]:
    """A ``Master.status()`` as it looks during one model fit and one data fit."""
    worker = {"peer": "10.0.0.7:5100", "slots": 2, "outstanding": 3, "trees_done": 5,
              "heartbeat_age_s": 0.25, "bytes_sent_wire": 1000, "bytes_received_wire": 200}
    status: dict[str, Any] = {
        "address": "127.0.0.1:7341",
        "workers": {"w2": {**worker, "peer": "10.0.0.8:5100"}, "w1": worker},
        "tasks": {"queued": 4, "running": 3, "done": 5, "done_total": 5},
        "tasks_done_by_worker": {"w1": 5},
        "jobs": {3: {"trees": 20, "trees_done": 5, "elapsed_s": 2.0},
                 1: {"trees": 10, "trees_done": 0, "elapsed_s": 0.5}},
        "data_fits": {7: {"trees": 8, "trees_done": 4, "elapsed_s": 4.0, "rows": 1000,
                          "partitions": 3, "workers": 2, "rounds": 12, "levels": 9,
                          "batches": 1, "hist_bytes": 4096, "bytes_out": 1, "bytes_in": 2,
                          "partitions_moved": 0}},
        "datasets_sent": 2, "bytes": {"sent_raw": 9, "sent_wire": 8, "received_raw": 7,
                                      "received_wire": 6},
        "auth_failures": 1, "workers_lost": 2, "retries": 3, "backups": 4, "backups_won": 1,
        "discarded_results": 5, "cancels_sent": 6, "trees_fitted": 9, "trees_resumed": 0,
        "trees_refitted": 1,
    }
    status.update(changes)
    return status


def test_the_view_lists_fits_and_workers_with_pace_and_eta() -> None:
    view = status_view(_status(), now=1234.5)
    assert view["time"] == 1234.5
    assert [(j["mode"], j["id"]) for j in view["jobs"]] == [("model", 1), ("model", 3),
                                                            ("data", 7)]
    idle, model, data = view["jobs"]
    assert idle["trees_per_s"] is None and idle["eta_s"] is None  # nothing done yet
    assert model["trees_per_s"] == 2.5 and model["eta_s"] == 6.0 and model["fraction"] == 0.25
    assert data["rounds"] == 12 and data["hist_bytes"] == 4096 and data["eta_s"] == 4.0
    assert [w["name"] for w in view["workers"]] == ["w1", "w2"]
    w1 = view["workers"][0]
    assert (w1["address"], w1["running"], w1["tasks_done"]) == ("10.0.0.7:5100", 3, 5)
    assert view["workers"][1]["tasks_done"] == 0
    assert view["faults"]["workers_lost"] == 2 and view["faults"]["discarded_results"] == 5


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text) for s in family.samples
    }


def test_metrics_parse_as_prometheus_text_even_with_hostile_worker_names() -> None:
    odd = 'w"1\\\n{x}'
    status = _status()
    status["workers"] = {odd: status["workers"]["w1"]}
    samples = _samples(metrics_text(status_view(status, now=0.0)))
    assert samples[("aioforest_workers", ())] == 1
    assert samples[("aioforest_trees_done", ())] == 9  # 0 + 5 + 4 over the running fits
    assert samples[("aioforest_trees", ())] == 38
    assert samples[("aioforest_retries_total", ())] == 3
    assert samples[("aioforest_bytes_sent_total", (("encoding", "wire"),))] == 8
    assert samples[("aioforest_worker_running_tasks", (("worker", odd),))] == 3
    assert samples[("aioforest_job_rounds_total", (("fit", "7"), ("mode", "data")))] == 12
    assert samples[("aioforest_tasks", (("state", "queued"),))] == 4
    assert samples[("aioforest_tasks_done_total", ())] == 5


@pytest.mark.parametrize(("text", "bind"), [
    ("8787", ("127.0.0.1", 8787)), (":0", ("127.0.0.1", 0)),
    ("0.0.0.0:80", ("0.0.0.0", 80)), ("[::1]:8787", ("::1", 8787)),
])
def test_binds_parse(text: str, bind: tuple[str, int]) -> None:
    assert parse_bind(text) == bind


@pytest.mark.parametrize("text", ["", "host:", "host:http", "1:65536", "-1", "::1"])
def test_bad_binds_say_what_is_expected(text: str) -> None:
    with pytest.raises(ValueError, match="expected HOST:PORT"):
        parse_bind(text)


def test_off_loopback_without_a_token_is_refused() -> None:
    with pytest.raises(ValueError, match="without the cluster token"):
        Dashboard(_status, "0.0.0.0")
    with pytest.raises(ValueError, match="without the cluster token"):
        Master(dashboard=("0.0.0.0", 0))


def test_the_source_is_read_at_most_once_per_interval() -> None:
    calls, now = [], [0.0]

    def source() -> dict[str, Any]:
        calls.append(now[0])
        return _status(trees_fitted=len(calls))

    dash = Dashboard(source, min_interval=1.0, clock=lambda: now[0])
    assert dash.view()["trees_fitted"] == 1
    now[0] = 0.9
    assert dash.view()["trees_fitted"] == 1
    now[0] = 1.0
    assert dash.view()["trees_fitted"] == 2 and calls == [0.0, 1.0]


@pytest_asyncio.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    # unsafe=True: keep cookies of an IP address (127.0.0.1), as browsers do
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        yield session


@pytest.mark.asyncio
async def test_with_a_token_every_page_needs_the_bearer_or_the_login_cookie(
        http: aiohttp.ClientSession) -> None:
    async with asyncio.timeout(TEST_TIMEOUT), Dashboard(_status, port=0, token="s3cret") as dash:
        url = dash.url
        async with http.get(url + "status.json") as r:
            assert r.status == 401 and r.headers["WWW-Authenticate"].startswith("Bearer")
        async with http.get(url + "metrics", headers={"Authorization": "Bearer nope"}) as r:
            assert r.status == 401
        async with http.get(url + "metrics", headers={"Authorization": "Bearer s3cret"}) as r:
            assert r.status == 200 and "aioforest_workers 2" in await r.text()
            assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        async with http.get(url, allow_redirects=False) as r:
            assert r.status == 303 and r.headers["Location"] == "login"
        async with http.post(url + "login", data={"token": "guess"}) as r:
            assert r.status == 401 and "Wrong token" in await r.text()
        assert dash.login_failures == 1
        async with http.post(url + "login", data={"token": "s3cret"},
                             allow_redirects=False) as r:
            assert r.status == 303 and r.headers["Location"] == "."
            set_cookie = r.headers["Set-Cookie"]
            assert set_cookie.startswith(dash.cookie + "=")
            assert "HttpOnly" in set_cookie and "SameSite=Strict" in set_cookie
            assert "s3cret" not in set_cookie  # a value derived from it, not the token
        async with http.get(url) as r:
            assert r.status == 200 and 'id="workers"' in await r.text()
            assert "default-src 'self'" in r.headers["Content-Security-Policy"]
        async with http.get(url + "status.json") as r:  # the cookie the login set
            assert r.status == 200 and (await r.json())["address"] == "127.0.0.1:7341"
        async with http.post(url + "login", data={"token": "s3cret"},
                             headers={"Origin": "http://evil.example"}) as r:
            assert r.status == 403  # another site's form: no cookie for it


@pytest.mark.asyncio
async def test_logins_pause_after_too_many_wrong_tokens(http: aiohttp.ClientSession) -> None:
    from aioforest.dashboard._server import LOGIN_ATTEMPTS, LOGIN_WINDOW

    now = [0.0]
    async with asyncio.timeout(TEST_TIMEOUT), Dashboard(
            _status, port=0, token="s3cret", clock=lambda: now[0]) as dash:
        for _ in range(LOGIN_ATTEMPTS):
            async with http.post(dash.url + "login", data={"token": "guess"}) as r:
                assert r.status == 401
        async with http.post(dash.url + "login", data={"token": "s3cret"}) as r:
            assert r.status == 429 and r.headers["Retry-After"] == "60"
        now[0] = LOGIN_WINDOW + 1.0  # the failures have aged out
        async with http.post(dash.url + "login", data={"token": "s3cret"}) as r:
            assert r.status == 200 and 'id="workers"' in await r.text()


@pytest.mark.asyncio
async def test_credentials_that_are_not_text_are_refused_not_crashed_on() -> None:
    async with asyncio.timeout(TEST_TIMEOUT), Dashboard(_status, port=0, token="s3cret") as dash:
        reader, writer = await asyncio.open_connection("127.0.0.1", dash.port)
        writer.write(b"GET /status.json HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     b"Authorization: Bearer \xff\xfe\r\nCookie: " + dash.cookie.encode()
                     + b"=\xc3\x28\r\nConnection: close\r\n\r\n")
        await writer.drain()
        status_line = await reader.readline()
        writer.close()
        await writer.wait_closed()
        assert status_line.split()[1] == b"401"


@pytest.mark.asyncio
async def test_without_a_token_only_this_machines_names_are_answered(
        http: aiohttp.ClientSession) -> None:
    # a web page elsewhere whose name resolves to 127.0.0.1 (DNS rebinding) reads nothing
    async with asyncio.timeout(TEST_TIMEOUT), Dashboard(_status, port=0) as dash:
        for host, status in [(f"127.0.0.1:{dash.port}", 200), (f"localhost:{dash.port}", 200),
                             (f"evil.example:{dash.port}", 421), ("127.0.0.1:1", 421)]:
            for path in ("", "status.json", "metrics"):
                async with http.get(dash.url + path, headers={"Host": host}) as r:
                    assert r.status == status, (host, path)


async def _get(http: aiohttp.ClientSession, url: str) -> tuple[dict[str, Any], str]:
    async with http.get(url + "status.json") as r:
        view = await r.json()
    async with http.get(url + "metrics") as r:
        return view, await r.text()


class Progress:
    """``on_progress`` that lets a test wait until ``n`` trees are done."""

    def __init__(self) -> None:
        self.done = 0
        self._changed = asyncio.Event()

    def __call__(self, progress: Any) -> None:
        self.done = progress.done
        self._changed.set()

    async def reach(self, n: int) -> None:
        while self.done < n:
            self._changed.clear()
            await self._changed.wait()


async def stepped_fit(master: Master, executor: SteppedExecutor, n_trees: int,
                      progress: Progress) -> asyncio.Future[Any]:
    X, y = small_data(400, 5)
    forest = RandomForestClassifier(n_estimators=n_trees, random_state=0)
    return asyncio.ensure_future(
        master.fit(forest, X, y, task_size=1, on_progress=progress))


@pytest.mark.asyncio
async def test_status_json_and_metrics_follow_a_fit_on_two_workers(
        http: aiohttp.ClientSession) -> None:
    executor = SteppedExecutor(2)
    progress = Progress()
    # no backup copies: each permit is one tree of the fit, nothing else
    async with in_process_cluster(2, worker_options={"executor": executor},
                                  dashboard=("127.0.0.1", 0), backup_factor=None) as (master, _):
        assert master.dashboard is not None
        master.dashboard.min_interval = 0.0  # every request sees the latest status
        url = master.dashboard.url
        idle, _ = await _get(http, url)
        assert idle["jobs"] == [] and len(idle["workers"]) == 2
        fit = await stepped_fit(master, executor, 6, progress)
        try:
            seen = []
            for done in (2, 4):
                executor.allow(2)
                await progress.reach(done)
                view, text = await _get(http, url)
                (job,) = view["jobs"]
                assert (job["mode"], job["trees_done"], job["trees"]) == ("model", done, 6)
                assert job["trees_per_s"] > 0 and math.isfinite(job["eta_s"])
                assert sum(w["trees_done"] for w in view["workers"]) == done
                assert {w["name"] for w in view["workers"]} == {"w0", "w1"}
                assert all(w["address"].startswith("127.0.0.1:") for w in view["workers"])
                samples = _samples(text)
                assert samples[("aioforest_trees_done", ())] == done
                assert samples[("aioforest_workers", ())] == 2
                seen.append((view["bytes"]["received_wire"], view["trees_fitted"]))
            assert seen[1][0] > seen[0][0] and seen[1][1] > seen[0][1]  # they moved
        finally:
            executor.open()
            await fit
        view, text = await _get(http, url)
        assert view["jobs"] == [] and view["trees_fitted"] == 6
        assert _samples(text)[("aioforest_trees_fitted_total", ())] == 6
    executor.shutdown()
    with pytest.raises(aiohttp.ClientConnectionError):  # the page stops with the master
        await _get(http, url)


@pytest.mark.asyncio
async def test_a_master_dashboard_off_loopback_asks_for_the_cluster_token(
        http: aiohttp.ClientSession) -> None:
    async with asyncio.timeout(TEST_TIMEOUT), Master(
            token=TOKEN, dashboard=("0.0.0.0", 0)) as master:
        assert master.dashboard is not None
        url = f"http://127.0.0.1:{master.dashboard.port}/"
        async with http.get(url + "status.json") as r:
            assert r.status == 401
        bearer: Callable[[bytes], dict[str, str]] = lambda t: {  # noqa: E731
            "Authorization": "Bearer " + t.decode()}
        async with http.get(url + "status.json", headers=bearer(TOKEN)) as r:
            assert r.status == 200 and (await r.json())["workers"] == []


@pytest.mark.asyncio
async def test_a_data_parallel_fit_shows_its_rounds_and_histogram_bytes(
        tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from test_data_partitions import _lines, _write

    import aioforest.cluster._data_parallel as data_parallel
    from aioforest import Partitions

    monkeypatch.setattr(data_parallel, "SUBTREE_MIN_ROWS", 60)  # level-wise rounds first
    monkeypatch.setattr(data_parallel, "SUBTREE_SHARE", 10**9)
    _write(tmp_path, _lines(600), [200, 400])
    seen: list[dict[str, Any]] = []
    async with in_process_cluster(2) as (master, _):
        def snapshot(progress: Any) -> None:
            seen.append(status_view(master.status(), now=0.0))

        forest = RandomForestClassifier(n_estimators=3, random_state=1)
        await master.fit(forest, Partitions(str(tmp_path / "part-*.csv")), mode="data",
                         on_progress=snapshot)
        after = status_view(master.status(), now=0.0)
    jobs = [view["jobs"] for view in seen]
    assert [[(j["mode"], j["trees_done"], j["trees"]) for j in js] for js in jobs] == [
        [("data", 1, 3)], [("data", 2, 3)], [("data", 3, 3)]]
    last = jobs[-1][0]
    assert last["rounds"] > 0 and last["hist_bytes"] > 0 and last["partitions"] == 2
    assert last["rows"] == 600 and last["rounds"] == forest.data_parallel_stats_["rounds"]
    assert after["jobs"] == []
    samples = _samples(metrics_text(seen[-1]))
    assert samples[("aioforest_job_histogram_bytes_total",
                    (("fit", str(last["id"])), ("mode", "data")))] == last["hist_bytes"]
