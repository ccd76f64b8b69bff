"""The queue as the configs and scripts now stand.

``Planner.plan()`` re-reads the queue config, resolves the scripts it selects,
looks up each script's versions (described off the loop by a ``Describer``,
cached by content) and returns the version specs in run order, the scripts
still being described, and everything skipped and why.
"""
from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Dict, List, Optional, Protocol, Set, Tuple

from ..core.timings import timings
from ..core import repro
from .config import Project, QueueConfig, read_queue_config, resolve_scripts
from ..core.errors import ConfigError, ScriptError, UsageError
from ..core.lifecycle import VersionSpec
from ..script.loading import ScriptInfo, display, file_sha256


class Described(Protocol):
    info: Optional[ScriptInfo]
    error: Optional[ScriptError]


class Describer(Protocol):
    def lookup(self, path: str) -> Optional[Described]: ...
    def poll(self) -> List[str]: ...
    def forget_transient(self) -> None: ...
    def close(self) -> None: ...


@dataclass
class QueueItem:
    spec: VersionSpec
    info: ScriptInfo

    @property
    def key(self) -> Tuple[str, str]:
        return self.spec.key

    @property
    def label(self) -> str:
        return self.spec.label

    @property
    def rel(self) -> str:
        return self.spec.rel


@dataclass
class SearchSlot:
    """A search (``Versions.add_search``) where the queue reaches it: after the
    ``position`` versions before it."""

    position: int
    path: str
    rel: str
    info: ScriptInfo
    decl: Dict[str, Any]
    held: bool = False   # a script before it is still being described

    @property
    def key(self) -> Tuple[str, str]:
        return (self.rel, self.decl["name"])


@dataclass
class Plan:
    items: List[QueueItem] = field(default_factory=list)
    skipped: List[Tuple[str, Optional[str], str]] = field(default_factory=list)  # (script, version, reason)
    problems: List[str] = field(default_factory=list)       # config errors found while planning
    broken: List[Tuple[str, str, ScriptError]] = field(default_factory=list)  # (rel, sha, error)
    pending: List[str] = field(default_factory=list)        # scripts still being described, in order
    held_from: Optional[int] = None  # items from here on wait for a script before them to be described
    unchecked: bool = False          # a script whose config entry names versions is still being described
    broken_held_from: Optional[int] = None  # broken scripts from here on wait for a script before them
    missing: List[str] = field(default_factory=list)        # listed scripts that do not exist: why, per script
    config_error: Optional[str] = None                      # the config edit that did not parse, if any
    timeout: Optional[float] = None
    searches: List[SearchSlot] = field(default_factory=list)
    config: Any = None  # the queue config it was read from ([MLP] retries, retry_on, stall_timeout, stop_on_nan)

    @property
    def startable(self) -> List[QueueItem]:
        return self.items if self.held_from is None else self.items[:self.held_from]

    @property
    def broken_now(self) -> List[Tuple[str, str, ScriptError]]:
        """The broken scripts to record now: those before any still being described (queue order)."""
        return self.broken if self.broken_held_from is None else self.broken[:self.broken_held_from]


def spec_of(path: str, rel: str, info: ScriptInfo, version: Any) -> VersionSpec:
    return VersionSpec(script=path, rel=rel, version=version.name, params=version.params,
                       params_sha256=version.params_sha256, fingerprint=getattr(info, "fingerprint", "") or info.sha256,
                       script_sha256=info.sha256, seed=repro.seed_of(version.params),
                       imports=tuple(getattr(info, "imports", ()) or ()), argv=getattr(version, "argv", None))


SETTLE_TRIES = 4   # then the last good queue stands until the next pass (a config saved non-stop never stalls the loop)


def _read_bytes(path: str) -> Optional[bytes]:
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError:
        return None


