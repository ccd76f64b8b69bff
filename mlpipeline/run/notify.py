"""Notifications through apprise (``[NOTIFY]`` in mlp.config): a message when a run fails, runs out of
memory, stalls or succeeds, when a batch ends, a ``--watch`` queue empties, a search is done, or a
runner died.

``Notifier`` sends off the runner's loop: one thread per receiver (URL) with a queue, apprise's own
socket timeouts, one retry. A message that cannot be sent is said once per receiver in the log, and
never stops or slows the batch: an ending runner gives what is still queued ``notify_drain`` seconds
at most, and none to a receiver that already failed or still sits on a message it got a second ago.
URLs hold secrets (tokens, passwords): they are shown only masked (``mask``).

``NotifyObserver`` turns a runner's runs and batch into messages; ``DeathWatch`` tells of a runner
that died (from ``mlpipeline serve`` every ``notify_check`` seconds, or from the next runner at its
start), once across processes: a marker file in ``outputs/notified/`` claims each report.
"""
from __future__ import annotations

import collections
import logging
import os
import queue
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Deque, FrozenSet, Iterable, List, Mapping, Optional, Set, Tuple

from ..core.errors import UsageError
from ..core.layout import NotifySettings, Project
from ..core.lifecycle import OOM, SYSTEM_SPLIT, Outcome, RunStatus
from ..core.text import elapsed_text, iso
from ..core.timings import timings
from ..core.vocabulary import NotifyEvent
from ..store.liveness import Liveness
from ..store.reads import Reads
from .observers import Run

log = logging.getLogger(__name__)

INSTALL = "pip install 'mlpipeline[notify]'"
QUEUE_LIMIT = 100            # messages waiting for one receiver; more are dropped (said once)
RETRY_AFTER = 0.5            # seconds before the one retry of a message that could not be sent
STUCK_AFTER = 1.0            # an ending runner does not wait for a receiver still on a message this old
TEST_WAIT = 60.0             # notify --test waits this long for every receiver's answer
REPORT_WITHIN = 7 * 86400.0  # a runner gone longer than this before anyone looked is not news
ERROR_CHARS = 300            # the error's last line, cut to this
_ASKED_FOR = (RunStatus.CANCELLED, RunStatus.INTERRUPTED, RunStatus.PRUNED)  # ended on purpose: no failure

_HOST = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+|localhost)(:\d+)?")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*")


def mask(url: str) -> str:
    """``url`` without what may be secret: its scheme and, where it names a host (a dotted name, an
    address, localhost), that host and port — ``json://127.0.0.1:8123/…``, ``slack://…`` (a Slack
    URL's first part is a token)."""
    scheme, sep, rest = url.strip().partition("://")
    if not sep or not _SCHEME.fullmatch(scheme):
        return "…"
    where = re.split(r"[/?#]", rest, maxsplit=1)[0].rpartition("@")[2]
    return f"{scheme}://{where}/…" if _HOST.fullmatch(where) else f"{scheme}://…"


def scrub(text: str, url: str) -> str:
    """``text`` (what apprise said of a failure) with every part of ``url`` that may be secret cut out."""
    rest = url.partition("://")[2]
    shown = mask(url)
    for piece in sorted({p for p in re.split(r"[/?#&=@:,;]", rest) if len(p) >= 4 and p not in shown},
                        key=len, reverse=True):
        text = text.replace(piece, "…")
    return text


