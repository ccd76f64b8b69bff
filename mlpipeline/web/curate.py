"""The dashboard's curation API: a run's tags and note, edited on its page. Written through the same
door as ``mlpipeline tag`` and ``note`` (``read.curate``): a request the live runner applies, or a
write under the project lock while none works."""
from __future__ import annotations

from typing import Any, Dict, List

from starlette.requests import Request
from starlette.routing import Route

from ..core.errors import UsageError
from ..read.curate import note_run, tag_runs
from ..read.queries import resolve_run
from ..store.curate import run_tags
from .routes import _body_json, _dash, _need, _post
from .state import Dashboard


def _strings(value: Any, name: str) -> List[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise UsageError(f"{name}: give a list of tags")
    return value


def _curated(dash: Dashboard, ref: str) -> Dict[str, Any]:
    """The run's tags and note as they stand now."""
    with dash.reader() as ledger:
        reader = _need(ledger)
        run = resolve_run(reader, ref)
        return {"run": run["id"], "tags": run_tags(reader, [run["id"]]).get(run["id"], []), "note": run["note"]}


async def _api_tags(request: Request, run_sync: Any) -> Any:
    """POST {"add": [...], "remove": [...]}: the run's tags after the change."""
    data = await _body_json(request)
    add, remove = _strings(data.get("add"), "add"), _strings(data.get("remove"), "remove")
    if not add and not remove:
        raise UsageError("tags: give add or remove, a list of tags")
    dash, ref = _dash(request), str(request.path_params["run_id"])

    def work() -> Dict[str, Any]:
        if add:
            tag_runs(dash.project, [ref], add)
        if remove:
            tag_runs(dash.project, [ref], remove, remove=True)
        return _curated(dash, ref)
    return await run_sync(work)


async def _api_note(request: Request, run_sync: Any) -> Any:
    """POST {"note": "..."} (empty clears it): the run's tags and note after the change."""
    data = await _body_json(request)
    note = data.get("note") or ""
    if not isinstance(note, str):
        raise UsageError("note: give text")
    dash, ref = _dash(request), str(request.path_params["run_id"])

    def work() -> Dict[str, Any]:
        note_run(dash.project, ref, note)
        return _curated(dash, ref)
    return await run_sync(work)


api_tags, api_note = _post(_api_tags), _post(_api_note)


def curate_routes() -> List[Route]:
    return [Route("/api/runs/{run_id:int}/tags", api_tags, methods=["POST"]),
            Route("/api/runs/{run_id:int}/note", api_note, methods=["POST"])]
