"""The dashboard's pages and JSON API. Every handler reads through the CLI's
own library calls (``queries``, ``status``) and steers only through the queue
config and the requests table; uploads and ``predict`` run in child processes."""
from __future__ import annotations

import asyncio
import json
import os
import tempfile
from typing import Any, Callable, Dict, List, Optional

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from ..core.layout import run_log
from ..core.errors import LedgerError, MLPipelineError, UsageError
from ..core.lifecycle import Mode, RunStatus
from ..read.queries import count_runs, list_runs, metric_columns, metric_curves, resolve_run, show_run
from .files import (UploadRejected, check_script_upload, defines_predict, list_files, model_dir_of, safe_input_name,
                    save_script, zip_stream)
from .guard import Refused, confine
from .state import Dashboard

RUN_STATUSES = tuple(status.value for status in RunStatus)
SORTABLE = ("id", "script", "version", "mode", "status", "started", "duration")
LOG_CHUNK = 1 << 20
NO_LEDGER = "no runs recorded yet in this project; start one with mlpipeline -r"


def _dash(request: Request) -> Dashboard:
    return request.app.state.dash


def _status_code(exc: Exception) -> int:
    if isinstance(exc, Refused):
        return 404
    if isinstance(exc, LedgerError):
        return 503
    text = str(exc)
    if "not found" in text or "no runs recorded" in text:
        return 404
    if any(part in text for part in ("no runner is working", "already exists", "is not running",
                                     "works on this project", "is running; cancel it first")):
        return 409
    if "over the limit" in text or "over the upload limit" in text:
        return 413
    return 400


def _error_json(exc: Exception) -> JSONResponse:
    if isinstance(exc, Refused):
        return JSONResponse({"error": "not found"}, status_code=404)
    body: Dict[str, Any] = {"error": str(exc)}
    if isinstance(exc, UploadRejected) and exc.details:
        body["details"] = exc.details
    return JSONResponse(body, status_code=_status_code(exc))


def _json(data: Any, status: int = 200) -> Response:
    """Strict JSON: a non-finite number is null (and a string saying "NaN" stays a string)."""
    from ..core.jsonable import jsonable

    return Response(json.dumps(jsonable(data), default=str, allow_nan=False), status_code=status,
                    media_type="application/json")


def _api(handler: Callable[[Request], Any]) -> Callable[[Request], Any]:
    """A sync JSON endpoint (run in the thread pool): library errors become
    4xx answers with their one-line message."""
    def endpoint(request: Request) -> Response:
        try:
            result = handler(request)
        except (MLPipelineError, Refused) as exc:
            return _error_json(exc)
        return result if isinstance(result, Response) else _json(result)
    endpoint.__name__ = handler.__name__
    return endpoint


def _page(name: str, build: Callable[[Request], Dict[str, Any]]) -> Callable[[Request], Response]:
    def endpoint(request: Request) -> Response:
        templates = request.app.state.templates
        try:
            context = build(request)
        except (MLPipelineError, Refused) as exc:
            status = 404 if isinstance(exc, Refused) else _status_code(exc)
            return templates.TemplateResponse(request, "error.html", {"message": str(exc) if status != 404 or
                                                                      not isinstance(exc, Refused) else "not found"},
                                              status_code=status)
        template = context.pop("_template", name)
        return templates.TemplateResponse(request, template, context, headers={"Cache-Control": "no-store"})
    endpoint.__name__ = name.replace(".", "_")
    return endpoint


def _need(ledger: Any) -> Any:
    if ledger is None:
        raise UsageError(NO_LEDGER)
    return ledger


def _int(value: Optional[str], default: int, low: int, high: int, name: str) -> int:
    if value in (None, ""):
        return default
    try:
        number = int(str(value))
    except ValueError:
        raise UsageError(f"{name}={value!r}: give a whole number") from None
    return max(low, min(high, number))


# -- runs ----------------------------------------------------------------------------------------------------

def _run_filters(request: Request) -> Dict[str, Any]:
    q = request.query_params
    status, mode = q.get("status") or None, q.get("mode") or None
    if status and status not in RUN_STATUSES:
        raise UsageError(f"status={status!r}: one of {', '.join(RUN_STATUSES)}")
    if mode and mode not in ("test", "run"):
        raise UsageError(f"mode={mode!r}: test or run")
    return {"script": q.get("script") or None, "version": q.get("version") or None, "status": status, "mode": mode,
            "text": q.get("q") or None, "tags": [t for t in q.getlist("tag") if t],
            "deleted": q.get("all") in ("1", "true", "on")}