class _Answers(logging.Handler):
    """What apprise logs while a thread of ours sends (its reasons for a failure), kept per thread.
    Apprise's records stop here: they are the receivers' answers, not lines for the terminal."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.local = threading.local()

    def emit(self, record: logging.LogRecord) -> None:
        lines = getattr(self.local, "lines", None)
        if lines is not None:
            try:
                lines.append(record.getMessage())
            except Exception:  # noqa: BLE001 - a record that does not format says nothing useful
                pass


_answers: Optional[_Answers] = None
_answers_lock = threading.Lock()


def _capture() -> _Answers:
    global _answers
    with _answers_lock:
        if _answers is None:
            _answers = _Answers()
            apprise_log = logging.getLogger("apprise")
            apprise_log.addHandler(_answers)
            apprise_log.propagate = False
        return _answers


@dataclass
class _Message:
    title: str
    body: str
    kind: str                    # apprise's NotifyType: info, success, warning, failure
    quiet: bool = False          # a failure is returned (notify --test), not said in the log
    done: threading.Event = field(default_factory=threading.Event)
    error: Optional[str] = None


class _Receiver:
    """One URL: its apprise plugin, its queue and the thread that sends from it (started with the
    first message). A receiver that hangs holds up its own messages, never another's."""

    def __init__(self, url: str, plugin: Any, warn: Callable[[str], None]):
        self.url, self.plugin, self.warn = url, plugin, warn
        self.shown = mask(url)
        self.queue: queue.Queue[Optional[_Message]] = queue.Queue(QUEUE_LIMIT)
        self.thread: Optional[threading.Thread] = None
        self.busy_since: Optional[float] = None  # monotonic: when the message being sent was taken
        self.failed = False     # a message could not be sent (said once)
        self.dropped = False    # its queue was full (said once)
        self.closing = False
        self.pending = 0        # messages queued or being sent
        self._count = threading.Lock()
        # apprise paces some services (e-mail: a message per 5.5 s) inside notify(); the pause is taken here
        # instead, where an ending runner can cut it short (``wake``) and where it never looks like a hang
        self.pace = float(getattr(plugin, "request_rate_per_sec", 0) or 0)
        plugin.request_rate_per_sec = 0
        self.sent_at = float("-inf")
        self.wake = threading.Event()

    def put(self, message: _Message) -> None:
        if self.thread is None:
            self.thread = threading.Thread(target=self._work, name=f"mlpipeline-notify {self.shown}", daemon=True)
            self.thread.start()
        try:
            with self._count:
                self.queue.put_nowait(message)
                self.pending += 1
        except queue.Full:
            message.error = f"{QUEUE_LIMIT} messages were already waiting for it"
            message.done.set()
            if not self.dropped:
                self.dropped = True
                self.warn(f"notifications to {self.shown}: {QUEUE_LIMIT} messages wait for it; later ones are "
                          f"dropped")

    def _work(self) -> None:
        while True:
            message = self.queue.get()
            if message is None:
                return
            rest = self.sent_at + self.pace - time.monotonic()
            if rest > 0:
                self.wake.wait(rest)
            self.busy_since = time.monotonic()
            try:
                message.error = self._deliver(message)
            finally:
                self.busy_since, self.sent_at = None, time.monotonic()
                with self._count:
                    self.pending -= 1
                message.done.set()
            if message.error is not None and not message.quiet and not self.failed:
                self.failed = True
                self.warn(f"a notification to {self.shown} could not be sent ({message.error}); the runs go on, "
                          f"and later failures to it are not said again")

    def _deliver(self, message: _Message) -> Optional[str]:
        """None when sent; else why not, after one retry."""
        error = self._send(message)
        if error is not None and not self.closing:
            self.wake.wait(RETRY_AFTER)
            if not self.closing:
                error = self._send(message)
        return error

    def _send(self, message: _Message) -> Optional[str]:
        answers = _capture()
        lines: List[str] = []
        answers.local.lines = lines
        try:
            sent = self.plugin.notify(body=message.body, title=message.title, notify_type=message.kind,
                                      body_format="text")
        except Exception as exc:  # noqa: BLE001 - a plugin's bug is one failed message, nothing more
            sent, lines = False, [*lines, f"{type(exc).__name__}: {exc}"]
        finally:
            answers.local.lines = None
        if sent:
            return None
        return scrub(lines[-1] if lines else "the receiver did not accept it", self.url)[:ERROR_CHARS]

    def given_up(self, closed_at: float) -> bool:
        """At the runner's end: not worth waiting for (it failed already, or still sits on a message it
        took ``STUCK_AFTER`` seconds before)."""
        busy = self.busy_since
        return self.failed or (busy is not None and closed_at - busy >= STUCK_AFTER)


