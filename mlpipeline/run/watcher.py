"""Noticing edits to the configs and the model scripts, debounced.

Editors save in bursts (write a temp file, rename, touch); the runner wants
one "something changed" per burst. ``ChangeWatcher.settled(now)`` says True
once no event has arrived for ``debounce`` seconds after a change. watchdog
delivers the events; where it cannot start, mtimes are polled instead.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any, Dict, Iterable, Optional, Tuple

log = logging.getLogger(__name__)


class ChangeWatcher:
    def __init__(self, config_files: Iterable[str], models_dir: str, debounce: float = 0.05,
                 clock=time.monotonic):
        self.config_files = {os.path.abspath(p) for p in config_files}
        self.models_dir = os.path.abspath(models_dir)
        self.debounce = debounce
        self.clock = clock
        self._lock = threading.Lock()
        self._last_event: Optional[float] = None
        self._observer: Any = None
        self._mtimes: Dict[str, Tuple[int, int]] = {}
        self.mode = "off"

    def relevant(self, path: str) -> bool:
        path = os.path.abspath(path)
        if path in self.config_files:
            return True
        return os.path.dirname(path) == self.models_dir and path.endswith(".py")

    def notify(self, *paths: str) -> None:
        if any(self.relevant(p) for p in paths if p):
            with self._lock:
                self._last_event = self.clock()

    def start(self) -> ChangeWatcher:
        # watchdog logs its own shutdown races; they are not the user's business
        logging.getLogger("watchdog").addHandler(logging.NullHandler())
        try:
            from watchdog.events import FileSystemEventHandler
            from watchdog.observers import Observer
        except ImportError:
            self.mode = "polling"
            self._mtimes = self._scan()
            return self
        watcher = self

        class Handler(FileSystemEventHandler):
            def on_any_event(self, event):  # noqa: D401 - watchdog callback
                if event.event_type in ("opened", "closed_no_write"):
                    return
                watcher.notify(getattr(event, "src_path", ""), getattr(event, "dest_path", ""))

        observer = Observer()
        folders = {os.path.dirname(p) for p in self.config_files} | {self.models_dir}
        for folder in folders:
            observer.schedule(Handler(), folder, recursive=False)
        observer.daemon = True
        try:
            observer.start()
        except OSError as exc:  # e.g. inotify watch limit reached
            log.warning("file watching unavailable (%s); polling for changes instead", exc)
            self.mode = "polling"
            self._mtimes = self._scan()
            return self
        self._observer = observer
        self.mode = "watchdog"
        return self

    def _scan(self) -> Dict[str, Tuple[int, int]]:
        found = {}
        paths = list(self.config_files)
        try:
            paths += [os.path.join(self.models_dir, f) for f in os.listdir(self.models_dir) if f.endswith(".py")]
        except OSError:
            pass
        for path in paths:
            try:
                stat = os.stat(path)
                found[path] = (stat.st_mtime_ns, stat.st_size)
            except OSError:
                pass
        return found

    def settled(self, now: Optional[float] = None) -> bool:
        """True (once) when a burst of changes has gone quiet."""
        if self.mode == "polling":
            current = self._scan()
            if current != self._mtimes:
                self._mtimes = current
                with self._lock:
                    self._last_event = self.clock()
        now = self.clock() if now is None else now
        with self._lock:
            if self._last_event is None or now - self._last_event < self.debounce:
                return False
            self._last_event = None
            return True

    def stop(self) -> None:
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=5)
            self._observer = None
