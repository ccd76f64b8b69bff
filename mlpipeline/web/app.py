"""The dashboard's ASGI app (Starlette): the guard in front, then pages and
their JSON API, both built from the same library calls the CLI makes."""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from typing import Any, AsyncIterator, Dict, List, MutableMapping, Optional
from urllib.parse import parse_qsl, urlencode

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from .. import __version__
from ..core.errors import MLPipelineError
from ..core.timings import timings
from ..core.vocabulary import NotifyEvent
from ..run.notify import DeathWatch, Notifier
from .guard import SECURITY_HEADERS, cookie_name, host_name, origin_allowed, token_matches
from . import searchpage
from .curate import curate_routes
from .routes import api_routes, page_routes
from .state import Dashboard

HERE = os.path.dirname(os.path.abspath(__file__))
log = logging.getLogger(__name__)


class Guard:
    """Pure ASGI middleware (it must not buffer the event stream): the Host
    allowlist, the token, the Origin of every POST, and security headers."""

    def __init__(self, app: Any, dash: Dashboard):
        self.app, self.dash = app, dash

    async def __call__(self, scope: Dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}

        async def send_secured(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = list(message.get("headers", [])) + SECURITY_HEADERS
            await send(message)

        host = headers.get("host", "")
        if host_name(host) not in self.dash.hosts:
            await _plain(403, f"Host {host!r} is not one this dashboard serves (start it with --allow-host NAME to "
                              f"add one)")(scope, receive, send_secured)
            return
        path, method = scope["path"], scope["method"]
        if path.startswith("/static/") and method in ("GET", "HEAD"):
            await self.app(scope, receive, send_secured)
            return
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
        bearer = headers.get("authorization", "")
        by_bearer = bearer.lower().startswith("bearer ") and token_matches(bearer[7:].strip(), self.dash.token)
        cookie = cookie_name((scope.get("server") or ("", 0))[1])
        by_cookie = token_matches(_cookie(headers.get("cookie", ""), cookie), self.dash.token)
        if not (by_bearer or by_cookie):
            if method == "GET" and token_matches(query.get("token"), self.dash.token) and not path.startswith("/api/"):
                rest = urlencode([(k, v) for k, v in parse_qsl(scope.get("query_string", b"").decode("latin-1"))
                                  if k != "token"])
                target = "/" + path.lstrip("/\\")  # never //host or /\\host: that address leaves the site
                response: Response = RedirectResponse(target + ("?" + rest if rest else ""), status_code=303)
                response.set_cookie(cookie, self.dash.token, httponly=True, samesite="strict", path="/")
                await response(scope, receive, send_secured)
                return
            if path.startswith("/api/"):
                response = JSONResponse({"error": "no valid token: send Authorization: Bearer TOKEN (the token "
                                                  "mlpipeline serve printed)"}, status_code=401)
            else:
                response = HTMLResponse(_LOCKED, status_code=401)
            await response(scope, receive, send_secured)
            return
        if method not in ("GET", "HEAD"):
            origin = headers.get("origin")
            fetch_site = headers.get("sec-fetch-site", "same-origin")
            if origin is not None and not origin_allowed(origin, host) or fetch_site not in ("same-origin", "none") \
                    or origin is None and not by_bearer:
                await JSONResponse({"error": "refused: a change must come from this dashboard's own page (Origin "
                                             f"{origin or 'missing'}) or carry the token as a Bearer header"},
                                   status_code=403)(scope, receive, send_secured)
                return
        await self.app(scope, receive, send_secured)


def _plain(status: int, text: str) -> Response:
    return PlainTextResponse(text + "\n", status_code=status)


def _cookie(header: str, name: str) -> Optional[str]:
    for part in header.split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value
    return None


_LOCKED = """<!doctype html><meta charset="utf-8"><title>mlpipeline: token needed</title>
<link rel="stylesheet" href="/static/app.css"><link rel="icon" href="data:,"><main class="locked"><h1>mlpipeline</h1>
<p>This dashboard needs its token. Open the address <code>mlpipeline serve</code> printed
(it ends in <code>?token=…</code>); the browser then keeps it in a cookie for this site only.</p></main>"""


def create_app(dash: Dashboard, events_interval: Optional[float] = None) -> Any:
    """The ASGI app serving ``dash``'s project."""
    from .events import Events

    events = Events(dash) if events_interval is None else Events(dash, events_interval)
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(os.path.join(HERE, "templates")), autoescape=True,
                             undefined=jinja2.ChainableUndefined)
    templates = Jinja2Templates(env=env)
    templates.env.globals.update(version=__version__, project_name=os.path.basename(dash.project.root))
    templates.env.filters["tojson_safe"] = _tojson
    templates.env.filters["num"] = _num

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        task = asyncio.create_task(events.run())
        watch = _death_watch(dash)
        watching = asyncio.create_task(_watch_runners(dash, watch)) if watch is not None else None
        try:
            yield
        finally:
            for running in (task, watching):
                if running is not None:
                    running.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await running
            if watch is not None:
                watch.notifier.close()
            dash.close()

    routes: List[Any] = [Route("/static/plotly.min.js", _plotly),
                         Mount("/static", app=StaticFiles(directory=os.path.join(HERE, "static")), name="static"),
                         *page_routes(), *searchpage.page_routes(), *api_routes(), *searchpage.api_routes(),
                         *curate_routes()]
    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers={404: _not_found, 405: _not_allowed})
    app.state.dash, app.state.events, app.state.templates = dash, events, templates
    return Guard(app, dash)