class Notifier:
    """Sends messages on the events ``settings.on`` names to every URL of ``settings``, off the caller's
    thread. ``warn`` says (once per receiver) what could not be sent; it is called from the senders'
    threads."""

    def __init__(self, settings: NotifySettings, warn: Callable[[str], None] = log.warning):
        try:
            import apprise
        except ImportError:
            raise UsageError(f"[NOTIFY] in mlp.config needs apprise, which is not installed: {INSTALL}") from None
        self.on: FrozenSet[str] = frozenset(settings.on)
        self.dashboard_url = settings.dashboard_url
        self._warn, self._lock = warn, threading.Lock()
        self.receivers: List[_Receiver] = []
        _capture()  # before the first URL is read: apprise's own lines may name it whole
        self.invalid: List[str] = []  # the URLs (masked) apprise cannot send to
        for url in settings.urls:
            plugin = apprise.Apprise.instantiate(url)
            if plugin is None:
                self.invalid.append(mask(url))
                self.warn(f"[NOTIFY] urls: {mask(url)} is not a URL apprise can send to (see "
                          f"https://github.com/caronc/apprise/wiki); it is left out")
            else:
                self.receivers.append(_Receiver(url, plugin, self.warn))

    def warn(self, message: str) -> None:
        with self._lock:
            try:
                self._warn(message)
            except Exception:  # noqa: BLE001 - a log that cannot be written must not end a sender
                log.warning("%s", message)

    def wants(self, *events: NotifyEvent) -> bool:
        return any(event.value in self.on for event in events)

    def send(self, events: Iterable[NotifyEvent], title: str, body: str, kind: str = "info") -> bool:
        """Queue a message for every receiver if ``on`` names one of ``events``; returns at once."""
        if not self.wants(*events):
            return False
        for receiver in self.receivers:
            receiver.put(_Message(title, body, kind))
        return True

    def link(self, run_id: Optional[int] = None) -> Optional[str]:
        if not self.dashboard_url:
            return None
        return f"{self.dashboard_url}/runs/{run_id}" if run_id is not None else f"{self.dashboard_url}/"

    def test(self, title: str, body: str, wait: float = TEST_WAIT) -> List[Tuple[str, Optional[str]]]:
        """Send one message to every URL, now: (masked URL, None when it was accepted, else why not)."""
        sent = [(receiver, _Message(title, body, "info", quiet=True)) for receiver in self.receivers]
        for receiver, message in sent:
            receiver.put(message)
        deadline = time.monotonic() + wait
        answers: List[Tuple[str, Optional[str]]] = [(shown, "not a URL apprise can send to") for shown in self.invalid]
        for receiver, message in sent:
            answered = message.done.wait(max(0.0, deadline - time.monotonic()))
            answers.append((receiver.shown, message.error if answered else f"no answer within {wait:g} s"))
        return answers

    def close(self, drain: Optional[float] = None) -> None:
        """Let the receivers finish what is queued, for ``drain`` seconds at most (default
        ``notify_drain``); then give up on the rest, saying what was not sent."""
        closed_at = time.monotonic()
        deadline = closed_at + (timings().notify_drain if drain is None else drain)
        for receiver in self.receivers:
            receiver.closing = True
            receiver.wake.set()
            try:
                receiver.queue.put_nowait(None)
            except queue.Full:
                pass
        for receiver in self.receivers:
            thread = receiver.thread
            while thread is not None and thread.is_alive() and receiver.pending and time.monotonic() < deadline \
                    and not receiver.given_up(closed_at):
                thread.join(min(0.05, max(0.0, deadline - time.monotonic())))
            if receiver.pending and not receiver.failed:  # (one that failed was said once: not again)
                self.warn(f"notifications to {receiver.shown}: {receiver.pending} not sent (it did not answer in "
                          f"time, and the sender does not wait longer)")


# -- what a message says ---------------------------------------------------------------------------------------


def _number(value: Optional[float]) -> str:
    return "nan" if value is None else f"{value:.4g}"


def _lower_is_better(name: str) -> bool:
    return any(word in name.lower() for word in ("loss", "err", "perplex", "mse", "mae", "rmse"))