def _runs_query(request: Request, ledger: Any) -> Dict[str, Any]:
    q = request.query_params
    filters = _run_filters(request)
    limit = _int(q.get("limit") or q.get("per"), 50, 1, 500, "limit")
    if "offset" in q:
        offset = _int(q.get("offset"), 0, 0, 10 ** 9, "offset")
    else:
        offset = (_int(q.get("page"), 1, 1, 10 ** 7, "page") - 1) * limit
    sort = q.get("sort") or None
    descending = q.get("desc", "1" if sort in (None, "id", "started") else "0") not in ("0", "false", "")
    # (the page's columns are the results: a run without any shows its curves on its own page)
    rows = list_runs(ledger, **filters, sort=sort, descending=descending, offset=offset, limit=limit, last=False)
    total = count_runs(ledger, **filters)
    return {"runs": rows, "total": total, "offset": offset, "limit": limit, "sort": sort or "id",
            "descending": descending, "filters": filters}


def runs_page(request: Request) -> Dict[str, Any]:
    with _dash(request).reader() as ledger:
        if ledger is None:
            return {"empty": NO_LEDGER, "runs": [], "metric_names": [], "scripts": [], "filters": {}, "total": 0,
                    "_template": "runs.html"}
        data = _runs_query(request, ledger)
        data["scripts"] = ledger.scripts()
        data["known_metrics"] = metric_columns(ledger)
    names: List[str] = []
    for row in data["runs"]:
        names += [m for m in row["metrics"] if m not in names]
    data["metric_names"] = names
    data["query"] = {k: v for k, v in request.query_params.items() if k not in ("page", "offset", "fragment")}
    data["page"] = data["offset"] // data["limit"] + 1
    data["pages"] = max(1, -(-data["total"] // data["limit"]))
    data["columns"] = SORTABLE
    data["statuses"] = RUN_STATUSES
    if request.query_params.get("fragment"):
        data["_template"] = "_runs_table.html"
    return data


@_api
def api_runs(request: Request) -> Any:
    with _dash(request).reader() as ledger:
        return _runs_query(request, _need(ledger))


def _run_record(dash: Dashboard, ledger: Any, run_id: str) -> Dict[str, Any]:
    from ..run.predict import list_predictions
    from ..script.results import load_results

    record = show_run(_need(ledger), run_id)
    try:
        base = model_dir_of(dash.project, record)
        record["files"], record["files_error"] = list_files(base), None
    except UsageError as exc:
        record["files"], record["files_error"] = [], str(exc)
    run_dir = record.get("run_dir")
    record["results"] = load_results(run_dir) if run_dir else None
    record["predictions"] = list_predictions(run_dir) if run_dir else []
    record["has_predict"] = defines_predict(os.path.join(dash.project.root, record["script"]))
    return record


def run_page(request: Request) -> Dict[str, Any]:
    dash = _dash(request)
    with dash.reader() as ledger:
        record = _run_record(dash, ledger, str(request.path_params["run_id"]))
    return {"run": record}


@_api
def api_run(request: Request) -> Any:
    dash = _dash(request)
    with dash.reader() as ledger:
        return _run_record(dash, ledger, str(request.path_params["run_id"]))


@_api
def api_metrics(request: Request) -> Any:
    points = _int(request.query_params.get("max_points"), 2000, 10, 1_000_000, "max_points")
    with _dash(request).reader() as ledger:
        ledger = _need(ledger)
        run = resolve_run(ledger, str(request.path_params["run_id"]))
        curves = metric_curves(ledger, run["id"], max_points=points)
    name = request.query_params.get("name")
    if name:
        curves = [c for c in curves if name in (c["name"], f"{c['split']}/{c['name']}")]
    return {"run": run["id"], "curves": curves}


@_api
def api_log(request: Request) -> Any:
    offset = _int(request.query_params.get("offset"), 0, 0, 1 << 60, "offset")
    with _dash(request).reader() as ledger:
        run = resolve_run(_need(ledger), str(request.path_params["run_id"]))
    running = not RunStatus(run["status"]).finished
    path = run_log(run["run_dir"]) if run["run_dir"] else None
    if not path or not os.path.isfile(path):
        return {"run": run["id"], "offset": 0, "size": 0, "data": "", "running": running,
                "missing": "no captured output for this run" if not running else "no output yet"}
    size = os.path.getsize(path)
    with open(path, "rb") as handle:
        handle.seek(min(offset, size))
        data = handle.read(LOG_CHUNK)
    data = _whole_chars(data)
    return {"run": run["id"], "offset": min(offset, size) + len(data), "size": size,
            "data": data.decode("utf-8", "replace"), "running": running}


def _whole_chars(data: bytes) -> bytes:
    """``data`` without a UTF-8 character cut off at its end (the next read starts with it)."""
    for back in range(1, min(4, len(data)) + 1):
        byte = data[-back]
        if byte & 0xC0 != 0x80:  # the last lead byte (or ASCII)
            need = 1 if byte < 0x80 else 2 if byte < 0xE0 else 3 if byte < 0xF0 else 4
            return data if need <= back else data[:-back]
    return data


def _run_base(request: Request) -> tuple:
    dash = _dash(request)
    with dash.reader() as ledger:
        run = resolve_run(_need(ledger), str(request.path_params["run_id"]))
    return run, model_dir_of(dash.project, run)


@_api
def api_file(request: Request) -> Any:
    run, base = _run_base(request)
    path = confine(base, request.path_params["path"])
    if not os.path.isfile(path):
        raise Refused(request.path_params["path"])
    return FileResponse(path, filename=os.path.basename(path), content_disposition_type="attachment",
                        media_type="application/octet-stream")


@_api
def api_zip(request: Request) -> Any:
    run, base = _run_base(request)
    top = os.path.basename(base) or f"run-{run['id']}"
    return StreamingResponse(zip_stream(base, top), media_type="application/zip",
                             headers={"Content-Disposition": f'attachment; filename="{_ascii(top)}.zip"'})


def _ascii(name: str) -> str:
    return "".join(c if c.isascii() and (c.isalnum() or c in "._-") else "_" for c in name)


# -- compare ---------------------------------------------------------------------------------------------------

def compare_page(request: Request) -> Dict[str, Any]:
    from ..read.seeds import SEED, compare_view

    q = request.query_params
    script, metric, seed = q.get("script") or "", q.get("metric") or None, q.get("seed_param") or SEED
    with _dash(request).reader() as ledger:
        ledger = _need(ledger)
        scripts = ledger.scripts(mode=Mode.RUN)
        script = script or (scripts[0] if scripts else "")  # the page opens on the first script
        detail = compare_view(ledger, script, metric=metric, seed_param=seed) if script else None
    return {"scripts": scripts, "script": script, "metric": metric, "detail": detail}


@_api
def api_compare(request: Request) -> Any:
    from ..read.seeds import SEED, compare_view

    q = request.query_params
    if not q.get("script"):
        raise UsageError("compare: give ?script=NAME")
    with _dash(request).reader() as ledger:
        return compare_view(_need(ledger), q["script"], metric=q.get("metric") or None,
                            seed_param=q.get("seed_param") or SEED)


# -- the queue ---------------------------------------------------------------------------------------------------

def queue_state(dash: Dashboard) -> Dict[str, Any]:
    from ..plan.config import read_queue_config
    from ..read.status import project_status

    with dash.reader() as ledger:
        state = project_status(dash.project, ledger)
    path = dash.project.config_path(False)
    scripts = sorted(f for f in os.listdir(dash.project.models_dir)
                     if f.endswith(".py") and os.path.isfile(os.path.join(dash.project.models_dir, f)))
    config: Dict[str, Any] = {"path": os.path.relpath(path, dash.project.root), "error": None,
                              "use_blacklist": False, "scripts": []}
    try:
        parsed = read_queue_config(path) if os.path.exists(path) else None
    except MLPipelineError as exc:
        parsed, config["error"] = None, str(exc)
    white = {e.name: (i, e.versions) for i, e in enumerate(parsed.whitelist)} if parsed else {}
    black = {e.name: e.versions for e in parsed.blacklist} if parsed else {}
    if parsed:
        config["use_blacklist"] = parsed.use_blacklist
    names = [e.name for e in parsed.whitelist] if parsed else []
    names += [s for s in scripts if s not in names]
    for name in names:
        entry = {"script": name, "exists": name in scripts, "whitelisted": name in white,
                 "position": white[name][0] + 1 if name in white else None,
                 "versions": white[name][1] if name in white else None,
                 "blacklisted": name in black, "blacklisted_versions": black.get(name)}
        config["scripts"].append(entry)
    state["config"] = config
    return state


def queue_page(request: Request) -> Dict[str, Any]:
    data: Dict[str, Any] = {"state": queue_state(_dash(request))}
    if request.query_params.get("fragment"):
        data["_template"] = "_queue_body.html"
    return data


@_api
def api_status(request: Request) -> Any:
    return queue_state(_dash(request))


async def _body_json(request: Request) -> Dict[str, Any]:
    raw = await _read_body(request, 64 << 10)
    try:
        data = json.loads(raw or b"{}")
    except ValueError:
        raise UsageError("send a JSON object (Content-Type: application/json)") from None
    if not isinstance(data, dict):
        raise UsageError("send a JSON object")
    return data


async def _read_body(request: Request, limit: int, what: str = "request body") -> bytes:
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > limit:
        raise UsageError(f"{what}: {length} bytes is over the limit of {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise UsageError(f"{what}: over the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


SLOW_AT_ONCE = 2  # uploads checked and predictions run at once; more wait without holding a worker thread


def _post(handler: Callable[..., Any], slow: bool = False) -> Callable[[Request], Any]:
    """An async POST endpoint whose blocking part runs in the thread pool. A ``slow`` one (a child
    process that runs user code, up to its time limit) takes a thread from a small pool of its own,
    so slow uploads never hold the threads that pages and API reads answer from."""
    async def endpoint(request: Request) -> Response:
        import functools

        import anyio
        import anyio.to_thread

        run_sync: Any = anyio.to_thread.run_sync
        if slow:
            state = request.app.state
            if getattr(state, "slow_limiter", None) is None:
                state.slow_limiter = anyio.CapacityLimiter(SLOW_AT_ONCE)
            run_sync = functools.partial(anyio.to_thread.run_sync, limiter=state.slow_limiter)
        try:
            result = await handler(request, run_sync)
        except (MLPipelineError, Refused) as exc:
            return _error_json(exc)
        return result if isinstance(result, Response) else _json(result)
    endpoint.__name__ = handler.__name__.lstrip("_")
    return endpoint


@_post
async def api_queue(request: Request, run_sync: Any) -> Any:
    from ..plan import config_edit

    data = await _body_json(request)
    dash = _dash(request)
    path = dash.project.config_path(False)
    action = data.get("action")
    script = str(data.get("script") or "")
    if action == "whitelist":
        versions = data.get("versions") or None
        if versions is not None and (not isinstance(versions, list) or not all(isinstance(v, str) for v in versions)):
            raise UsageError("versions: give a list of version names")
        changed = await run_sync(config_edit.whitelist, path, script, versions)
    elif action == "blacklist":
        changed = await run_sync(config_edit.blacklist, path, script)
    elif action == "unlist":
        changed = await run_sync(config_edit.unlist, path, script)
    elif action == "reorder":
        order = data.get("order")
        if not isinstance(order, list) or not all(isinstance(s, str) for s in order):
            raise UsageError("reorder: give order as a list of script names")
        changed = await run_sync(config_edit.reorder, path, order)
    elif action == "use_blacklist":
        changed = await run_sync(config_edit.set_use_blacklist, path, bool(data.get("value")))
    else:
        raise UsageError(f"action {action!r}: one of whitelist, blacklist, unlist, reorder, use_blacklist")
    changed = changed.replace(path, os.path.relpath(path, dash.project.root))
    return {"changed": changed, "state": await run_sync(queue_state, dash)}


def _ask(dash: Dashboard, kind: str, ref: Optional[str] = None) -> Dict[str, Any]:
    from ..read.status import request as ask

    with dash.reader() as ledger:
        ledger = _need(ledger)
        payload: Optional[Dict[str, Any]] = None
        if kind == "rerun":
            run = resolve_run(ledger, str(ref))
            if not run["version"]:
                raise UsageError(f"run {run['id']} is not a version's run (its script failed to load); nothing "
                                 f"to run again")
            payload, ref = {"script": run["script"], "version": run["version"]}, None
        asked = ask(dash.project, ledger, kind, ref, payload)
    return {"requested": kind, "request": asked["request"], "run": asked["run"]["id"] if asked["run"] else None,
            "runner": asked["runner"]["pid"]}


@_post
async def api_cancel(request: Request, run_sync: Any) -> Any:
    return await run_sync(_ask, _dash(request), "cancel", str(request.path_params["run_id"]))


@_post
async def api_rerun(request: Request, run_sync: Any) -> Any:
    return await run_sync(_ask, _dash(request), "rerun", str(request.path_params["run_id"]))


@_post
async def api_pause(request: Request, run_sync: Any) -> Any:
    return await run_sync(_ask, _dash(request), "pause")


@_post
async def api_resume(request: Request, run_sync: Any) -> Any:
    return await run_sync(_ask, _dash(request), "resume")


async def _api_upload(request: Request, run_sync: Any) -> Any:
    dash = _dash(request)
    name = request.query_params.get("name") or ""
    replace = request.query_params.get("replace") in ("1", "true", "on")
    if not name.endswith(".py"):
        raise UsageError(f"{name!r}: only Python model scripts (.py) can be uploaded")
    data = await _read_body(request, dash.max_upload, f"{name} (upload limit; mlpipeline serve --max-upload)")
    check_script_upload(name, data, dash.max_upload)
    saved = await run_sync(save_script, dash.project, name, data, replace, dash.probe_timeout)
    return saved


api_upload = _post(_api_upload, slow=True)


async def _api_predict(request: Request, run_sync: Any) -> Any:
    from ..run.predict import run_predict

    dash = _dash(request)
    name = safe_input_name(request.query_params.get("name"))
    data = await _read_body(request, dash.max_input, f"{name} (input limit)")

    def work() -> Any:
        with dash.reader() as ledger:
            run = resolve_run(_need(ledger), str(request.path_params["run_id"]))
        with tempfile.TemporaryDirectory(prefix="mlp-predict-") as folder:
            path = os.path.join(folder, name)
            with open(path, "wb") as handle:
                handle.write(data)
            return run_predict(dash.project, run, path, timeout=dash.predict_timeout)
    return await run_sync(work)


api_predict = _post(_api_predict, slow=True)


async def api_events(request: Request) -> Response:
    from .events import KEEPALIVE, sse

    events = request.app.state.events
    queue = events.subscribe()

    async def stream() -> Any:
        try:
            yield "retry: 2000\n\n" + sse("hello", {"sent": events.sent})
            while True:
                try:
                    name, data = await asyncio.wait_for(queue.get(), KEEPALIVE)
                except asyncio.TimeoutError:
                    yield ": keepalive\n\n"
                    continue
                if name == "close":
                    return
                yield sse(name, data)
        finally:
            events.unsubscribe(queue)
    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


def page_routes() -> List[Route]:
    return [Route("/", _page("runs.html", runs_page)),
            Route("/runs/{run_id:int}", _page("run.html", run_page)),
            Route("/compare", _page("compare.html", compare_page)),
            Route("/queue", _page("queue.html", queue_page))]


def api_routes() -> List[Route]:
    return [Route("/api/runs", api_runs),
            Route("/api/runs/{run_id:int}", api_run),
            Route("/api/runs/{run_id:int}/metrics", api_metrics),
            Route("/api/runs/{run_id:int}/log", api_log),
            Route("/api/runs/{run_id:int}/files.zip", api_zip),
            Route("/api/runs/{run_id:int}/files/{path:path}", api_file),
            Route("/api/runs/{run_id:int}/cancel", api_cancel, methods=["POST"]),
            Route("/api/runs/{run_id:int}/rerun", api_rerun, methods=["POST"]),
            Route("/api/runs/{run_id:int}/predict", api_predict, methods=["POST"]),
            Route("/api/runner/pause", api_pause, methods=["POST"]),
            Route("/api/runner/resume", api_resume, methods=["POST"]),
            Route("/api/status", api_status),
            Route("/api/compare", api_compare),
            Route("/api/queue", api_queue, methods=["POST"]),
            Route("/api/scripts", api_upload, methods=["POST"]),
            Route("/api/events", api_events)]

