"""The local executor's book of this machine's GPUs, CPUs and memory: what each running version was given,
what NVML says the GPUs hold (read at most once a second), and whether the next version fits now.

GPUs: ``--gpus`` names them, else every GPU NVML sees. Without NVML (no package, no driver, a failing
query) the named ids are handed out as before — one version a GPU unless it asks for a fraction — after
one warning; memory, busy GPUs and UUIDs are then unknown. CPUs and memory are counted only where a version
(or ``--cpus-per-version``) declares them.
"""
from __future__ import annotations

import os
import time
from typing import Any, Callable, Dict, List, Optional, Set, Tuple

from ..core.errors import UsageError
from ..core.lifecycle import VersionSpec
from ..core.resources import KEY, ResourceError, Resources, resources_of, shown_size
from .gpus import Gpu, NoNvml, read_gpus
from ..core.resources import Wait
from .placement import Slot, never, place

READ_EVERY = 1.0  # seconds an NVML reading serves placement decisions


def _total_memory() -> int:
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return 0


def _who(pid: int) -> str:
    try:
        import psutil

        return psutil.Process(pid).username()
    except Exception:  # noqa: BLE001 - gone, or not ours to ask: the pid says enough
        return "?"


class GpuBook:
    """See the module's docstring. ``own_pids`` (given to ``fits``/``take``) answers which processes are
    this runner's versions, so any other process on a GPU is someone else's."""

    def __init__(self, ids: Optional[List[str]] = None, gpus_per_version: Optional[float] = None,
                 cpus_per_version: Optional[float] = None, foreign_limit: Optional[int] = 1 << 30,
                 say: Callable[[str, int], None] = lambda text, level: None,
                 read: Callable[[], List[Gpu]] = read_gpus, clock: Callable[[], float] = time.monotonic,
                 cpus: Optional[float] = None, memory: Optional[int] = None, strict: bool = True):
        self.read, self.clock, self.say = read, clock, say
        self.strict = strict  # False (test mode): a version that asks for more than is here runs with what is
        self.foreign_limit = 1 << 30 if foreign_limit is None else foreign_limit
        self.cpus = float(cpus if cpus is not None else (os.cpu_count() or 1))
        self.memory = memory if memory is not None else _total_memory()
        self.nvml = True
        self._read_at = -READ_EVERY
        self._gpus: Dict[str, Gpu] = {}
        seen = self._reading(ids is not None)
        if ids is None:
            ids = [str(g.index) for g in seen]
        else:
            unknown = [i for i in ids if self.nvml and i not in {str(g.index) for g in seen}]
            if unknown:
                raise UsageError(f"--gpus {','.join(ids)}: NVML sees no GPU {unknown[0]} (GPUs here: "
                                 f"{', '.join(str(g.index) for g in seen) or 'none'})")
        self.slots = [Slot(i) for i in ids]
        self.gpus_per_version = gpus_per_version if gpus_per_version is not None else (1.0 if self.slots else 0.0)
        self.cpus_per_version = cpus_per_version or 0.0
        self.given: Dict[int, Tuple[Resources, List[Slot]]] = {}  # ticket -> what it asked for and got
        self._update(seen, set())

    # -- what NVML says -----------------------------------------------------------------------------

    def _reading(self, warn: bool) -> List[Gpu]:
        if not self.nvml:
            return []
        try:
            found = self.read()
        except NoNvml as exc:
            self.nvml = False
            for slot in getattr(self, "slots", []):  # what it said last no longer holds: plain --gpus from here on
                slot.total = slot.foreign = slot.ours_used = 0
                slot.foreign_who = ""
            if warn or getattr(self, "slots", None):
                self.say(f"GPUs: {exc}; handing out --gpus without knowing their memory or other users' "
                         f"processes", 30)
            return []
        self._read_at = self.clock()
        return found

    def _update(self, found: List[Gpu], ours: Set[int]) -> None:
        by_id = {str(g.index): g for g in found}
        for slot in self.slots:
            gpu = by_id.get(slot.id)
            if gpu is None:
                continue
            slot.uuid, slot.total = gpu.uuid, gpu.total
            listed = gpu.processes or []
            foreign = [(used, pid) for pid, used in listed if pid not in ours]
            slot.ours_used = sum(used for pid, used in listed if pid in ours)
            slot.foreign = sum(used for used, _ in foreign)
            if not gpu.processes:  # NVML could not list them: what no version of ours declared is someone's
                slot.foreign = max(0, gpu.used - sum(mem for _, mem in slot.held.values()))
            if foreign:
                used, pid = max(foreign)
                slot.foreign_who = f"pid {pid} ({_who(pid)}) holds {shown_size(used)}"
            elif slot.foreign:
                slot.foreign_who = f"{shown_size(slot.foreign)} in use by processes NVML does not list"

    def refresh(self, own_pids: Callable[[], Set[int]]) -> None:
        """Read NVML again if the last reading is older than READ_EVERY."""
        if self.nvml and self.slots and self.clock() - self._read_at >= READ_EVERY:
            found = self._reading(True)
            busy = any(g.processes for g in found)
            self._update(found, own_pids() if busy else set())

    # -- decisions --------------------------------------------------------------------------------

    def need(self, spec: VersionSpec) -> Resources:
        """What ``spec`` asks for (ResourceError: its declaration cannot be read)."""
        return resources_of(spec.params.get(KEY), self.gpus_per_version, self.cpus_per_version or None)

    def fits(self, spec: VersionSpec, own_pids: Callable[[], Set[int]]) -> Optional[Wait]:
        """None when ``spec`` can start now; else why it waits (``never``: why it never could here)."""
        try:
            need = self.need(spec)
        except ResourceError as exc:
            return Wait(str(exc), never=True)
        impossible = never(need, self.slots, self.cpus, self.memory)
        if impossible is not None:
            return Wait(impossible, never=True) if self.strict else None
        used_cpus = sum(r.cpus for r, _ in self.given.values())
        if need.cpus and used_cpus + need.cpus > self.cpus + 1e-9:
            return Wait(f"waits for {need.cpus:g} CPUs ({used_cpus:g} of {self.cpus:g} are given to running versions)")
        used_memory = sum(r.memory for r, _ in self.given.values())
        if need.memory and self.memory and used_memory + need.memory > self.memory:
            return Wait(f"waits for {shown_size(need.memory)} memory ({shown_size(used_memory)} of "
                        f"{shown_size(self.memory)} are given to running versions)")
        if need.whole_gpus:
            self.refresh(own_pids)
            placed = place(need, self.slots, self.foreign_limit)
            if isinstance(placed, Wait):
                return placed
        return None

    def take(self, ticket: int, spec: VersionSpec, own_pids: Callable[[], Set[int]]) -> Dict[str, Any]:
        """Give ``spec`` what it asks for: its environment (``env``) and what the ledger records (``where``)."""
        waits = self.fits(spec, own_pids)
        if waits is not None:
            raise RuntimeError(f"GpuBook.take: {spec.label} does not fit now ({waits.reason})")
        need = self.need(spec)
        if never(need, self.slots, self.cpus, self.memory) is not None:  # test mode: it runs with what is here
            self.given[ticket] = (Resources(), [])
            return {"env": {}, "where": {}}
        placed = place(need, self.slots, self.foreign_limit) if need.whole_gpus else []
        assert not isinstance(placed, Wait)
        share = need.gpus if need.gpus < 1 else 1.0
        for slot in placed:
            slot.held[ticket] = (share, need.gpu_memory)
        self.given[ticket] = (need, placed)
        env: Dict[str, str] = {}
        where: Dict[str, Any] = {"resources": need.to_json() if need != Resources() else None}
        if self.slots:  # a version that asks for no GPU sees none, so it cannot take one by accident
            env = {"CUDA_VISIBLE_DEVICES": ",".join(s.id for s in placed), "CUDA_DEVICE_ORDER": "PCI_BUS_ID"}
        if placed:
            where["gpu"] = ",".join(s.id for s in placed)
            where["gpu_uuids"] = ",".join(s.uuid for s in placed if s.uuid) or None
        return {"env": env, "where": where}

    def release(self, ticket: int) -> None:
        _, placed = self.given.pop(ticket, (None, []))
        for slot in placed:
            slot.held.pop(ticket, None)
        self._read_at = -READ_EVERY  # what it freed shows in the next reading

    def gpus_of(self, ticket: int) -> List[str]:
        return [s.id for s in self.given.get(ticket, (None, []))[1]]
