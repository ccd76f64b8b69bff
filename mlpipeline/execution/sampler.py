"""What each running version uses, sampled from outside its processes: CPU %, RSS and — through NVML,
by pid — GPU memory and utilisation, as curves in the ``sys`` split (``sys/cpu_percent``,
``sys/rss_mb``, ``sys/gpu_memory_mb``, ``sys/gpu_util``); and, when a version ends, whether it ran
out of memory (``oom_outcome``), with the peak the sampler saw.

psutil and NVML (``pynvml``, the nvidia-ml-py package) are imported at the first sample: the command
line never pays for them. NVML is optional: without it, or when it fails, there are no GPU values
(one warning), never an error."""
from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import time
from dataclasses import dataclass, replace
from typing import Any, Dict, Hashable, List, Mapping, Optional, Sequence, Tuple, TypeVar

from ..core.lifecycle import OOM, SYSTEM_SPLIT, MetricRow, Outcome, RunStatus

log = logging.getLogger(__name__)

MIB = float(1 << 20)
NEAR_LIMIT = 0.9  # a SIGKILL with the last sampled RSS at this share of --memory-limit: out of memory

Watched = Tuple[int, Sequence[int]]  # a version's child pid and the NVML indices of the GPUs it was given
Key = TypeVar("Key", bound=Hashable)  # what names a version (the executor's ticket)


@dataclass
class Seen:
    """What the sampler saw of one version: when its process started (epoch seconds), when it was last
    sampled, its peaks, its last RSS and the pids of its process tree then."""

    started: float
    sampled_at: float
    peak_rss_mb: float = 0.0
    last_rss_mb: float = 0.0
    peak_gpu_memory_mb: float = 0.0
    pids: Tuple[int, ...] = ()