def _death_watch(dash: Dashboard) -> Optional[DeathWatch]:
    """``[NOTIFY]`` with ``runner_died``: the dashboard tells of a runner that died (it derives liveness
    anyway). Without apprise, one warning; the dashboard serves on."""
    settings = dash.project.notify
    if settings is None or not settings.urls or NotifyEvent.RUNNER_DIED.value not in settings.on:
        return None
    try:
        notifier = Notifier(settings)
    except MLPipelineError as exc:
        log.warning("%s; the dashboard sends no runner_died notifications", exc)
        return None
    return DeathWatch(notifier, dash.project, f"mlpipeline serve (pid {os.getpid()})")


async def _watch_runners(dash: Dashboard, watch: DeathWatch) -> None:
    """Every ``notify_check`` seconds, off the event loop: runners whose row says they run but whose
    process is gone are told of, once each."""
    import anyio.to_thread

    def check() -> None:
        with dash.reader() as reader:
            if reader is not None:
                watch.check(reader)

    failing = ""
    while True:
        try:
            await anyio.to_thread.run_sync(check)
            failing = ""
        except Exception as exc:  # noqa: BLE001 - a locked or half-written ledger: look again next time
            if str(exc) != failing:
                failing = str(exc)
                log.warning("dashboard: looking for runners that died failed: %s", exc)
        await asyncio.sleep(timings().notify_check)


def _tojson(value: Any) -> str:
    """JSON for a ``<script type="application/json">`` block: ``<``, ``>`` and
    ``&`` escaped so no string can close the element."""
    from markupsafe import Markup

    from ..core.jsonable import jsonable

    text = json.dumps(jsonable(value), default=str, allow_nan=False)
    return Markup(text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e"))


def _num(value: Any) -> str:
    """A number to 4 significant digits (0.7234918 reads 0.7235); one that needs no rounding as
    Python writes it (1.0, 0.001)."""
    if isinstance(value, float):
        short = f"{value:.4g}"
        return repr(value) if float(short) == value else short
    return str(value)


def _plotly(request: Request) -> Response:
    """plotly.js from the installed plotly package: the page works offline."""
    from starlette.responses import FileResponse

    path = plotly_js()
    if path is None:
        return _plain(404, "plotly is not installed: pip install 'mlpipeline[web]'")
    return FileResponse(path, media_type="text/javascript", headers={"Cache-Control": "max-age=86400"})


def plotly_js() -> Optional[str]:
    import importlib.util

    spec = importlib.util.find_spec("plotly")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = os.path.join(list(spec.submodule_search_locations)[0], "package_data", "plotly.min.js")
    return path if os.path.exists(path) else None


async def _not_found(request: Request, exc: Exception) -> Response:
    if request.url.path.startswith("/api/"):
        return JSONResponse({"error": f"not found: {request.url.path}"}, status_code=404)
    return HTMLResponse("<!doctype html><title>not found</title><p>Not found. <a href='/'>All runs</a></p>",
                        status_code=404)


async def _not_allowed(request: Request, exc: Exception) -> Response:
    return JSONResponse({"error": f"{request.method} is not allowed on {request.url.path}"}, status_code=405)