def best_metrics(rows: Iterable[Any], limit: int = 4) -> Optional[str]:
    """A run's metrics in one line, from its summaries (a run's curves are never scanned): its results,
    then each curve's best value so far (the least of a loss or an error, the greatest of the rest)."""
    results, curves = [], []
    for row in rows:
        if row["split"] == SYSTEM_SPLIT:
            continue
        key = f"{row['split']}/{row['name']}"
        if row["has_final"]:
            results.append(f"{key}={_number(row['final'])}")
        if row["count"]:
            lower = _lower_is_better(row["name"])
            curves.append(f"{key} best {_number(row['min'] if lower else row['max'])} "
                          f"({'min' if lower else 'max'}, last {_number(row['last'])})")
    parts = results + curves
    if not parts:
        return None
    return "; ".join(parts[:limit]) + (f"; and {len(parts) - limit} more" if len(parts) > limit else "")


def last_line(text: Optional[str]) -> Optional[str]:
    lines = [line.strip() for line in (text or "").strip().splitlines() if line.strip()]
    if not lines:
        return None
    return lines[-1] if len(lines[-1]) <= ERROR_CHARS else lines[-1][:ERROR_CHARS - 3] + "..."


def body(fields: Iterable[Tuple[str, Optional[Any]]]) -> str:
    """``name: value`` lines (a field without a value left out)."""
    return "\n".join(f"{name}: {value}" for name, value in fields if value not in (None, ""))


def outcome_events(outcome: Outcome) -> Set[NotifyEvent]:
    """The events a run's end is: succeeded, failed (a failure or a timeout), stalled, and oom by its reason."""
    events: Set[NotifyEvent] = set()
    if outcome.status == RunStatus.SUCCEEDED:
        events.add(NotifyEvent.SUCCEEDED)
    elif outcome.status == RunStatus.STALLED:
        events.add(NotifyEvent.STALLED)
    elif outcome.status not in _ASKED_FOR:
        events.add(NotifyEvent.FAILED)
    if outcome.reason == OOM:
        events.add(NotifyEvent.OOM)
    return events


def _kind(events: Set[NotifyEvent]) -> str:
    return "success" if events == {NotifyEvent.SUCCEEDED} else "failure"


