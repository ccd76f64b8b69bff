"""``Metric`` and ``MetricContainer``: the original 1.x running totals, computed as it did.

A ``Metric`` keeps two sums of ``update(value, count)`` calls: a running one
(``value``/``count``, cleared by ``reset``) and one for the current epoch
(``epoc_value``/``epoc_count``, closed by ``reset_epoc``, which keeps the last
``track_average_epoc_count`` epoch averages for the tracking statistics).
``avg()`` is ``sum(values) / sum(counts)``: pass a batch's *summed* value with
its size as ``count``, or a per-step value with the default ``count=1``.

``MetricContainer`` is a dict of Metrics that also allows attribute access,
as the original's EasyDict-based one. Our additions: ``log_metrics(step=...)``
and every logged value recorded as a metric of the running version.
"""
from __future__ import annotations

import logging
import statistics
from typing import Any, Dict, Iterable, List, Optional, Tuple

from . import report as _report
from ..core.errors import MLPipelineError


class MetricError(MLPipelineError, TypeError, ValueError):
    """A bad value given to a Metric or MetricContainer (a TypeError/ValueError, as the original raised)."""


class Metric:
    """Running and per-epoch averages of one metric."""

    def __init__(self, track_average_epoc_count: int = 1, *, track_average_epoch_count: Optional[int] = None):
        if track_average_epoch_count is not None:  # 2.0a1 ... 2.0a7.post1 spell it "epoch"
            track_average_epoc_count = track_average_epoch_count
        self.count = 0
        self.value: float = 0  # an int until a float is added, as the original's
        self.epoc_count = 0
        self.epoc_value: float = 0
        self.track_average_epoc_count = track_average_epoc_count
        if track_average_epoc_count < 1:
            raise MetricError(f"Metric(track_average_epoc_count={track_average_epoc_count!r}): it must be 1 or more")
        self.track_value_list: List[float] = []

    def update(self, value: Any, count: int = 1) -> None:
        """Add ``value`` to the sums and ``count`` to the counts (running and epoch)."""
        if not isinstance(value, (int, float)):
            raise MetricError(f"Metric.update: value must be an int or float, got {type(value).__module__}."
                              f"{type(value).__qualname__}; pass float(value) (e.g. loss.item())")
        self.count += count
        self.value += value
        self.epoc_count += count
        self.epoc_value += value

    def reset(self) -> None:
        """Clear the running sums (the epoch sums and tracked epochs stay)."""
        self.count = 0
        self.value = 0

    def reset_epoc(self) -> None:
        """Close the epoch: keep its average (0 if empty) among the tracked ones, clear its sums."""
        average = self.epoc_value / self.epoc_count if self.epoc_count else 0
        if len(self.track_value_list) == self.track_average_epoc_count:
            self.track_value_list = self.track_value_list[1:] + [average]
        else:
            self.track_value_list.append(average)
        self.epoc_count = 0
        self.epoc_value = 0

    def avg(self) -> float:
        """Running average since the last ``reset`` (0 when nothing was added)."""
        return self.value / self.count if self.count else 0

    def avg_epoc(self) -> float:
        """Average of the current epoch (0 when nothing was added)."""
        return self.epoc_value / self.epoc_count if self.epoc_count else 0

    def get_tracking_average(self) -> float:
        """Mean of the tracked epoch averages; 0 until at least half of them exist."""
        if len(self.track_value_list) < self.track_average_epoc_count / 2:
            return 0
        try:
            return statistics.mean(self.track_value_list)
        except statistics.StatisticsError:
            return 0

    def get_tracking_delta(self) -> float:
        """Change from the oldest to the newest tracked epoch; 0 until all are tracked."""
        values = self.track_value_list
        if len(values) != self.track_average_epoc_count:
            return 0
        return sum([values[i + 1] - values[i] for i in range(len(values) - 1)])

    def get_tracking_stdev(self) -> float:
        """Sample standard deviation of the tracked epochs (0 with fewer than two)."""
        try:
            return statistics.stdev(self.track_value_list)
        except statistics.StatisticsError:
            return 0

    # 2.0a1 ... 2.0a7.post1's spelling of the same state and methods.
    epoch_count = property(lambda self: self.epoc_count, lambda self, v: setattr(self, "epoc_count", v))
    epoch_value = property(lambda self: self.epoc_value, lambda self, v: setattr(self, "epoc_value", v))
    track_average_epoch_count = property(lambda self: self.track_average_epoc_count,
                                         lambda self, v: setattr(self, "track_average_epoc_count", v))

    def reset_epoch(self) -> None:
        """``reset_epoc`` under 2.x's spelling."""
        self.reset_epoc()

    def avg_epoch(self) -> float:
        """``avg_epoc`` under 2.x's spelling."""
        return self.avg_epoc()

    def __repr__(self) -> str:
        return f"Metric(avg={self.avg():.4f}, count={self.count}, avg_epoc={self.avg_epoc():.4f})"


