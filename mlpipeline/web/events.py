"""Server-sent events: one watcher per server looks at the ledger five times a
second (``PRAGMA data_version`` says whether anyone wrote since) and pushes what
changed to every open page — new runs, runs whose status changed, and the queue
as ``status`` reads it. Liveness is re-derived every second even when nothing
was written: a runner that died writes nothing."""
from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any, Dict, List, Optional, Set, Tuple

from ..core.errors import MLPipelineError
from ..core.lifecycle import RunStatus
from ..store.liveness import Liveness
from ..store.reader import Reader
from ..read.status import project_status
from .state import Dashboard, Signature, ledger_signature

log = logging.getLogger(__name__)
INTERVAL = 0.2
REDERIVE = 1.0
KEEPALIVE = 15.0
_CLOSE = ("close", None)


class Events:
    """Fans ledger changes out to subscribers (one asyncio queue per page)."""

    def __init__(self, dash: Dashboard, interval: float = INTERVAL):
        self.dash = dash
        self.interval = interval
        self.subscribers: Set[asyncio.Queue] = set()
        self._reader: Optional[Reader] = None
        self._signature: Signature = None
        self._data_version: Optional[int] = None
        self._looked_at = 0.0
        self._max_id: Optional[int] = None
        self._watched: Dict[int, str] = {}   # run id -> status last sent, for runs not yet ended
        # pages open before this ledger existed (or before it was replaced) have none of its runs: all are news
        self._all_news = False
        self._reload = False  # the ledger was replaced: pages must start over (said once)
        self._queue_json = ""
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self.sent = 0

    def subscribe(self) -> asyncio.Queue:
        queue: asyncio.Queue = asyncio.Queue(maxsize=256)
        self.subscribers.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue) -> None:
        self.subscribers.discard(queue)

    def close_streams(self) -> None:
        """End every open event stream (from any thread, a signal handler too):
        a server that is stopping must not wait on pages that never hang up."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(lambda: [self._offer(q, _CLOSE) for q in list(self.subscribers)])

    async def run(self) -> None:
        """The watcher: until cancelled."""
        import anyio.to_thread

        self._loop = asyncio.get_running_loop()
        try:
            failing = ""  # said once, not five times a second for as long as it lasts
            while True:
                try:
                    changes = await anyio.to_thread.run_sync(self.look)
                    failing = ""
                except Exception as exc:  # noqa: BLE001 - a locked or half-written ledger: try again next tick
                    if str(exc) != failing:
                        failing = str(exc)
                        log.warning("dashboard: reading the ledger for live updates failed: %s", exc,
                                    exc_info=not isinstance(exc, MLPipelineError))
                    changes = []
                for change in changes:
                    self._publish(change)
                await asyncio.sleep(self.interval)
        finally:
            for queue in list(self.subscribers):
                self._offer(queue, _CLOSE)
            if self._reader is not None:
                self._reader.close()

    def _publish(self, change: Tuple[str, Any]) -> None:
        self.sent += 1
        for queue in list(self.subscribers):
            self._offer(queue, change)

    @staticmethod
    def _offer(queue: asyncio.Queue, change: Tuple[str, Any]) -> None:
        try:
            queue.put_nowait(change)
        except asyncio.QueueFull:  # a page that stopped reading: it gets a reload hint instead
            while not queue.empty():
                queue.get_nowait()
            queue.put_nowait(("reload", {}))

    def look(self, now: Optional[float] = None) -> List[Tuple[str, Any]]:
        """One look at the ledger: the events to send (none when nothing changed)."""
        now = time.time() if now is None else now
        if self._reader is not None and ledger_signature(self.dash.ledger_path, self._reader.immutable) \
                != self._signature:  # the ledger was deleted or replaced: start over on the new one
            self._reader.close()
            self._reader, self._data_version, self._max_id, self._queue_json = None, None, None, ""
            self._watched.clear()
            self._all_news = True
            # kept until a look gets through: a new ledger caught half made (a look that raises) must not lose it
            self._reload = True
        if self._reader is None:
            import os

            if not os.path.exists(self.dash.ledger_path):
                self._all_news = True
                return self._reload_due()
            self._reader = Reader(self.dash.ledger_path)
            self._signature = ledger_signature(self.dash.ledger_path, self._reader.immutable)
        reader = self._reader
        version = reader.data_version()
        if version == self._data_version and now - self._looked_at < REDERIVE:
            return self._reload_due()
        self._data_version, self._looked_at = version, now
        liveness = Liveness(reader, now=now)
        state = project_status(self.dash.project, self._reader, now=now)  # first: it changes nothing if it raises
        runs = self._changed_runs(reader, liveness)
        changes: List[Tuple[str, Any]] = []
        if runs:
            changes.append(("runs", {"runs": runs}))
        # elapsed times tick every second: a change of their own is no news (pages count them up)
        steady = {**state, "running": [{k: v for k, v in r.items() if k != "elapsed"} for r in state["running"]],
                  "runner": {k: v for k, v in (state["runner"] or {}).items() if k != "heartbeat"}}
        text = json.dumps(steady, sort_keys=True, default=str)
        if text != self._queue_json:
            self._queue_json = text
            changes.append(("queue", state))
        return self._reload_due() + changes

    def _reload_due(self) -> List[Tuple[str, Any]]:
        """``reload`` once after the ledger was replaced, then nothing."""
        if not self._reload:
            return []
        self._reload = False
        return [("reload", {})]

    def _changed_runs(self, reader: Reader, liveness: Liveness) -> List[Dict[str, Any]]:
        if self._max_id is None and self._all_news:  # a ledger the pages have not seen: every run is news
            self._max_id = 0
        if self._max_id is None:  # the first look: only what is live now is watched
            self._max_id = reader.max_run_id()
            for row in reader.unfinished_runs():
                self._watched[row["id"]] = liveness.derive(row)["status"]
            return []
        rows = reader.runs_after(self._max_id)
        if self._watched:
            rows += reader.runs(sorted(self._watched))
        changed = []
        for row in rows:
            derived = liveness.derive(row)
            status = derived["status"]
            self._max_id = max(self._max_id, row["id"])
            if self._watched.get(row["id"]) == status:
                continue
            changed.append({"id": row["id"], "script": row["script"], "version": row["version"],
                            "mode": row["mode"], "status": status})
            if not RunStatus(status).finished:
                self._watched[row["id"]] = status
            else:
                self._watched.pop(row["id"], None)
        return changed


def sse(event: str, data: Any) -> str:
    return f"event: {event}\ndata: {json.dumps(data, default=str)}\n\n"
