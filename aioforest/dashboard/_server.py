"""The dashboard's HTTP server (aiohttp, imported only when a dashboard starts)."""

from __future__ import annotations

import collections
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

#: Failed logins tolerated in ``LOGIN_WINDOW`` seconds before logins pause for as long.
LOGIN_ATTEMPTS, LOGIN_WINDOW = 10, 60.0
#: Security headers on every answer: nothing from elsewhere, no framing, no sniffing.
_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def _same(given: str, expected: bytes) -> bool:
    """``given`` (from a header, a cookie or a form) equals ``expected``, in constant time."""
    try:
        raw = given.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # not text a token could be
        return False
    return hmac.compare_digest(raw, expected)


def parse_bind(text: str, default_host: str = "127.0.0.1") -> tuple[str, int]:
    """``"HOST:PORT"``, ``":PORT"`` or ``"PORT"`` (on ``default_host``) as ``(host, port)``;
    an IPv6 host goes in brackets (``"[::1]:8787"``). ``ValueError`` says what is wrong."""
    host, sep, port_text = text.rpartition(":")
    if not sep:
        host, port_text = "", text
    bracketed = host.startswith("[") and host.endswith("]")
    host = host[1:-1] if bracketed else host
    if (not port_text.isdigit() or not 0 <= int(port_text) <= 65535
            or (":" in host and not bracketed)):
        raise ValueError(f"expected HOST:PORT with a port from 0 to 65535 (an IPv6 host in "
                         f"brackets: [::1]:8787), got {text!r}")
    return host or default_host, int(port_text)


class Dashboard:
    """Serves a status page of ``source`` (a callable returning a ``Master.status()`` dict).

    Routes: ``/`` (the page, which polls the next one every ``refresh`` seconds),
    ``/status.json`` (:func:`~aioforest.dashboard.status_view` as JSON), ``/metrics``
    (Prometheus), ``/login``. ``source`` is called at most once per ``min_interval``
    seconds, whatever the number of viewers, so a busy page does not slow training.

    Off loopback ``token`` (the cluster's) is required, and every route but ``/login``
    answers only a request with ``Authorization: Bearer <token>`` or the cookie the login
    form sets (valid for this dashboard's lifetime). The token is compared in constant
    time; a login must come from the page itself (``Origin``), and after
    ``LOGIN_ATTEMPTS`` wrong tokens in ``LOGIN_WINDOW`` seconds logins pause that long.
    Without a token, only requests that name this machine in ``Host`` are answered, so a
    web page elsewhere cannot read the status through DNS rebinding. Without ``ssl`` the
    page is plain HTTP and the token crosses the network in clear: off loopback, give it
    a TLS context (the CLI uses ``--tls-cert``) or put it behind a TLS proxy.
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
        self._recent_failures: collections.deque[float] = collections.deque()

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
        if self._ssl is None and not is_loopback(self.host):
            logger.warning("dashboard: %s is plain HTTP off loopback: the cluster token "
                           "crosses the network in clear (use TLS)", self.url)
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
    def cookie(self) -> str:
        """The login cookie's name (browsers share cookies across ports: it has ours)."""
        return f"aioforest_dashboard_{self.port}"

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
            return self._names_this_machine(request.host)
        scheme, _, credential = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer" and _same(credential.strip(), self._token):
            return True
        cookie = request.cookies.get(self.cookie, "")
        return bool(cookie) and _same(cookie, self._session.encode())

    def _names_this_machine(self, host_header: str) -> bool:
        host, _, port = host_header.rpartition(":")
        return port == str(self.port) and (host.strip("[]") == "localhost"
                                           or is_loopback(host))

    def _refused(self) -> web.Response:
        from aiohttp import web

        if self._token is None:  # a request for another host name (DNS rebinding)
            return web.Response(status=421, text="this dashboard answers requests for "
                                f"127.0.0.1:{self.port} and localhost:{self.port} only\n")
        return web.Response(status=401, text="the dashboard needs the cluster token\n",
                            headers={"WWW-Authenticate": 'Bearer realm="aioforest"'})

    async def _page(self, request: web.Request) -> web.StreamResponse:
        from aiohttp import web

        if not self._authorized(request):
            if self._token is None:
                return self._refused()
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

        if self._token is None:
            raise web.HTTPSeeOther(".")  # nothing to log in to
        origin = request.headers.get("Origin")
        if origin is not None and origin.partition("://")[2] != request.host:
            # another site's form posting here (login CSRF): not from our page
            return web.Response(status=403, text="a login must come from this page\n")
        now = self._clock()
        while self._recent_failures and now - self._recent_failures[0] > LOGIN_WINDOW:
            self._recent_failures.popleft()
        if len(self._recent_failures) >= LOGIN_ATTEMPTS:
            return web.Response(status=429, text="too many wrong tokens: try again later\n",
                                headers={"Retry-After": f"{LOGIN_WINDOW:.0f}"})
        form = await request.post()
        given = form.get("token")
        if isinstance(given, str) and _same(given.strip(), self._token):
            response = web.HTTPSeeOther(".")
            response.set_cookie(self.cookie, self._session, httponly=True, samesite="Strict",
                                secure=self._ssl is not None, path="/")
            raise response
        self.login_failures += 1
        self._recent_failures.append(now)
        logger.warning("dashboard: a login from %s gave a wrong token", request.remote)
        return web.Response(status=401, content_type="text/html",
                            text=LOGIN_HTML.replace("{message}", "Wrong token."))

    @staticmethod
    async def _secure_headers(request: web.Request, response: web.StreamResponse) -> None:
        for key, value in _HEADERS.items():
            response.headers.setdefault(key, value)
