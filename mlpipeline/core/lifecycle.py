"""The vocabulary of a run's life, shared by storage and execution.

Storage (the ledger) and execution (the executors) both import this module and
nothing of each other: a run's status, the spec that starts a version, the
events a running version sends, and how it ended.
"""
from __future__ import annotations

import base64
import logging
import marshal
import numbers
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, NamedTuple, Optional, Protocol, Sequence, Tuple

from .vocabulary import Mode, QueueState, RunStatus

__all__ = ["BadMetric", "Decision", "Ended", "Executor", "Job", "MetricKey", "MetricRow", "Mode", "Outcome",
           "QueueState", "RunStatus", "Sink", "VersionSpec", "metric_row", "to_number"]


@dataclass(frozen=True)
class VersionSpec:
    """Everything needed to start one version: which script, which version,
    with which parameters. A version the script does not declare (a sweep's
    proposal) starts from the script's first version with these parameters."""

    script: str                     # absolute path of the model script
    rel: str                        # the script's path relative to the project root, as runs record it
    version: str
    params: Mapping[str, Any]       # plain JSON data
    params_sha256: str = ""
    fingerprint: str = ""           # what trains: code and data read at load, not the version declarations
    script_sha256: str = ""
    seed: Optional[str] = None
    imports: Tuple[str, ...] = ()   # the script's third-party modules (a warm parent imports them once)
    argv: Optional[Tuple[str, ...]] = None  # a plain script's version: its arguments (None: a MODEL's version)

    @property
    def key(self) -> Tuple[str, str]:
        return (self.rel, self.version)

    @property
    def label(self) -> str:
        return f"{self.rel} {self.version}"

    def to_json(self) -> Dict[str, Any]:
        return {"script": self.script, "rel": self.rel, "version": self.version, "params": dict(self.params),
                "params_sha256": self.params_sha256, "fingerprint": self.fingerprint,
                "script_sha256": self.script_sha256, "seed": self.seed, "imports": list(self.imports),
                "argv": None if self.argv is None else list(self.argv)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> VersionSpec:
        return cls(**{k: data[k] for k in ("script", "rel", "version", "params") },
                   **{k: data.get(k, "") for k in ("params_sha256", "fingerprint", "script_sha256")},
                   seed=data.get("seed"), imports=tuple(data.get("imports") or ()),
                   argv=None if data.get("argv") is None else tuple(data["argv"]))


@dataclass(frozen=True)
class Job:
    """A spec placed for one run: where it keeps its files and how it is bounded."""

    spec: VersionSpec
    model_dir: str
    exec_mode: str                       # ExecutionModeKeys.TRAIN or .TEST
    run_dir: Optional[str] = None        # where a child's captured output is kept
    label: str = ""                      # prefix for echoed output lines when versions run side by side
    timeout: Optional[float] = None      # seconds; executors that cannot be interrupted enforce it themselves
    memory_limit: Optional[int] = None   # bytes of address space (RLIMIT_AS) for a child
    tag: str = ""                        # the run's uid: marks every process the version starts
    run_id: int = 0                      # the run's id in the ledger (a plain script reads MLPIPELINE_RUN_ID)


class MetricKey(NamedTuple):
    """A metric's name within its split: ``train/loss`` (``str``), read back with ``parse``."""

    split: str
    name: str

    def __str__(self) -> str:
        return f"{self.split}/{self.name}"

    @classmethod
    def parse(cls, label: str, default_split: str = "") -> MetricKey:
        """``train/loss`` as (train, loss); a bare ``loss`` gets ``default_split``."""
        split, _, name = label.rpartition("/")
        return cls(split or default_split, name)


class Decision(NamedTuple):
    """What a stopper, a search or the runner's own checks decided about a run; the runner applies
    every decision in one place (``Runner.apply``)."""

    action: RunStatus   # the status the run ends with: PRUNED (a stopper), FAILED (it cannot be recorded), ...
    key: Tuple[str, str]  # (script, version) of the run
    reason: str
    cold: bool = False    # kill now, or ask it to stop first (SIGTERM, then SIGKILL after a grace)


class MetricRow(NamedTuple):
    """One point of a curve (a tuple: millions of them pass through a runner)."""

    name: str
    value: Optional[float]
    step: Optional[int] = None
    split: str = "train"


_new_row = tuple.__new__
MAX_METRIC_NAME = 1024   # characters of a metric's name
MAX_SPLIT = 64           # characters of its split
STEP_RANGE = (-(1 << 63), (1 << 63) - 1)  # what a step can be: SQLite's INTEGER


class BadMetric(ValueError):
    """A metric point that cannot be recorded (a missing name, a value that is
    no number, a step no ledger can hold). The message says which and why."""


def to_number(value: Any) -> Optional[float]:
    """``value`` as a float, or None when it is not a single number: plain
    numbers, bools, numpy scalars and one-element arrays or tensors (anything
    whose ``item()`` gives a number: numpy, PyTorch, JAX, TensorFlow)."""
    if type(value) is float:
        return value
    if not (isinstance(value, numbers.Real)  # ints, bools, numpy scalars; Decimal is a Number but not Complex
            or isinstance(value, numbers.Number) and not isinstance(value, numbers.Complex)):
        item = getattr(value, "item", None)
        if not callable(item) or isinstance(value, (str, bytes)):
            return None
        try:
            value = item()  # a multi-element array or tensor refuses (ValueError, RuntimeError)
        except Exception:  # noqa: BLE001 - whatever the framework raises, it is not one number
            return None
        if not isinstance(value, numbers.Real):
            return None
    try:
        return float(value)
    except (TypeError, ValueError, OverflowError):
        return None


def metric_row(name: Any, value: Any, step: Any = None, split: Any = "train") -> MetricRow:
    """One point checked and made plain, where it enters (``log_metric`` in a
    version, the runner reading a child's events): BadMetric names what is wrong."""
    if type(value) is float and type(name) is str and type(split) is str and (  # the usual point, checked fast
            step is None or type(step) is int and STEP_RANGE[0] <= step <= STEP_RANGE[1]) \
            and 0 < len(name) <= MAX_METRIC_NAME and 0 < len(split) <= MAX_SPLIT \
            and not name.isspace() and not split.isspace():
        return _new_row(MetricRow, (name, value, step, split))  # (a NamedTuple's own __new__ is twice as slow)
    if type(name) is not str or not name.strip():
        raise BadMetric(f"a metric's name must be a non-empty string, not {_shown(name)}")
    if len(name) > MAX_METRIC_NAME:
        raise BadMetric(f"metric name {name[:40]!r}... is {len(name)} characters long; at most {MAX_METRIC_NAME}")
    if type(split) is not str or not split.strip() or len(split) > MAX_SPLIT:
        raise BadMetric(f"metric {name!r}: split must be a non-empty string of at most {MAX_SPLIT} characters, "
                        f"not {_shown(split)}")
    number = None if value is None else to_number(value)
    if number is None and value is not None:
        raise BadMetric(f"metric {name!r}: value {_shown(value)} is not a number")
    if step is not None:
        whole = step if type(step) is int else _whole(step)
        if whole is None:
            raise BadMetric(f"metric {name!r}: step {_shown(step)} is not a whole number")
        if not STEP_RANGE[0] <= whole <= STEP_RANGE[1]:
            raise BadMetric(f"metric {name!r}: step {whole} is outside the range a step can have "
                            f"(a 64-bit integer, up to {STEP_RANGE[1]})")
        step = whole
    return MetricRow(name, number, step, split)


def pack_rows(rows: List[tuple]) -> str:
    """Checked points as text for an event line: ``marshal`` (plain tuples of str, float, int and None pack
    at about 60 ns a row, eight times faster than JSON) in base64. ``unpack_rows`` reverses it."""
    return base64.b64encode(marshal.dumps(rows, 4)).decode("ascii")


def unpack_rows(text: Any) -> List[MetricRow]:
    """The points ``pack_rows`` packed, each checked again with ``metric_row`` (the sender is a version's
    child: whatever it wrote is checked where it enters). BadMetric names what is wrong."""
    if type(text) is not str or len(text) > MAX_PACKED:
        raise BadMetric("a metrics event whose packed rows are not text of at most 64 MiB")
    try:
        rows = marshal.loads(base64.b64decode(text, validate=True))
    except Exception as exc:  # noqa: BLE001 - whatever is wrong with it, it is not packed rows
        raise BadMetric(f"a metrics event whose packed rows cannot be read ({type(exc).__name__})") from None
    if type(rows) is not list:
        raise BadMetric("a metrics event whose packed rows are not a list")
    checked: List[MetricRow] = []
    good: set = set()  # (name, split) pairs checked in this batch
    low, high = STEP_RANGE
    for row in rows:
        if type(row) is not tuple or len(row) != 4:
            raise BadMetric(f"a metric row {_shown(row)} is not (name, value, step, split)")
        name, value, step, split = row
        if type(value) is float and (step is None or type(step) is int and low <= step <= high) \
                and (name, split) in good:  # the usual row, as metric_row's fast path would take it
            checked.append(_new_row(MetricRow, row))
        else:
            checked.append(metric_row(name, value, step, split))
            good.add((name, split))
    return checked


MAX_PACKED = 64 << 20


def _whole(step: Any) -> Optional[int]:
    if isinstance(step, bool):
        return None
    if isinstance(step, numbers.Integral):
        return int(step)
    number = to_number(step)
    if number is None or number != number or number in (float("inf"), float("-inf")) or number != int(number):
        return None
    return int(number)


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


@dataclass
class Outcome:
    """How a version ended."""

    status: RunStatus
    result: Optional[Dict[str, Any]] = None
    exit_code: Optional[int] = None
    signal: Optional[int] = None
    error: str = ""
    traceback: str = ""
    script_error: bool = False   # the script could not be loaded at all
    packages: Dict[str, str] = field(default_factory=dict)  # versions of what the script imported
    node_lost: bool = False      # the machine it ran on left (a cluster node died): worth running again
    reason: Optional[str] = None  # why it ended so, in one word a retry policy can match (OOM), or None


OOM = "oom"  # an Outcome's reason: it ran out of memory (host or GPU)
SYSTEM_SPLIT = "sys"  # the split of the curves the runner samples from outside (CPU, RSS, GPU): never a decision


class Sink(Protocol):
    """Receives one running version's events as they happen."""

    def started(self, where: Mapping[str, Any]) -> None:
        """The version is placed: ``where`` may hold ``pid``, ``gpu``, ``node``."""

    def log(self, message: str, level: int = logging.INFO) -> None: ...

    def metrics(self, rows: Sequence[MetricRow]) -> None: ...

    def output(self, record: Mapping[str, Any]) -> None:
        """The version stored a value with ``save_output`` (``cached_outputs``): index it."""

    def data(self, fingerprint: str) -> None:
        """What the version's data loaders read (``kind:sha256``), known before it trains."""

    def params(self, params: Mapping[str, Any]) -> None:
        """Parameters the version adds to its record (``log_params``, a plain script's parsed arguments)."""


Ended = Tuple[int, Outcome]  # an executor's job that ended: (ticket, how it ended)


class Executor(Protocol):
    """Runs jobs somewhere and owns the waiting for them."""

    def capacity(self) -> int:
        """How many more jobs ``submit`` takes now."""

    def submit(self, job: Job, sink: Sink) -> int:
        """Start (or queue) ``job``; its events go to ``sink``. Returns a ticket."""

    def poll(self, timeout: float) -> List[Ended]:
        """Wait up to ``timeout`` seconds for events; deliver them to the sinks;
        return the jobs that finished since the last call."""

    def cancel(self, ticket: int, status: RunStatus, reason: str, cold: bool = True) -> None:
        """End a job: ``cold`` kills it now, warm asks it to stop (then kills it
        after a grace period). It finishes with ``status`` and ``reason``."""

    def running(self) -> int:
        """How many jobs are submitted and not yet reported finished."""

    def close(self) -> None:
        """Kill whatever still runs; wait for nothing."""