class NotifyObserver:
    """A runner's observer that sends what its runs and its batch amount to. Besides ``started``,
    ``metrics`` and ``finished`` it takes the events the runner tells some observers:
    ``retried``, ``broken`` (a script that did not load), ``queue_empty`` and ``searches``; the batch
    calls ``batch_done`` and ``dead_runners``."""

    def __init__(self, notifier: Notifier, project: Project, reads: Reads,
                 counts: Callable[[], Mapping[str, int]] = dict, clock: Callable[[], float] = time.monotonic):
        self.notifier, self.project, self.reads, self.counts, self.clock = notifier, project, reads, counts, clock
        self.name = os.path.basename(project.root)
        self.began = clock()
        self.failures: Deque[str] = collections.deque(maxlen=10)  # the latest, for batch_done
        self.searches_said: Set[Tuple[str, str]] = set()
        self._searches: Any = None  # the runner's Searches, once it told of one

    def started(self, run: Run) -> None:
        pass

    def metrics(self, run: Run, rows: Any, now: float) -> None:
        pass

    def finished(self, run: Run, outcome: Outcome, seconds: float) -> None:
        run.notes["notify_outcome"] = (outcome, seconds)  # for retried(), which comes after
        spec = run.item.spec
        self._ended(run.run_id, spec.rel, spec.version, outcome, seconds)

    def broken(self, run_id: int, rel: str, version: Optional[str], outcome: Outcome) -> None:
        """A script that did not load (or a search whose propose() failed): a failed run."""
        self._ended(run_id, rel, version, outcome, None)

    def _ended(self, run_id: int, rel: str, version: Optional[str], outcome: Outcome,
               seconds: Optional[float]) -> None:
        events = outcome_events(outcome)
        error = last_line(outcome.error) or last_line(outcome.traceback)
        if NotifyEvent.SUCCEEDED not in events and outcome.status not in _ASKED_FOR:
            self.failures.append(f"{rel} {version or ''} (run {run_id}): {outcome.status.value}"
                                 + (f": {error}" if error else ""))
        if not self.notifier.wants(*events):
            return
        status = outcome.status.value + (f" ({outcome.reason})" if outcome.reason not in (None, outcome.status.value)
                                         else "")
        title = f"mlpipeline: {rel} {version or ''} {status}".replace("  ", " ")
        self.notifier.send(events, title, self._run_body(run_id, rel, version, status, seconds, error),
                           _kind(events))

    def _run_body(self, run_id: int, rel: str, version: Optional[str], status: str, seconds: Optional[float],
                  error: Optional[str]) -> str:
        try:
            best = best_metrics(self.reads.metric_summaries(run_id))
        except Exception:  # noqa: BLE001 - a ledger too busy to answer costs the message its metrics only
            best = None
        return body([("project", self.name), ("script", rel), ("version", version), ("run", run_id),
                     ("status", status), ("duration", elapsed_text(seconds) if seconds is not None else None),
                     ("error", error), ("best so far", best), ("link", self.notifier.link(run_id))])

    def retried(self, run: Run, attempt: int, of: int) -> None:
        """``run`` ended and its version runs again: attempt ``attempt`` of ``of``."""
        if not self.notifier.wants(NotifyEvent.RETRIED):
            return
        outcome, seconds = run.notes.get("notify_outcome") or (None, None)
        spec = run.item.spec
        status = "retried" if outcome is None else f"{outcome.status.value}, retried"
        error = None if outcome is None else last_line(outcome.error) or last_line(outcome.traceback)
        text = self._run_body(run.run_id, spec.rel, spec.version, status, seconds, error)
        self.notifier.send([NotifyEvent.RETRIED], f"mlpipeline: {spec.rel} {spec.version} retried "
                           f"(attempt {attempt} of {of})", text + f"\nattempt: {attempt} of {of}", "warning")

    def queue_empty(self) -> None:
        """A ``--watch`` runner has nothing left to run (until an edit)."""
        self._searches_done(None)
        counts = self._counts()
        self.notifier.send([NotifyEvent.QUEUE_EMPTY], f"mlpipeline: {self.name}: queue empty",
                           body([("project", self.name), ("since the runner started", counts or "no runs"),
                                 ("latest failures", "; ".join(self.failures) or None),
                                 ("waiting for", "edits to models.config or the scripts"),
                                 ("link", self.notifier.link())]))

    def searches(self, searches: Any) -> None:
        """A search's point ended (``searches``: the runner's ``Searches``): tell of the searches done."""
        self._searches_done(searches)

    def _searches_done(self, searches: Any) -> None:
        if searches is not None:
            self._searches = searches
        if self._searches is None:
            return
        for (rel, name), why in self._searches.done_in_batch():
            if (rel, name) in self.searches_said:
                continue
            self.searches_said.add((rel, name))
            self.notifier.send([NotifyEvent.SEARCH_DONE], f"mlpipeline: {rel} search {name} done",
                               body([("project", self.name), ("script", rel), ("search", name), ("why", why),
                                     ("link", self.notifier.link())]), "success")

    def _counts(self) -> str:
        counts = dict(self.counts())
        return ", ".join(f"{n} {status}" for status, n in sorted(counts.items(), key=lambda kv: -kv[1]) if n)

    def batch_done(self, stopped: Optional[str] = None) -> None:
        """The batch ended (``stopped``: why, when it did not end by itself)."""
        self._searches_done(None)
        counts = self._counts()
        failed = bool(self.failures)
        title = f"mlpipeline: {self.name}: batch " + ("stopped" if stopped else "done") + \
            (f": {counts}" if counts else ": nothing ran")
        self.notifier.send([NotifyEvent.BATCH_DONE], title,
                           body([("project", self.name), ("runs", counts or "none"),
                                 ("took", elapsed_text(self.clock() - self.began)), ("stopped", stopped),
                                 ("failures", "; ".join(self.failures) or None), ("link", self.notifier.link())]),
                           "failure" if failed or stopped else "success")

    def dead_runners(self, reads: Reads) -> List[int]:
        """At the runner's start: tell of runners that died (their rows are closed next)."""
        try:
            return DeathWatch(self.notifier, self.project, f"the next runner (pid {os.getpid()}) at its start") \
                .check(reads)
        except Exception as exc:  # noqa: BLE001 - a ledger busy now costs this message, never the batch
            self.notifier.warn(f"could not look for runners that died, to tell of them: {exc}")
            return []


