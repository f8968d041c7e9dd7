"""The status page in a real browser: headless Chromium renders it during a two-worker
fit, and the live values appear in the DOM and change as the fit advances."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from browser_helpers import Page, chromium, chromium_binary
from cluster_helpers import SteppedExecutor, in_process_cluster
from test_dashboard import Progress, stepped_fit

PNG = b"\x89PNG\r\n\x1a\n"
#: A worker may call itself anything: the page must show this as text, never run it.
HOSTILE = "<img src=x onerror=\"document.title='pwned'\">"


@pytest.fixture(scope="module")
def browser() -> str:
    return chromium_binary()


async def _rows(page: Page, table: str) -> list[dict[str, str]]:
    """The rendered rows of ``table``: each cell's text by its class name."""
    script = f"""JSON.stringify([...document.querySelectorAll({table!r} + " tbody tr")].map(
        r => Object.fromEntries([...r.cells].map((c, i) => [c.className || String(i),
                                                             c.textContent]))))"""
    rows: list[dict[str, str]] = json.loads(await page.evaluate(script))
    return rows


@pytest.mark.asyncio
async def test_the_page_shows_a_fit_live_in_chromium(tmp_path: Path, browser: str) -> None:
    executor = SteppedExecutor(2)
    progress = Progress()
    async with chromium(browser, tmp_path / "profile") as page, in_process_cluster(
            2, worker_options={"executor": executor}, names=["w0", HOSTILE],
            dashboard=("127.0.0.1", 0), backup_factor=None) as (master, _):
        assert master.dashboard is not None
        master.dashboard.refresh, master.dashboard.min_interval = 0.1, 0.0
        await page.goto(master.dashboard.url)

        async def idle() -> bool:
            return (await page.text("#worker-count") == "2"
                    and await page.text("#jobs tbody td") == "no fit running")

        await page.wait_for(idle, "two workers and no fit")
        assert await page.text("#state") == "live"
        assert await page.text("#address") == master.address
        fit = await stepped_fit(master, executor, 6, progress)
        try:
            executor.allow(2)
            await progress.reach(2)

            async def two_done() -> bool:
                return [r.get("num done") for r in await _rows(page, "#jobs")] == ["2 / 6"]

            await page.wait_for(two_done, "2 of 6 trees")
            assert (await page.screenshot(tmp_path / "dashboard-during-fit.png"))[:8] == PNG
            workers = await _rows(page, "#workers")
            assert sorted(w["name"] for w in workers) == sorted(["w0", HOSTILE])
            assert await page.evaluate("document.querySelectorAll('img').length") == 0
            assert await page.evaluate("document.title") == "aioforest master"
            assert all(w["address"].startswith("127.0.0.1:") for w in workers)
            assert sum(int(w["num trees"]) for w in workers) == 2
            assert all(w["num heartbeat"].endswith(" s ago") for w in workers)
            (job,) = await _rows(page, "#jobs")
            assert job["mode"] == "model" and job["num rate"] != "-"
            width = await page.evaluate("document.querySelector('.bar div').style.width")
            assert width == "33.3%"
            executor.allow(2)
            await progress.reach(4)

            async def four_done() -> bool:
                return [r.get("num done") for r in await _rows(page, "#jobs")] == ["4 / 6"]

            await page.wait_for(four_done, "the count move to 4 of 6")
        finally:
            executor.open()
            await fit

        async def finished() -> bool:
            return (await page.text("#trees-fitted") == "6"
                    and await page.text("#job-count") == "0")

        await page.wait_for(finished, "the finished fit")
        assert await page.text("#fault-workers_lost") == "0"
        assert (await page.screenshot(tmp_path / "dashboard-after-fit.png"))[:8] == PNG
    executor.shutdown()
