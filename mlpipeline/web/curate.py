"""The dashboard's curation API: a run's tags and note, edited on its page, deleting it there, and the
runs page's clean-up panel. Written through the same door as ``mlpipeline tag``, ``note`` and ``delete``
(``read.curate``): a request the live runner applies, or a write under the project lock while none
works. Clean-up is ``mlpipeline gc`` (``read.gc``): its dry run to show, and the collection itself,
refused while a runner works."""
from __future__ import annotations

from typing import Any, Dict, List

from starlette.requests import Request
from starlette.routing import Route

from ..core.errors import UsageError
from ..core.text import iso
from ..read.curate import delete_runs, note_run, runs_to_delete, tag_runs
from ..read.gc import GcPlan, collect, plan_gc
from ..read.queries import resolve_run
from ..store.curate import run_tags
from .routes import _api, _body_json, _dash, _need, _post
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


async def _api_delete(request: Request, run_sync: Any) -> Any:
    """POST: hide the run from every listing, as ``mlpipeline delete RUN`` (a running run is refused
    with its message); the run and when it was deleted."""
    dash, ref = _dash(request), str(request.path_params["run_id"])

    def work() -> Dict[str, Any]:
        chosen = runs_to_delete(dash.project, [ref])
        done = delete_runs(dash.project, [r["id"] for r in chosen["runs"]])
        with dash.reader() as ledger:
            run = resolve_run(_need(ledger), ref)
        return {"run": run["id"], "deleted": iso(run.get("deleted_at")), "via": done["via"]}
    return await run_sync(work)


def _gc_view(plan: GcPlan) -> Dict[str, Any]:
    """A gc plan (or what gc removed) as the clean-up panel shows it: per kind, count and bytes."""
    kinds = plan.summary()
    return {"kinds": kinds, "bytes": sum(int(k["bytes"]) for k in kinds), "empty": plan.empty,
            "keep": {"count": plan.keep[0], "metric": plan.keep[1]} if plan.keep else None,
            "ranked_out": plan.ranked_out, "unranked": plan.unranked, "problems": plan.problems}


@_api
def api_gc_plan(request: Request) -> Any:
    """GET: what ``mlpipeline gc --dry-run`` would free now (a runner at work does not stop a dry run)."""
    return _gc_view(plan_gc(_dash(request).project, allow_runner=True))


async def _api_gc(request: Request, run_sync: Any) -> Any:
    """POST: ``mlpipeline gc --yes``; what it removed. Refused, naming the runner's pid, while one works."""
    project = _dash(request).project

    def work() -> Dict[str, Any]:
        plan_gc(project)  # the CLI's refusal, before anything is locked
        return _gc_view(collect(project))
    return await run_sync(work)


api_tags, api_note, api_delete, api_gc = _post(_api_tags), _post(_api_note), _post(_api_delete), _post(_api_gc)


def curate_routes() -> List[Route]:
    return [Route("/api/runs/{run_id:int}/tags", api_tags, methods=["POST"]),
            Route("/api/runs/{run_id:int}/note", api_note, methods=["POST"]),
            Route("/api/runs/{run_id:int}/delete", api_delete, methods=["POST"]),
            Route("/api/gc", api_gc_plan, methods=["GET"]),
            Route("/api/gc", api_gc, methods=["POST"])]