def _same_inputs(a: Any, b: Any) -> bool:
    """Was a plan built from exactly these objects? (Identity: the key holds
    them, so they stay alive and no new object can take their place.)"""
    if b is None or a[0] is not b[0] or a[1:3] != b[1:3] or len(a[3]) != len(b[3]):
        return False
    return all(x[0] == y[0] and x[1] == y[1] and x[2] is y[2] for x, y in zip(a[3], b[3]))


class Planner:
    def __init__(self, project: Project, describer: Describer, config_path: str,
                 only_version: Optional[str], say: Callable[..., None]):
        self.project, self.describer = project, describer
        self.config_path = config_path
        self.only_version = only_version
        self.say = say
        self._config: Optional[QueueConfig] = None
        self._said: Set[str] = set()
        self._hashes: Dict[str, Tuple[int, int, str]] = {}  # path -> (mtime_ns, size, sha256)
        self._last_bytes: Optional[bytes] = None             # the config as last read and parsed
        self._bad: Tuple[Optional[bytes], Optional[str]] = (None, None)  # the last edit that did not parse
        self._last_key: Any = None                            # what the last plan was built from
        self._last_plan: Optional[Plan] = None
        self._plain: Dict[str, Tuple[Any, Any]] = {}         # path -> (what it was read from, its description)

    def say_once(self, message: str, level: int = logging.WARNING) -> None:
        if message not in self._said:
            self._said.add(message)
            self.say(message, level)

    def _settled_bytes(self) -> Optional[bytes]:
        """The config's content once it has settled: the same on two reads
        ``timings().settle_read`` apart. An editor that truncates then writes (or ``cat >``) is
        never read half-way. None while it keeps changing (or is missing)."""
        previous = _read_bytes(self.config_path)
        if previous is not None and previous == self._last_bytes:
            return previous  # unchanged since the last good read: nothing to wait for
        for _ in range(SETTLE_TRIES):
            time.sleep(timings().settle_read)
            current = _read_bytes(self.config_path)
            if current == previous:
                return current
            previous = current
        return None

    def read_config(self) -> Tuple[QueueConfig, Optional[str]]:
        """The queue config; after the first good read, a broken edit keeps the
        last good config and says so (returned as the second value)."""
        if self._config is not None:
            settled = self._settled_bytes()
            if settled is None:
                return self._config, None  # still being written: the last good queue until it settles
            if settled == self._last_bytes:
                return self._config, None
            if settled == self._bad[0]:
                return self._config, self._bad[1]
        data = _read_bytes(self.config_path)
        try:
            config = read_queue_config(self.config_path)
            self._last_bytes = data
        except ConfigError as exc:
            if self._config is None:
                raise
            self._bad = (data, str(exc))
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

    def plan(self) -> Plan:
        """The queue as the configs and scripts now stand. Re-read every time;
        rebuilt only when the config or a script's description changed (a
        1 000-version script is not re-specified for every version it starts)."""
        config, config_error = self.read_config()
        selections, left_out = resolve_scripts(self.project, config)
        looked: List[Tuple[Any, str, Any]] = []  # (selection, sha, description or None, or OSError)
        for selection in selections:
            try:
                looked.append((selection, self.sha256(selection.path), self._lookup(selection.path, config)))
            except OSError as exc:
                looked.append((selection, "", exc))
        key = (config, config_error, tuple(left_out), [(s.path, sha, d) for s, sha, d in looked])
        if self._last_plan is not None and _same_inputs(key, self._last_key):
            return self._last_plan
        plan = Plan(config_error=config_error, timeout=config.timeout, config=config)
        self._strays(config)
        for path, reason, warn in left_out:
            if warn:
                self.say_once(reason)
            plan.skipped.append((self.project.rel(path), None, "missing file: " + reason if warn else reason))
            if warn:
                plan.missing.append(reason)
        where = display(self.config_path)
        for selection, sha, described in looked:
            rel = self.project.rel(selection.path)
            if isinstance(described, OSError):
                plan.skipped.append((rel, None, "missing file (vanished while planning)"))
                continue
            if described is None:
                plan.pending.append(rel)
                plan.unchecked |= bool(selection.only or selection.exclude)  # its version list is not checked yet
                if plan.held_from is None:
                    plan.held_from = len(plan.items)
                    plan.broken_held_from = len(plan.broken)
                continue
            if described.error is not None or described.info is None:
                error = described.error or ScriptError(f"{rel}: could not be described")
                plan.broken.append((rel, sha, error))
                plan.skipped.append((rel, None, f"load error: {error}"))
                continue
            info = described.info
            versions: List[Any] = list(info.versions)
            if getattr(info, "plain", False):
                versions = self._plain_versions(selection.path, config, plan)
            names = [v.name for v in versions] + [s["name"] for s in info.searches]
            for wanted in (selection.only or []) + selection.exclude:
                if wanted not in names:
                    plan.problems.append(f"{where}:{selection.line}: {wanted!r} is not a version of {rel} "
                                         f"(versions: {', '.join(names)})")
            for version in versions:
                if selection.only is not None and version.name not in selection.only:
                    plan.skipped.append((rel, version.name, f"not whitelisted in {where}"))
                elif version.name in selection.exclude:
                    plan.skipped.append((rel, version.name, f"blacklisted in {where}"))
                elif self.only_version and version.name != self.only_version:
                    plan.skipped.append((rel, version.name, f"not --version {self.only_version}"))
                else:
                    plan.items.append(QueueItem(spec_of(selection.path, rel, info, version), info))
            for decl in info.searches:
                name = decl["name"]
                if selection.only is not None and name not in selection.only:
                    plan.skipped.append((rel, name, f"not whitelisted in {where}"))
                elif name in selection.exclude:
                    plan.skipped.append((rel, name, f"blacklisted in {where}"))
                elif self.only_version and name != self.only_version:
                    plan.skipped.append((rel, name, f"not --version {self.only_version}"))
                else:
                    plan.searches.append(SearchSlot(len(plan.items), selection.path, rel, info, decl,
                                                    plan.held_from is not None))
        self._last_key, self._last_plan = key, plan
        return plan

    def section(self, path: str, config: QueueConfig) -> Optional[str]:
        """The ``[...]`` section of argument lines that is ``path``'s: the one named by its path under the
        models folder (``[sub/train.py]``), else by its file name (``[train.py]``); None when it has none."""
        under = os.path.relpath(path, self.project.models_dir).replace(os.sep, "/")
        for name in (under, os.path.basename(path)):
            if name in config.arguments:
                return name
        return None

    def _strays(self, config: QueueConfig) -> None:
        """Say once of each ``[name.py]`` section that names no script in the models folder (a typo)."""
        names = [n for n in config.arguments if not os.path.isfile(os.path.join(self.project.models_dir, *n.split("/")))]
        if not names:
            return
        found: set = set()
        outputs = os.path.realpath(self.project.outputs_dir)
        for folder, dirs, files in os.walk(self.project.models_dir):  # a script in a sub-folder, by file name
            dirs[:] = [d for d in dirs if not d.startswith((".", "__")) and
                       os.path.realpath(os.path.join(folder, d)) != outputs]
            found.update(files)
        for name in names:
            if name not in found:
                self.say_once(f"{display(self.config_path)}:{config.arguments_at.get(name, 0)}: [{name}] names no "
                              f"script in {display(self.project.models_dir)}; its argument lines are not used (is "
                              f"the name mistyped?)")

    def _lookup(self, path: str, config: QueueConfig) -> Any:
        """The description of a selected script: a plain one (a ``[name.py]`` section of argument lines in
        the queue config) is read here, never run; the rest through the describer."""
        name = self.section(path, config)
        if name is not None:
            described = self._describe_plain(path)
            if described is not None:
                return described
            self.say_once(f"{display(self.config_path)}: [{name}] is ignored: {self.project.rel(path)} defines "
                          f"MODEL, so its versions come from the script")
        return self.describer.lookup(path)

    def _describe_plain(self, path: str) -> Any:
        """A plain script's description, kept while it and the local modules it imports are unchanged (the
        same object, so an unchanged queue is not planned again). None when its code binds MODEL."""
        from ..script.describing import Described
        from ..script.plain import describe_plain

        def stats(files: List[str]) -> Tuple[Any, ...]:
            found = []
            for file in files:
                try:
                    stat = os.stat(file)
                    found.append((file, stat.st_mtime_ns, stat.st_size))
                except OSError:
                    found.append((file, 0, -1))
            return tuple(found)

        sha = self.sha256(path)
        known = self._plain.get(path)
        if known is not None and known[0][0] == sha and stats(known[0][1]) == known[0][2]:
            return known[1]
        error: Optional[ScriptError] = None
        try:
            info, local = describe_plain(path)
        except ScriptError as exc:
            info, local, error = None, [], exc
        else:
            if info is None:
                self._plain[path] = ((sha, [], ()), None)
                return None
        described = Described(info, error, info.deps if info else [])
        self._plain[path] = ((sha, local, stats(local)), described)
        return described

    def _plain_versions(self, path: str, config: QueueConfig, plan: Plan) -> List[Any]:
        """A plain script's versions: its section's argument lines, in order; a bad one is a problem (named
        by file and line) and left out."""
        from ..script.plain import version_of

        name = self.section(path, config) or os.path.basename(path)
        entries = config.arguments.get(name) or []
        where = display(config.path)
        if not entries:
            plan.problems.append(f"{where}:{config.arguments_at.get(name, 0)}: [{name}] has no argument lines; "
                                 f"add one version a line, e.g. small = --lr 0.1")
        versions = []
        for entry in entries:
            try:
                versions.append(version_of(entry.key, entry.value))
            except ValueError as exc:
                plan.problems.append(f"{where}:{entry.line}: {name}: {exc}")
        return versions

    def check_first(self, plan: Plan) -> None:
        """Errors that stop a batch before anything starts (exit 2)."""
        if plan.problems:
            more = f" (and {len(plan.problems) - 1} more)" if len(plan.problems) > 1 else ""
            raise ConfigError(plan.problems[0] + more)
        wanted = self.only_version
        if wanted and not plan.items and not plan.searches and not plan.broken and not plan.pending:
            found = sorted({v for _, v, _ in plan.skipped if v})
            raise UsageError(f"--version {wanted}: no listed script has a version named {wanted!r} "
                             f"(versions: {', '.join(found) or 'none'})")

    def warn_problems(self, plan: Plan) -> None:
        for problem in plan.problems:
            self.say_once(problem + "; that entry is ignored", logging.ERROR)


