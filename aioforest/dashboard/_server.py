"""The dashboard's HTTP server (aiohttp, imported only when a dashboard starts)."""

from __future__ import annotations

import hashlib
import hmac
import importlib.util
import logging
import secrets
import time
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any

import orjson

from ..wire import is_loopback
from ._metrics import CONTENT_TYPE, metrics_text
from ._page import LOGIN_HTML, PAGE_CSS, PAGE_HTML, PAGE_JS
from ._view import status_view

if TYPE_CHECKING:
    import ssl as ssl_module

    from aiohttp import web

__all__ = ["Dashboard", "parse_bind"]

logger = logging.getLogger("aioforest.dashboard")

COOKIE = "aioforest_dashboard"
#: Security headers on every answer: nothing from elsewhere, no framing, no sniffing.
_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def parse_bind(text: str, default_host: str = "127.0.0.1") -> tuple[str, int]:
    """``"HOST:PORT"``, ``":PORT"`` or ``"PORT"`` (on ``default_host``) as ``(host, port)``;
    an IPv6 host goes in brackets (``"[::1]:8787"``). ``ValueError`` says what is wrong."""
    host, sep, port_text = text.rpartition(":")
    if not sep:
        host, port_text = "", text
    host = host.strip("[]") or default_host
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError(f"expected HOST:PORT with a port from 0 to 65535, got {text!r}")
    return host, int(port_text)