class Sampler:
    """Samples running versions' process trees (the child and every descendant) on each ``sample``.

    CPU % is the CPU time the tree's processes took since the last sample (since the child started, at
    the first), over that wall time: each process known by (pid, create time), so a reused pid starts
    afresh. A process that ends between two samples leaves its last interval uncounted."""

    def __init__(self) -> None:
        self._psutil: Any = None
        self._cpu: Dict[Tuple[int, float], float] = {}  # (pid, create time) -> its CPU seconds at the last sample
        self._seen: Dict[Hashable, Seen] = {}
        self.gpu = Nvml()

    def sample(self, versions: Mapping[Key, Watched], now: Optional[float] = None) -> Dict[Key, List[MetricRow]]:
        """The points of each version whose process is still there, keyed as ``versions`` is."""
        if self._psutil is None:
            import psutil

            self._psutil = psutil
        now = time.time() if now is None else now
        trees = self._trees([pid for pid, _ in versions.values()])
        self.gpu.read()
        gpu_memory = self.gpu.memory_by_pid()
        cpu: Dict[Tuple[int, float], float] = {}
        points: Dict[Key, List[MetricRow]] = {}
        for key, (pid, gpus) in versions.items():
            seen = self._seen.get(key)
            measured = self._measure(trees.get(pid, [pid]), cpu, seen)
            if measured is None:
                continue
            started, taken, rss, pids = measured
            if seen is None or seen.started != started:
                seen = self._seen[key] = Seen(started, started)
            rss_mb = rss / MIB
            step = max(0, int(now - seen.started))
            rows = [MetricRow("cpu_percent", round(100.0 * taken / max(now - seen.sampled_at, 1e-3), 1), step,
                              SYSTEM_SPLIT), MetricRow("rss_mb", round(rss_mb, 1), step, SYSTEM_SPLIT)]
            if gpu_memory is not None and (gpus or any(p in gpu_memory for p in pids)):
                used = sum(gpu_memory.get(p, 0) for p in pids) / MIB
                seen.peak_gpu_memory_mb = max(seen.peak_gpu_memory_mb, used)
                rows.append(MetricRow("gpu_memory_mb", round(used, 1), step, SYSTEM_SPLIT))
            utilisation = self.gpu.utilisation(gpus) if gpus else None
            if utilisation is not None:
                rows.append(MetricRow("gpu_util", round(utilisation, 1), step, SYSTEM_SPLIT))
            seen.sampled_at, seen.last_rss_mb, seen.pids = now, rss_mb, pids
            seen.peak_rss_mb = max(seen.peak_rss_mb, rss_mb)
            points[key] = rows
        self._cpu = cpu
        return points

    def seen(self, key: Hashable) -> Optional[Seen]:
        return self._seen.get(key)

    def forget(self, key: Hashable) -> Optional[Seen]:
        """A version ended: what was seen of it, no longer kept."""
        return self._seen.pop(key, None)

    def _trees(self, roots: Sequence[int]) -> Dict[int, List[int]]:
        """Each root's pid then its descendants' (``Process.children(recursive=True)``), from one pass
        over the system's processes for all roots where psutil offers it."""
        psutil = self._psutil
        # the {pid: ppid} map children() reads, once for all roots (psutil's own, where it has one: Linux, Windows)
        ppid_map = getattr(getattr(psutil, "_psplatform", None), "ppid_map", None)
        found: Dict[int, List[int]] = {}
        try:
            parents = ppid_map() if ppid_map is not None else None
        except (psutil.Error, OSError):  # a process this user may not read (it raises AccessDenied for all)
            parents = None
        if parents is None:  # one pass per root
            for root in roots:
                try:
                    found[root] = [root] + [p.pid for p in psutil.Process(root).children(recursive=True)]
                except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                    found[root] = [root]
            return found
        children: Dict[int, List[int]] = {}
        for pid, ppid in parents.items():
            children.setdefault(ppid, []).append(pid)
        for root in roots:
            tree, stack, known = [root], [root], {root}
            while stack:
                for child in children.get(stack.pop(), ()):
                    if child not in known:  # (a pid reused while the map was read can make a cycle)
                        known.add(child)
                        tree.append(child)
                        stack.append(child)
            found[root] = tree
        return found

    def _measure(self, pids: Sequence[int], cpu: Dict[Tuple[int, float], float], seen: Optional[Seen]
                 ) -> Optional[Tuple[float, float, float, Tuple[int, ...]]]:
        """(the root's create time, CPU seconds the tree took since the last sample, RSS bytes, the pids
        measured) — None when the root is gone (or a zombie: it holds no memory)."""
        psutil = self._psutil
        taken = rss = 0.0
        started = previous = 0.0
        measured: List[int] = []
        for index, pid in enumerate(pids):
            try:
                process = psutil.Process(pid)
                with process.oneshot():
                    created = process.create_time()
                    if index and created < started:  # not the root's descendant: its pid was reused
                        continue
                    times = process.cpu_times()
                    resident = process.memory_info().rss
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                if index == 0:
                    return None
                continue
            if index == 0:
                if not resident:
                    return None
                started = created
                previous = seen.sampled_at if seen is not None and seen.started == created else created
            seconds = times.user + times.system
            before = self._cpu.get((pid, created))
            if before is not None:
                taken += max(0.0, seconds - before)
            elif index == 0 or created >= previous:
                taken += seconds  # new since the last sample: all its CPU time falls in this interval
            cpu[(pid, created)] = seconds
            rss += resident
            measured.append(pid)
        return started, taken, rss, tuple(measured)


class Nvml:
    """GPU memory by pid and utilisation by index, from one reading of ``execution.gpus`` a sample. Without
    nvidia-ml-py there are no GPU values; an NVML error ends them for the runner's life, with one warning."""

    def __init__(self) -> None:
        self.off = False
        self._gpus: Optional[List[Any]] = None

    def read(self) -> None:
        """Take this sample's reading."""
        from .gpus import NoNvml, read_gpus

        self._gpus = None
        if self.off:
            return
        try:
            self._gpus = read_gpus()
        except NoNvml as exc:
            self.off = True
            if not exc.missing:
                log.warning("GPU sampling: NVML failed: %s; runs record no sys/gpu_* curves from now on", exc)

    def memory_by_pid(self) -> Optional[Dict[int, int]]:
        """Bytes of GPU memory each process uses, summed over every GPU (None: not known here)."""
        if self._gpus is None or all(gpu.processes is None for gpu in self._gpus):
            return None
        used: Dict[int, int] = {}
        for gpu in self._gpus:
            for pid, amount in gpu.processes or []:
                used[pid] = used.get(pid, 0) + amount
        return used

    def utilisation(self, indices: Sequence[int]) -> Optional[float]:
        """The mean utilisation (%) of the GPUs at these NVML indices (None: not known here)."""
        rates = [gpu.util for gpu in self._gpus or [] if gpu.index in indices and gpu.util is not None]
        return sum(rates) / len(rates) if rates else None


