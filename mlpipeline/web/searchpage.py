"""The search page and its JSON: a search (or every version of a script) as a whole —
parallel coordinates, a scatter per parameter, the best so far, the ASHA rungs — and the
parameter importance ranking, fetched apart so the page draws before the forest is fitted."""
from __future__ import annotations

from typing import Any, Dict, List, Optional

from starlette.requests import Request
from starlette.routing import Route

from ..core.errors import UsageError
from ..read.importance import METHODS, importance
from ..read.search import ALL, search_detail
from .routes import _api, _dash, _need, _page


def _options(request: Request) -> Dict[str, Optional[str]]:
    q = request.query_params
    return {"metric": q.get("metric") or None, "goal": q.get("goal") or None, "rung_metric": q.get("rung_metric") or None}


def _detail(request: Request) -> Dict[str, Any]:
    script, search = str(request.path_params["script"]), str(request.path_params["search"])
    with _dash(request).reader() as ledger:
        return search_detail(_need(ledger), script, search, **_options(request))


def search_page(request: Request) -> Dict[str, Any]:
    detail = _detail(request)
    return {"d": detail, "goal": request.query_params.get("goal") or ""}


@_api
def api_search(request: Request) -> Any:
    return _detail(request)


@_api
def api_importance(request: Request) -> Any:
    q = request.query_params
    script = q.get("script") or ""
    if not script:
        raise UsageError("importance: give ?script=NAME (and metric=, search=, method=)")
    method = q.get("method") or "auto"
    if method not in METHODS:
        raise UsageError(f"method={method!r}: one of {', '.join(METHODS)}")
    with _dash(request).reader() as ledger:
        return importance(_need(ledger), script, q.get("metric") or None, q.get("search") or ALL, method=method)


def page_routes() -> List[Route]:
    return [Route("/searches/{script:path}/{search}", _page("search.html", search_page))]


def api_routes() -> List[Route]:
    return [Route("/api/searches/{script:path}/{search}", api_search),
            Route("/api/importance", api_importance)]