class Dashboard:
    """Serves a status page of ``source`` (a callable returning a ``Master.status()`` dict).

    Routes: ``/`` (the page, which polls the next one every ``refresh`` seconds),
    ``/status.json`` (:func:`~aioforest.dashboard.status_view` as JSON), ``/metrics``
    (Prometheus), ``/login``. ``source`` is called at most once per ``min_interval``
    seconds, whatever the number of viewers, so a busy page does not slow training.

    Off loopback ``token`` (the cluster's) is required, and every route but ``/login``
    answers only a request with ``Authorization: Bearer <token>`` or the cookie the login
    form sets (valid for this dashboard's lifetime). The token is compared in constant
    time. Without ``ssl`` the page is plain HTTP: off loopback, serve it behind TLS.
    """

    def __init__(
        self,
        source: Callable[[], Mapping[str, Any]],
        host: str = "127.0.0.1",
        port: int = 8787,
        *,
        token: bytes | str | None = None,
        refresh: float = 1.0,
        min_interval: float = 0.25,
        ssl: ssl_module.SSLContext | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if importlib.util.find_spec("aiohttp") is None:
            raise ImportError("the dashboard needs aiohttp: pip install 'aioforest[dashboard]'")
        self._token = token.encode() if isinstance(token, str) else token
        if self._token is not None and not self._token:
            raise ValueError("token must not be empty")
        if self._token is None and not is_loopback(host):
            raise ValueError(
                f"refusing to serve the dashboard on {host!r} without the cluster token: "
                "anyone who can reach it would see the cluster. Give the master a token, "
                "or bind the dashboard to 127.0.0.1"
            )
        if not refresh > 0 or not min_interval >= 0:
            raise ValueError(f"need refresh > 0 and min_interval >= 0, got {refresh}, "
                             f"{min_interval}")
        self.host, self._requested_port = host, int(port)
        self.refresh, self.min_interval = float(refresh), float(min_interval)
        self._source, self._ssl, self._clock = source, ssl, clock
        # The login cookie: derived from the token and a secret of this process, so it
        # is not the token itself and dies with the dashboard.
        self._session = (hmac.new(self._token, secrets.token_bytes(32), hashlib.sha256)
                         .hexdigest() if self._token is not None else "")
        self._cached: tuple[float, dict[str, Any]] | None = None
        self._runner: web.AppRunner | None = None
        self._port: int | None = None
        self.login_failures = 0

    # --- lifecycle ---------------------------------------------------------------------
    async def start(self) -> Dashboard:
        """Listen (``async with`` does this); :attr:`url` says where."""
        from aiohttp import web

        if self._runner is not None:
            raise RuntimeError("a Dashboard can be started only once")
        app = web.Application(client_max_size=64 * 1024)
        app.router.add_get("/", self._page)
        app.router.add_get("/dashboard.js", self._static(PAGE_JS, "text/javascript"))
        app.router.add_get("/dashboard.css", self._static(PAGE_CSS, "text/css"))
        app.router.add_get("/status.json", self._status)
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/login", self._login_form)
        app.router.add_post("/login", self._login)
        app.on_response_prepare.append(self._secure_headers)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self._requested_port, ssl_context=self._ssl)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self._port = int(runner.addresses[0][1])
        logger.info("dashboard on %s", self.url)
        return self

    async def close(self) -> None:
        """Stop listening; open page loads are answered or cut."""
        if self._runner is not None:
            await self._runner.cleanup()

    async def __aenter__(self) -> Dashboard:
        return await self.start()

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.close()

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the dashboard is not started")
        return self._port

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'https' if self._ssl is not None else 'http'}://{host}:{self.port}/"

    # --- data --------------------------------------------------------------------------
    def view(self) -> dict[str, Any]:
        """The current :func:`status_view`, computed at most once per ``min_interval``."""
        now = self._clock()
        if self._cached is None or now - self._cached[0] >= self.min_interval:
            self._cached = (now, status_view(self._source(), now=time.time()))
        return self._cached[1]

    # --- handlers ----------------------------------------------------------------------
    def _authorized(self, request: web.Request) -> bool:
        if self._token is None:
            return True
        scheme, _, credential = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(
                credential.strip().encode(), self._token):
            return True
        cookie = request.cookies.get(COOKIE, "")
        return bool(cookie) and hmac.compare_digest(cookie.encode(), self._session.encode())

    @staticmethod
    def _refused() -> web.Response:
        from aiohttp import web

        return web.Response(status=401, text="the dashboard needs the cluster token\n",
                            headers={"WWW-Authenticate": 'Bearer realm="aioforest"'})

    async def _page(self, request: web.Request) -> web.StreamResponse:
        from aiohttp import web

        if not self._authorized(request):
            raise web.HTTPSeeOther("login")
        html = PAGE_HTML.replace("{refresh}", f"{self.refresh:g}")
        return web.Response(text=html, content_type="text/html")

    @staticmethod
    def _static(body: str, content_type: str) -> Callable[[web.Request], Any]:
        async def handler(request: web.Request) -> web.Response:
            from aiohttp import web

            return web.Response(text=body, content_type=content_type)

        return handler

    async def _status(self, request: web.Request) -> web.Response:
        from aiohttp import web

        if not self._authorized(request):
            return self._refused()
        return web.Response(body=orjson.dumps(self.view()), content_type="application/json")

    async def _metrics(self, request: web.Request) -> web.Response:
        from aiohttp import web

        if not self._authorized(request):
            return self._refused()
        return web.Response(body=metrics_text(self.view()).encode(),
                            headers={"Content-Type": CONTENT_TYPE})

    async def _login_form(self, request: web.Request) -> web.Response:
        from aiohttp import web

        return web.Response(text=LOGIN_HTML.replace("{message}", ""), content_type="text/html")

    async def _login(self, request: web.Request) -> web.Response:
        from aiohttp import web

        form = await request.post()
        given = form.get("token")
        if (self._token is not None and isinstance(given, str)
                and hmac.compare_digest(given.strip().encode(), self._token)):
            response = web.HTTPSeeOther(".")
            response.set_cookie(COOKIE, self._session, httponly=True, samesite="Strict",
                                secure=self._ssl is not None, path="/")
            raise response
        if self._token is None:
            raise web.HTTPSeeOther(".")  # nothing to log in to
        self.login_failures += 1
        logger.warning("dashboard: a login from %s gave a wrong token", request.remote)
        return web.Response(status=401, content_type="text/html",
                            text=LOGIN_HTML.replace("{message}", "Wrong token."))

    @staticmethod
    async def _secure_headers(request: web.Request, response: web.StreamResponse) -> None:
        for key, value in _HEADERS.items():
            response.headers.setdefault(key, value)