class Pinned(Planner):
    """The queue of an exact re-run (``run.rerun``): the one version ``spec`` names, as its run recorded it
    (parameters, argument line, seed), from the code checked out for it. No queue config is read."""

    def __init__(self, project: Project, describer: Describer, spec: VersionSpec, say: Callable[..., None]):
        super().__init__(project, describer, os.path.join(project.root, ".mlpipeline-rerun"), None, say)
        self.spec = spec

    def plan(self) -> Plan:
        if self._last_plan is None:
            plan = Plan()
            try:
                sha = self.sha256(self.spec.script)
            except OSError as exc:
                plan.missing.append(f"{display(self.spec.script)}: {exc.strerror}")
            else:
                spec = replace(self.spec, script_sha256=sha)
                plan.items.append(QueueItem(spec, ScriptInfo(spec.script, sha)))
            self._last_plan = plan
        return self._last_plan


def unchanged_since(item: QueueItem, last: Optional[Tuple[Optional[str], Optional[str], Optional[str]]]) -> bool:
    """Did the version's last successful run train the same thing? Same
    parameters and the same fingerprint (runs recorded before fingerprints
    existed compare the script's content instead)."""
    if last is None:
        return False
    fingerprint, params_sha256, script_sha256 = last
    if params_sha256 != item.spec.params_sha256:
        return False
    if fingerprint:
        return fingerprint == item.spec.fingerprint
    return script_sha256 == item.spec.script_sha256