# -- runners that died -----------------------------------------------------------------------------------------


def dead_runners(reads: Reads, host: Optional[str] = None, now: Optional[float] = None) -> List[Any]:
    """Runner rows still open whose process is gone (killed, its machine down), gone for less than
    ``REPORT_WITHIN``: liveness as every reader derives it (``store.liveness``)."""
    liveness = Liveness(reads, host, now)
    return [row for row in reads.open_runners() if not liveness.runner_alive(row)
            and liveness.now - (row["heartbeat_at"] or row["started_at"] or 0) < REPORT_WITHIN]


def claim(project: Project, what: str) -> bool:
    """Whether this process is the first to tell of ``what``: it makes ``outputs/notified/<what>`` (an
    exclusive create, so the dashboard and a new runner never both send it). Where this process may
    not write, it tells: said twice beats never said."""
    try:
        os.makedirs(project.notified_dir, exist_ok=True)
        os.close(os.open(os.path.join(project.notified_dir, what), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
    except FileExistsError:
        return False
    except OSError:
        return True
    return True


class DeathWatch:
    """Sends ``runner_died`` once for each runner whose row says it runs but whose process is gone.
    ``mlpipeline serve`` calls ``check`` every ``notify_check`` seconds; a runner calls it at its start,
    before it closes those rows. ``who``: who noticed, as the message says."""

    def __init__(self, notifier: Notifier, project: Project, who: str):
        self.notifier, self.project, self.who = notifier, project, who
        self.name = os.path.basename(project.root)
        self.seen: Set[Tuple[int, int]] = set()

    def check(self, reads: Reads, now: Optional[float] = None) -> List[int]:
        """The ids of the runners it told of now."""
        if not self.notifier.wants(NotifyEvent.RUNNER_DIED):
            return []
        told: List[int] = []
        for row in dead_runners(reads, now=now):
            key = (int(row["id"]), int(row["started_at"] or 0))
            if key in self.seen:
                continue
            self.seen.add(key)
            if not claim(self.project, f"runner_died-{key[0]}-{key[1]}"):
                continue
            left = [run for run in reads.running_runs() if run["runner_id"] == row["id"]]
            shown = ", ".join(f"{run['script']} {run['version'] or ''} (run {run['id']})" for run in left[:10])
            self.notifier.send([NotifyEvent.RUNNER_DIED], f"mlpipeline: {self.name}: runner died (pid {row['pid']} "
                               f"on {row['host']})",
                               body([("project", self.name), ("runner", f"pid {row['pid']} on {row['host']}"),
                                     ("started", iso(row["started_at"])), ("last heartbeat", iso(row["heartbeat_at"])),
                                     ("it left running", (shown + (f" and {len(left) - 10} more" if len(left) > 10
                                                                   else "")) if left else "nothing"),
                                     ("what now", "its runs read interrupted; mlpipeline -r -u runs them again"),
                                     ("noticed by", self.who), ("link", self.notifier.link())]), "failure")
            told.append(key[0])
        return told


def configured(project: Project) -> NotifySettings:
    """The project's ``[NOTIFY]``, or a UsageError that says how to write one."""
    settings = project.notify
    if settings is None or not settings.urls:
        raise UsageError(f"{os.path.join(project.root, 'mlp.config')}: no [NOTIFY] section with urls; add one, e.g. "
                         f"'[NOTIFY]' and 'urls = slack://TokenA/TokenB/TokenC/#channel' (see the README's "
                         f"Notifications)")
    return settings


def notify_test(project: Project, wait: float = TEST_WAIT) -> List[Tuple[str, Optional[str]]]:
    """``mlpipeline notify --test``: one message to every URL of the project's ``[NOTIFY]``, and what
    each answered (None: accepted)."""
    settings = configured(project)
    notifier = Notifier(settings, warn=lambda message: None)
    name = os.path.basename(project.root)
    try:
        return notifier.test(f"mlpipeline: {name}: a test message",
                             body([("project", name), ("sent by", f"mlpipeline notify --test (pid {os.getpid()})"),
                                   ("events", ", ".join(e.value for e in NotifyEvent if e.value in settings.on)),
                                   ("link", notifier.link())]), wait)
    finally:
        notifier.close(0.0)
