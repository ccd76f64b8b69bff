"""The queue as the configs and scripts now stand.

``Planner.plan()`` re-reads the queue config, resolves the scripts it selects,
learns each script's versions (from a child process, cached by content) and
returns the versions in run order plus everything skipped and why.
"""
from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Set, Tuple

from .config import Project, QueueConfig, read_queue_config, resolve_scripts
from .errors import ConfigError, ScriptError, UsageError
from .ledger import Ledger
from .scripts import ScriptInfo, VersionSpec, display, file_sha256


@dataclass
class QueueItem:
    script: str          # absolute path
    rel: str             # path relative to the project root, as runs record it
    info: ScriptInfo
    version: VersionSpec

    @property
    def key(self) -> Tuple[str, str]:
        return (self.rel, self.version.name)

    @property
    def label(self) -> str:
        return f"{self.rel} {self.version.name}"


@dataclass
class Plan:
    items: List[QueueItem] = field(default_factory=list)
    skipped: List[Tuple[str, Optional[str], str]] = field(default_factory=list)  # (script, version, reason)
    problems: List[str] = field(default_factory=list)       # config errors found while planning
    broken: List[Tuple[str, str, ScriptError]] = field(default_factory=list)  # (rel, sha, error)
    config_error: Optional[str] = None                      # the config edit that did not parse, if any
    timeout: Optional[float] = None


def cache_key(path: str, sha: str) -> str:
    """A script's description depends on its own text and on the modules next
    to it that it may import; the key covers both."""
    folder = os.path.dirname(path)
    digest = hashlib.sha256(sha.encode())
    for name in sorted(os.listdir(folder)):
        if name.endswith(".py") and os.path.join(folder, name) != path:
            stat = os.stat(os.path.join(folder, name))
            digest.update(f"{name}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()


class Planner:
    def __init__(self, project: Project, ledger: Ledger, executor, config_path: str,
                 only_version: Optional[str], say: Callable[..., None]):
        self.project, self.ledger, self.executor = project, ledger, executor
        self.config_path = config_path
        self.only_version = only_version
        self.say = say
        self._config: Optional[QueueConfig] = None
        self._said: Set[str] = set()
        self._hashes: Dict[str, Tuple[int, int, str]] = {}  # path -> (mtime_ns, size, sha256)
        self._infos: Dict[str, ScriptInfo] = {}             # cache key -> description, this session

    def say_once(self, message: str, level: int = logging.WARNING) -> None:
        if message not in self._said:
            self._said.add(message)
            self.say(message, level)

    def read_config(self) -> Tuple[QueueConfig, Optional[str]]:
        """The queue config; after the first good read, a broken edit keeps the
        last good config and says so (returned as the second value)."""
        try:
            config = read_queue_config(self.config_path)
        except ConfigError as exc:
            if self._config is None:
                raise
            self.say_once(f"{exc}; keeping the last good queue", logging.ERROR)
            return self._config, str(exc)
        self._config = config
        for warning in config.warnings:
            self.say_once(warning)
        return config, None

    def sha256(self, path: str) -> str:
        stat = os.stat(path)
        known = self._hashes.get(path)
        if known and known[:2] == (stat.st_mtime_ns, stat.st_size):
            return known[2]
        sha = file_sha256(path)
        self._hashes[path] = (stat.st_mtime_ns, stat.st_size, sha)
        return sha

    def describe(self, path: str, sha: str) -> ScriptInfo:
        key = cache_key(path, sha)
        if key in self._infos:
            return self._infos[key]
        cached = self.ledger.cached_script(key)
        if cached is not None:
            info = ScriptInfo.from_json(cached)
        else:
            info = self.executor.describe(path)
            self.ledger.cache_script(key, info.to_json())
        info.path, info.sha256 = path, sha
        self._infos[key] = info
        return info

    def plan(self) -> Plan:
        config, config_error = self.read_config()
        plan = Plan(config_error=config_error, timeout=config.timeout)
        selections, left_out = resolve_scripts(self.project, config)
        for path, reason, warn in left_out:
            if warn:
                self.say_once(reason)
            plan.skipped.append((self.project.rel(path), None, "missing file: " + reason if warn else reason))
        where = display(self.config_path)
        for selection in selections:
            rel = self.project.rel(selection.path)
            try:
                sha = self.sha256(selection.path)
                info = self.describe(selection.path, sha)
            except OSError:
                plan.skipped.append((rel, None, "missing file (vanished while planning)"))
                continue
            except ScriptError as exc:
                plan.broken.append((rel, sha, exc))
                plan.skipped.append((rel, None, f"load error: {exc}"))
                continue
            names = info.names
            for wanted in (selection.only or []) + selection.exclude:
                if wanted not in names:
                    plan.problems.append(f"{where}:{selection.line}: {wanted!r} is not a version of {rel} "
                                         f"(versions: {', '.join(names)})")
            for spec in info.versions:
                if selection.only is not None and spec.name not in selection.only:
                    plan.skipped.append((rel, spec.name, f"not whitelisted in {where}"))
                elif spec.name in selection.exclude:
                    plan.skipped.append((rel, spec.name, f"blacklisted in {where}"))
                elif self.only_version and spec.name != self.only_version:
                    plan.skipped.append((rel, spec.name, f"not --version {self.only_version}"))
                else:
                    plan.items.append(QueueItem(selection.path, rel, info, spec))
        return plan

    def check_first(self, plan: Plan) -> None:
        """Errors that stop a batch before anything starts (exit 2)."""
        if plan.problems:
            more = f" (and {len(plan.problems) - 1} more)" if len(plan.problems) > 1 else ""
            raise ConfigError(plan.problems[0] + more)
        wanted = self.only_version
        if wanted and not plan.items and not plan.broken:
            found = sorted({v for _, v, _ in plan.skipped if v})
            raise UsageError(f"--version {wanted}: no listed script has a version named {wanted!r} "
                             f"(versions: {', '.join(found) or 'none'})")

    def warn_problems(self, plan: Plan) -> None:
        for problem in plan.problems:
            self.say_once(problem + "; that entry is ignored", logging.ERROR)
