"""Headless Chromium driven over the DevTools protocol (a websocket, through aiohttp).

:func:`chromium` starts a browser on a free debugging port (``DevToolsActivePort`` in its
profile says which) and yields a :class:`Page`; :meth:`Page.text` reads the rendered DOM.
Where Chromium is missing, ``.ci/install-chromium`` installs it (as root, with apt).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import shutil
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent


def chromium_binary() -> str:
    """The Chromium to drive, installed first where it is missing (synchronous: call it
    from a fixture, before any event loop runs)."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        done = subprocess.run(["bash", str(ROOT / ".ci" / "install-chromium")],
                              capture_output=True, text=True, timeout=600, check=False)
        found = shutil.which("chromium")
        if found is None:
            raise RuntimeError(f"chromium is missing and could not be installed: {done.stderr}")
    return found


class Page:
    """One tab: navigate, evaluate JavaScript, take screenshots. One reader task takes
    every answer off the websocket, so calls may overlap (a pending promise, a probe)."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._ws = ws
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        async for message in self._ws:  # events (no id) are not asked for: skipped
            answer = message.json()
            future = self._waiting.pop(answer.get("id", -1), None)
            if future is not None and not future.done():
                future.set_result(answer)
        for future in self._waiting.values():
            future.cancel()

    async def close(self) -> None:
        self._reader.cancel()
        await asyncio.wait([self._reader])

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        call_id = next(self._ids)
        answer = self._waiting[call_id] = asyncio.get_running_loop().create_future()
        try:
            await self._ws.send_json({"id": call_id, "method": method, "params": params})
            message = await answer
        finally:
            self._waiting.pop(call_id, None)
        if "error" in message:
            raise RuntimeError(f"{method}: {message['error']}")
        result: dict[str, Any] = message["result"]
        return result

    async def goto(self, url: str) -> None:
        await self.call("Page.enable")
        await self.call("Page.navigate", url=url)

    async def evaluate(self, expression: str, *, await_promise: bool = False) -> Any:
        result = await self.call("Runtime.evaluate", expression=expression, returnByValue=True,
                                 awaitPromise=await_promise)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def text(self, selector: str) -> str | None:
        """The ``textContent`` of the first element ``selector`` matches (None if none)."""
        value = await self.evaluate(
            f"(e => e === null ? null : e.textContent)(document.querySelector({selector!r}))")
        return value if value is None else str(value)

    async def wait_for(self, probe: Callable[[], Awaitable[bool]], what: str,
                       timeout: float = 20.0) -> None:  # noqa: ASYNC109
        """Until ``probe()`` holds, looking again after each of the page's renders (it
        counts them in ``window.aioforestRenders`` and fires ``aioforest:rendered``)."""
        try:
            async with asyncio.timeout(timeout):
                while True:
                    seen = await self.evaluate("window.aioforestRenders || 0")
                    if await probe():
                        return
                    await self.evaluate(  # resolves at once if a render came in between
                        "new Promise(done => { const check = () => (window.aioforestRenders"
                        f" || 0) > {int(seen)} ? done(true) : document.addEventListener("
                        "'aioforest:rendered', check, {once: true}); check(); })",
                        await_promise=True)
        except TimeoutError:
            raise AssertionError(f"the page never showed {what}") from None

    async def screenshot(self, path: Path) -> bytes:
        png = base64.b64decode((await self.call("Page.captureScreenshot", format="png"))["data"])
        await asyncio.to_thread(path.write_bytes, png)
        return png


@contextlib.asynccontextmanager
async def chromium(binary: str, profile: Path) -> AsyncIterator[Page]:
    """A headless Chromium with its profile in ``profile``, closed on exit."""
    proc = await asyncio.create_subprocess_exec(
        binary, "--headless=new", "--no-sandbox", "--disable-gpu",
        "--disable-dev-shm-usage", "--no-first-run", "--window-size=1200,900",
        "--remote-debugging-port=0", f"--user-data-dir={profile}", "about:blank",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        port_file = profile / "DevToolsActivePort"
        async with asyncio.timeout(30):
            while not (port_file.exists() and len(port_file.read_text().splitlines()) >= 2):
                if proc.returncode is not None:
                    raise RuntimeError(f"chromium exited with {proc.returncode}")
                await asyncio.sleep(0.05)
        port = int(port_file.read_text().splitlines()[0])
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{port}/json/list") as r:
                targets = await r.json()
            (tab,) = [t for t in targets if t["type"] == "page"]
            async with http.ws_connect(tab["webSocketDebuggerUrl"], max_msg_size=0) as ws:
                page = Page(ws)
                try:
                    yield page
                finally:
                    await page.close()
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()
