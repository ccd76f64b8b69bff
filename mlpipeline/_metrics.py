"""Running averages of named metrics, the README-era MetricContainer."""
from __future__ import annotations

import logging
from typing import Dict, Iterable, List, Optional

from . import _report


class Metric:
    """The running average of one metric since the last ``reset``.

    ``reset_epoc`` closes an epoch: the epoch's average is kept (the last
    ``track_average_epoc_count`` of them) and the running sum starts again.
    """

    def __init__(self, name: str = "", track_average_epoc_count: int = 1):
        self.name = name
        self.track_average_epoc_count = max(1, int(track_average_epoc_count))
        self.reset()

    def update(self, value: float, count: int = 1) -> None:
        self.value = float(value)
        self.sum += float(value) * count
        self.count += count

    def avg(self) -> float:
        if self.count:
            return self.sum / self.count
        if self.epoc_averages:
            return sum(self.epoc_averages) / len(self.epoc_averages)
        return 0.0

    def reset_epoc(self) -> None:
        if self.count:
            self.epoc_averages.append(self.sum / self.count)
            self.epoc_averages = self.epoc_averages[-self.track_average_epoc_count:]
        self.sum, self.count = 0.0, 0

    def reset(self) -> None:
        self.value = 0.0
        self.sum, self.count = 0.0, 0
        self.epoc_averages: List[float] = []

    def __float__(self) -> float:
        return self.avg()

    def __repr__(self) -> str:
        return f"Metric({self.name!r}, avg={self.avg():.4f}, count={self.count})"


class MetricContainer(dict):
    """Named metrics with attribute access: ``m = MetricContainer(['loss']); m.loss.update(0.3)``."""

    def __init__(self, metrics: Iterable[str] = ("accuracy",), track_average_epoc_count: int = 1):
        super().__init__()
        if isinstance(metrics, str):
            metrics = [metrics]
        for name in metrics:
            self[name] = Metric(name, track_average_epoc_count)

    def __getattr__(self, name: str) -> Metric:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"MetricContainer has no metric {name!r} (metrics: {', '.join(self)})") from None

    def update(self, values=None, count: int = 1, **kw) -> None:  # type: ignore[override]
        """Update several metrics at once: ``update({'loss': 0.3, 'acc': 0.9})``."""
        for name, value in {**(values or {}), **kw}.items():
            if name not in self:
                self[name] = Metric(name)
            self[name].update(value, count)

    def reset(self) -> None:
        for metric in self.values():
            metric.reset()

    def reset_epoc(self) -> None:
        for metric in self.values():
            metric.reset_epoc()

    def averages(self) -> Dict[str, float]:
        return {name: metric.avg() for name, metric in self.items()}

    def format(self, names: Optional[Iterable[str]] = None, name_prefix: str = "") -> str:
        return "    ".join(f"{name_prefix}{name}: {self[name].avg():.4f}"
                           for name in (names or self) if name in self)

    def log_metrics(self, metrics: Optional[Iterable[str]] = None, log_to_file: bool = True,
                    complete_epoc: bool = False, items_per_row: int = 3,
                    charachters_per_row: int = 50, name_prefix: str = "",
                    step: Optional[int] = None) -> str:
        """Log the averages (``items_per_row`` per line) and record each as a metric.

        Returns the text it logged. Unknown names are reported, not fatal.
        """
        reporter = _report.current()
        names = list(metrics) if metrics is not None else list(self)
        unknown = [n for n in names if n not in self]
        if unknown:
            reporter.log(f"log_metrics: no metric named {', '.join(map(repr, unknown))} "
                         f"(metrics: {', '.join(self)})", logging.WARNING)
        names = [n for n in names if n in self]
        rows = [names[i:i + max(1, items_per_row)] for i in range(0, len(names), max(1, items_per_row))]
        text = "\n".join(self.format(row, name_prefix) for row in rows)
        for line in text.splitlines():
            reporter.log(line)
        for name in names:
            if self[name].count or self[name].epoc_averages:
                reporter.metric(f"{name_prefix}{name}", self[name].avg(), step=step)
        if complete_epoc:
            self.reset_epoc()
        return text
