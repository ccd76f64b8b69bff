"""``mlpipeline.iterator``, the 2.0a1 … 2.0a7.post1 loop helper: a loop over it runs in full under
``mlpipeline run`` and stops after ``test_iterations`` items in test mode, so a script's own epoch and
batch loops are cut short without a ``steps`` argument."""
from __future__ import annotations

from typing import Any, Iterable, Iterator, Optional

from .plain import test_mode


class iterator:  # noqa: N801 - the original's name
    """Iterate ``iterable``; in test mode stop after ``test_iterations`` items (None: never stop early).
    Whether it is test mode is read when the loop starts."""

    def __init__(self, iterable: Iterable[Any], test_iterations: Optional[int] = 1):
        self.iterable = iterable
        self.test_iterations = test_iterations

    def __iter__(self) -> Iterator[Any]:
        limit = self.test_iterations if test_mode() else None
        for count, item in enumerate(self.iterable):
            if limit is not None and count >= limit:
                return
            yield item
