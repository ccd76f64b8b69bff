"""Where a version's GPUs come from: the decision alone, over what the local executor knows of each GPU
(NVML's memory and processes, and which of this runner's versions hold a share of it), so it is tested
with plain data.

Whole-GPU versions get GPUs no version of ours holds; fractional ones share a GPU up to 1.0 in total,
packed onto the fullest GPU they fit; a GPU on which someone else's process holds more than the foreign
limit is busy; ``gpu_memory`` asks for that much free on each GPU given, counting what our versions there
declared but have not allocated yet.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple, Union

from ..core.resources import Resources, Wait, shown_size

EPSILON = 1e-9


@dataclass
class Slot:
    """One GPU this runner may hand out. ``total`` 0: its memory is unknown (no NVML)."""

    id: str                           # as CUDA_VISIBLE_DEVICES takes it
    uuid: str = ""
    total: int = 0
    foreign: int = 0                  # bytes held by processes that are not this runner's versions
    foreign_who: str = ""             # "pid 4242 (bob) 3 GiB" — the biggest of them
    ours_used: int = 0                # bytes our versions' processes hold
    held: Dict[int, Tuple[float, int]] = field(default_factory=dict)  # ticket -> (share, declared bytes)

    @property
    def share(self) -> float:
        return sum(share for share, _ in self.held.values())

    def free(self) -> int:
        """Free memory as placement counts it (``total`` known)."""
        return self.total - self.foreign - max(self.ours_used, sum(mem for _, mem in self.held.values()))


def never(need: Resources, slots: List[Slot], cpus: float, memory: int) -> Optional[str]:
    """Why no GPU or part of this machine could ever run ``need`` (None: something could)."""
    if need.whole_gpus > len(slots):
        have = f"{len(slots)} ({', '.join('GPU ' + s.id for s in slots)})" if slots else \
            "none (give --gpus, or install nvidia-ml-py where there are GPUs)"
        return f"asks for {need.gpus:g} GPU{'s' if need.gpus > 1 else ''}; the GPUs this runner may use: {have}"
    biggest = max((s.total for s in slots), default=0)
    if need.gpu_memory and biggest and need.gpu_memory > biggest:
        return f"asks for {shown_size(need.gpu_memory)} free GPU memory; the largest GPU here has " \
               f"{shown_size(biggest)}"
    if need.cpus > cpus:
        return f"asks for {need.cpus:g} CPUs; this machine has {cpus:g}"
    if need.memory and memory and need.memory > memory:
        return f"asks for {shown_size(need.memory)} memory; this machine has {shown_size(memory)}"
    return None


def place(need: Resources, slots: List[Slot], foreign_limit: int) -> Union[List[Slot], Wait]:
    """The GPUs to give a version that needs ``need`` now, or why it waits."""
    count = need.whole_gpus
    if count == 0:
        return []
    usable: List[Slot] = []
    why: List[str] = []
    for slot in slots:
        if slot.total and slot.foreign > foreign_limit:
            why.append(f"GPU {slot.id} is busy: {slot.foreign_who}")
            continue
        share = slot.share
        if share + (1.0 if need.gpus >= 1 else need.gpus) > 1.0 + EPSILON:
            why.append(f"GPU {slot.id} is in use by this runner's versions ({share:g} of it)")
            continue
        if need.gpu_memory and slot.total and slot.free() < need.gpu_memory:
            why.append(f"GPU {slot.id} has {shown_size(max(0, slot.free()))} free")
            continue
        usable.append(slot)
    if len(usable) < count:
        return Wait(f"waits for {need.shown()}: " + "; ".join(why))
    if need.gpus < 1:  # pack: the fullest GPU it fits on, so whole GPUs stay free for whole-GPU versions
        return [max(usable, key=lambda s: (s.share, -slots.index(s)))]
    return usable[:count]