def gpu_indices(gpu: Optional[str]) -> List[int]:
    """The NVML indices in a version's ``CUDA_VISIBLE_DEVICES`` ("0,1"; ids that are not indices are left out)."""
    return [int(part) for part in (gpu or "").split(",") if part.strip().isdigit()]


# -- out of memory, named -------------------------------------------------------------------------------

def oom_outcome(outcome: Outcome, seen: Optional[Seen], memory_limit: Optional[int], pid: int,
                ended_by_runner: bool) -> Outcome:
    """``outcome`` with reason ``oom`` and a line that says which memory ran out and the peak the sampler
    saw, where it ran out of memory: the child said so (a ``MemoryError``, a CUDA out-of-memory: see
    ``proc.outcome.failure``), or it was killed by SIGKILL (not by the runner) with its last sampled RSS
    at 90 % of its ``--memory-limit``, or with the kernel's OOM record of one of its processes."""
    if outcome.reason == OOM:
        gpu = "GPU memory" in outcome.error or "device memory" in outcome.error
        return replace(outcome, error=outcome.error + _peaks(seen, gpu)) if seen is not None else outcome
    if ended_by_runner or outcome.signal != signal.SIGKILL or outcome.status != RunStatus.FAILED:
        return outcome
    last = seen.last_rss_mb if seen is not None else 0.0
    if memory_limit and last * MIB >= NEAR_LIMIT * memory_limit:
        why = (f"host memory: killed by SIGKILL with its RSS at {_size(last)}, {100 * last * MIB / memory_limit:.0f} % "
               f"of its --memory-limit of {_size(memory_limit / MIB)}")
    elif kernel_oom_killed(seen.pids if seen is not None and seen.pids else (pid,),
                           seen.started if seen is not None else None):
        why = "host memory: the kernel's OOM killer ended it with SIGKILL"
    else:
        return outcome
    return replace(outcome, reason=OOM, error=f"the version ran out of memory ({why})" + _peaks(seen, False))


def _peaks(seen: Optional[Seen], gpu: bool) -> str:
    if seen is None:
        return ""
    if gpu and seen.peak_gpu_memory_mb:
        return f"; peak GPU memory {_size(seen.peak_gpu_memory_mb)}, peak RSS {_size(seen.peak_rss_mb)} as sampled"
    return f"; peak RSS {_size(seen.peak_rss_mb)} as sampled" if seen.peak_rss_mb else ""


def _size(mib: float) -> str:
    return f"{mib:.0f} MiB" if mib < 1024 else f"{mib / 1024:.1f} GiB"


KERNEL_OOM = re.compile(rb"Killed process (\d+)|oom-kill:.*?[,:]pid=(\d+)")


def kernel_oom_killed(pids: Sequence[int], since: Optional[float] = None) -> bool:
    """Whether the kernel's log (``/dev/kmsg``, else ``dmesg``: where this user may read them) records
    an OOM kill of one of ``pids`` since ``since`` (epoch seconds). False where neither can be read."""
    wanted = {str(p).encode() for p in pids}
    after = None if since is None else time.monotonic() - (time.time() - since) - 1.0  # on the kernel's clock
    for stamp, line in _kernel_log():
        if after is not None and stamp is not None and stamp < after:
            continue
        match = KERNEL_OOM.search(line)
        if match and (match.group(1) or match.group(2)) in wanted:
            return True
    return False


def _kernel_log() -> List[Tuple[Optional[float], bytes]]:
    """The kernel's log records: (seconds since boot, message); empty where it cannot be read."""
    records: List[Tuple[Optional[float], bytes]] = []
    try:
        fd = os.open("/dev/kmsg", os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        fd = -1
    if fd >= 0:
        try:
            while len(records) < 100_000:
                try:
                    record = os.read(fd, 8192)
                except BlockingIOError:
                    break
                except OSError:  # EPIPE: a record was overwritten while read; go on with the next
                    continue
                head, _, message = record.partition(b";")
                fields = head.split(b",")
                stamp = int(fields[2]) / 1e6 if len(fields) > 2 and fields[2].isdigit() else None
                records.append((stamp, message))
        finally:
            os.close(fd)
        return records
    try:
        text = subprocess.run(["dmesg"], capture_output=True, timeout=5).stdout
    except (OSError, subprocess.SubprocessError):
        return records
    for line in text.splitlines():
        stamp_text = line[1:line.find(b"]")].strip() if line.startswith(b"[") else b""
        try:
            records.append((float(stamp_text), line))
        except ValueError:
            records.append((None, line))
    return records