# Names the original never copied from the class into the container's items.
_NOT_ITEMS = ("update", "pop", "reset", "log_metrics", "reset_epoc", "_get_matrics_subset", "log_rows", "reset_epoch")


class MetricContainer(dict):
    """Metrics by name, as items and as attributes: ``m = MetricContainer(['loss']); m.loss.update(0.3)``.

    ``metrics`` is a list of names, or a list of groups
    ``{'metrics': [names], 'track_average_epoc_count': n}`` (n overrides the
    container-wide ``track_average_epoc_count`` for that group); None or ``[]``
    gives an empty container to which Metrics can be assigned.
    """

    def __init__(self, metrics: Optional[list] = None, track_average_epoc_count: int = 1, **kwargs: Any):
        super().__init__()
        track_average_epoc_count = kwargs.pop("track_average_epoch_count", track_average_epoc_count)  # 2.x spelling
        if metrics is None:
            return
        if not isinstance(metrics, list):
            raise MetricError(f"MetricContainer(metrics={metrics!r}): metrics must be a list of names or of "
                              f"{{'metrics': [...]}} groups")
        found: Dict[Any, Metric] = {}
        if metrics and isinstance(metrics[0], dict):
            for group in metrics:
                if not isinstance(group, dict) or "metrics" not in group:
                    raise MetricError(f"MetricContainer: group {group!r} must be a dict with a 'metrics' list")
                for name in group["metrics"]:
                    metric = Metric(track_average_epoc_count=track_average_epoc_count)
                    for key in ("track_average_epoc_count", "track_average_epoch_count"):  # 1.x, 2.x
                        if key in group:
                            metric.track_average_epoc_count = group[key]
                    found[name] = metric
        else:
            for name in metrics:
                found[name] = Metric(track_average_epoc_count=track_average_epoc_count)
        for name, metric in found.items():
            setattr(self, name, metric)
        # As the original (EasyDict), a subclass's own class attributes become items too.
        for name in type(self).__dict__:
            if not (name.startswith("__") and name.endswith("__")) and name not in _NOT_ITEMS:
                setattr(self, name, getattr(self, name))

    def __setattr__(self, name: str, value: Any) -> None:
        if name not in type(self).__dict__ and not isinstance(value, Metric):
            raise MetricError(f"MetricContainer: {name!r} must be set to a Metric, not {type(value).__name__}; "
                              f"use container.{name}.update(value) to record a value")
        object.__setattr__(self, name, value)
        dict.__setitem__(self, name, value)

    __setitem__ = __setattr__

    def update(self, e: Any = None, **f: Any) -> None:  # type: ignore[override]
        """Add or replace Metrics from a dict (as ``dict.update``; values must be Metrics)."""
        items = dict(e) if e else {}
        items.update(f)
        for name in items:
            setattr(self, name, items[name])

    def pop(self, name: Any, *default: Any) -> Any:
        if isinstance(name, str) and name in self.__dict__:
            object.__delattr__(self, name)
        return dict.pop(self, name, *default)

    def __delattr__(self, name: str) -> None:
        object.__delattr__(self, name)
        dict.pop(self, name, None)

    def __delitem__(self, name: Any) -> None:
        dict.__delitem__(self, name)
        self.__dict__.pop(name, None)

    def _get_matrics_subset(self, metrics: Optional[Iterable] = None, return_named_tuples: bool = False):
        # ``k in metrics``, as the original: a str selects every name it contains.
        if metrics is None:
            return list(self.items()) if return_named_tuples else list(self.values())
        if return_named_tuples:
            return [(k, v) for k, v in self.items() if k in metrics]
        return [v for k, v in self.items() if k in metrics]

    def reset(self, metrics: Optional[Iterable] = None) -> None:
        """``reset`` the named metrics (all when None)."""
        for metric in self._get_matrics_subset(metrics):
            metric.reset()

    def reset_epoc(self, metrics: Optional[Iterable] = None) -> None:
        """``reset_epoc`` the named metrics (all when None)."""
        for metric in self._get_matrics_subset(metrics):
            metric.reset_epoc()

    def reset_epoch(self, metrics: Optional[Iterable] = None) -> None:
        """``reset_epoc`` under 2.x's spelling."""
        self.reset_epoc(metrics)

    def log_rows(self, metrics: Optional[Iterable] = None, log_to_file: bool = True, complete_epoc: bool = False,
                 items_per_row: int = 3, charachters_per_row: int = 50,
                 name_prefix: str = "") -> Tuple[str, List[Tuple[str, float]]]:
        """``log_metrics`` without recording: (the returned text, [(name, value)])."""
        from .utils import log  # utils imports this module

        returned, row, row_items, row_chars = "", "", 0, 0
        values = []
        for name, metric in self._get_matrics_subset(metrics, return_named_tuples=True):
            name = f"{name_prefix}{name}"
            value = metric.avg_epoc() if complete_epoc else metric.avg()
            values.append((name, value))
            item = f"{name}: {value:.4f}    "
            row_chars += len(item)
            if row_chars > charachters_per_row:
                log(message=row, log_to_file=log_to_file)
                returned += row
                row, row_chars, row_items = item, len(item), 0
            else:
                row += item
            row_items += 1
            if row_items % items_per_row == 0:
                log(message=row, log_to_file=log_to_file)
                returned += row
                row, row_chars, row_items = "", 0, 0
        if row != "":
            log(message=row, log_to_file=log_to_file)
            returned += row
        return returned, values

    def log_metrics(self, metrics: Optional[Iterable] = None, log_to_file: bool = True,
                    complete_epoc: bool = False, items_per_row: int = 3, charachters_per_row: int = 50,
                    name_prefix: str = "", step: Optional[int] = None, complete_epoch: bool = False) -> str:
        """Log ``name: value`` rows and return them joined, exactly as the original.

        Values are ``avg_epoc()`` when ``complete_epoc`` else ``avg()``; a row
        ends after ``items_per_row`` items or before it would pass
        ``charachters_per_row`` characters (nothing is reset). With
        ``log_to_file`` each value is also recorded as a metric of the running
        version, at ``step`` (our addition).
        """
        returned, values = self.log_rows(metrics, log_to_file, complete_epoc or complete_epoch, items_per_row,
                                         charachters_per_row, name_prefix)
        if log_to_file and type(_report.current()) is not _report.Reporter:  # a version is running
            reporter = _report.current()
            for name, value in values:
                try:
                    reporter.metric(str(name), float(value), step=step)
                except (TypeError, ValueError, OverflowError):
                    reporter.log(f"log_metrics: {name} = {value!r} is not a number; not recorded", logging.WARNING)
        return returned
