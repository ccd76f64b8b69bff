"""GPU placement and the queue's backfill, as decisions over plain data: what NVML would say (a fake reading),
what this runner's versions hold, and an injected clock."""
from __future__ import annotations

from types import SimpleNamespace
from typing import List, Optional

import pytest

from mlpipeline.core.errors import UsageError
from mlpipeline.core.resources import ResourceError, Resources, Wait, resources_of
from mlpipeline.execution.gpubook import GpuBook
from mlpipeline.execution.gpus import Gpu, NoNvml
from mlpipeline.execution.placement import Slot, never, place

GIB = 1 << 30


def spec(name: str = "v", **resources) -> SimpleNamespace:
    return SimpleNamespace(params={"resources": resources} if resources else {}, label=f"s.py {name}")


class Machine:
    """A fake NVML reading the test edits."""

    def __init__(self, *totals: int):
        self.gpus = [Gpu(i, f"GPU-{i}", "Fake", total, 0) for i, total in enumerate(totals)]
        self.fail: Optional[str] = None

    def read(self) -> List[Gpu]:
        if self.fail:
            raise NoNvml(self.fail)
        for gpu in self.gpus:
            gpu.used = sum(b for _, b in gpu.processes)
        return self.gpus


def book(machine: Machine, ids=None, **kw) -> GpuBook:
    now = [0.0]
    made = GpuBook(ids, read=machine.read, clock=lambda: now[0], cpus=8, memory=64 * GIB, **kw)
    made.now = now  # type: ignore[attr-defined]
    return made


def test_declarations_are_read_and_a_bad_one_says_the_fix():
    assert resources_of({"gpus": 0.5, "gpu_memory": "20G", "cpus": 2, "memory": "512M"}) == \
        Resources(0.5, 20 * GIB, 2.0, 512 << 20)
    assert resources_of(None, gpus=1) == Resources(1.0)
    assert resources_of({"gpus": 0}, gpus=1) == Resources(0.0)  # the version's own word over the default
    for bad, words in [({"gpus": 1.5}, "fraction below 1"), ({"gpu": 1}, "no field 'gpu'"),
                       ({"gpus": 1, "gpu_memory": "lots"}, "a size such as"), ([1], "not a dict"),
                       ({"gpu_memory": "1G"}, "without gpus"), ({"cpus": -1}, "number of CPUs")]:
        with pytest.raises(ResourceError, match=words):
            resources_of(bad)


def test_whole_gpus_are_distinct_fractions_pack_and_a_foreign_process_makes_a_gpu_busy():
    slots = [Slot("0", total=40 * GIB), Slot("1", total=40 * GIB)]
    first = place(Resources(0.5), slots, GIB)
    assert [s.id for s in first] == ["0"]
    slots[0].held[1] = (0.5, 0)
    assert [s.id for s in place(Resources(0.5), slots, GIB)] == ["0"]  # packed beside the first half
    slots[0].held[2] = (0.5, 0)
    assert [s.id for s in place(Resources(0.5), slots, GIB)] == ["1"]
    assert [s.id for s in place(Resources(1), slots, GIB)] == ["1"]
    assert isinstance(place(Resources(2), slots, GIB), Wait)
    slots[0].held.clear()
    assert [s.id for s in place(Resources(2), slots, GIB)] == ["0", "1"]
    slots[1].foreign, slots[1].foreign_who = 3 * GIB, "pid 77 (bob) holds 3 GiB"
    waits = place(Resources(2), slots, GIB)
    assert isinstance(waits, Wait) and "GPU 1 is busy: pid 77 (bob) holds 3 GiB" in waits.reason
    assert [s.id for s in place(Resources(1), slots, GIB)] == ["0"]
    assert [s.id for s in place(Resources(1), slots, 4 * GIB)] == ["0"]  # a higher --gpu-foreign-memory


def test_gpu_memory_counts_what_our_versions_declared_before_they_allocate_it():
    slots = [Slot("0", total=40 * GIB)]
    slots[0].held[1] = (0.5, 30 * GIB)  # started, nothing allocated yet
    waits = place(Resources(0.5, gpu_memory=20 * GIB), slots, GIB)
    assert isinstance(waits, Wait) and "GPU 0 has 10 GiB free" in waits.reason
    assert place(Resources(0.5, gpu_memory=10 * GIB), slots, GIB)


def test_what_no_gpu_here_could_ever_run_is_named():
    slots = [Slot("0", total=16 * GIB)]
    assert "asks for 2 GPUs; the GPUs this runner may use: 1 (GPU 0)" in never(Resources(2), slots, 8, 0)
    assert "largest GPU here has 16 GiB" in never(Resources(1, gpu_memory=20 * GIB), slots, 8, 0)
    assert "this machine has 8" in never(Resources(cpus=9), slots, 8, 0)
    assert "install nvidia-ml-py" in never(Resources(1), [], 8, 0)
    assert never(Resources(1), slots, 8, 0) is None


def test_the_book_places_from_nvml_and_gives_back():
    machine = Machine(40 * GIB, 40 * GIB)
    gpus = book(machine)
    assert [s.id for s in gpus.slots] == ["0", "1"] and gpus.gpus_per_version == 1.0  # all of NVML's GPUs
    given = gpus.take(1, spec("a", gpus=2), set)
    assert given["env"] == {"CUDA_VISIBLE_DEVICES": "0,1", "CUDA_DEVICE_ORDER": "PCI_BUS_ID"}
    assert given["where"]["gpu"] == "0,1" and given["where"]["gpu_uuids"] == "GPU-0,GPU-1"
    assert "waits for 1 GPU" in gpus.fits(spec("b"), set).reason
    gpus.release(1)
    assert gpus.fits(spec("b"), set) is None
    assert gpus.take(2, spec("cpu", gpus=0), set)["env"]["CUDA_VISIBLE_DEVICES"] == ""  # sees no GPU
    machine.gpus[0].processes = [(4242, 2 * GIB)]  # someone else's job
    gpus.now[0] += 5
    assert gpus.take(3, spec("c"), set)["where"]["gpu"] == "1"
    gpus.now[0] += 5
    assert "GPU 0 is busy: pid 4242" in gpus.fits(spec("d"), set).reason
    machine.gpus[0].processes = [(4242, 2 * GIB)]
    gpus.now[0] += 5
    assert gpus.fits(spec("d"), lambda: {4242}) is None  # that pid is one of ours after all


def test_the_book_refuses_what_never_fits_and_test_mode_runs_it_anyway():
    machine = Machine(16 * GIB)
    strict = book(machine)
    verdict = strict.fits(spec("big", gpus=2), set)
    assert verdict.never and "asks for 2 GPUs" in verdict.reason
    assert strict.fits(spec("bad", gpus=1.5), set).never
    assert book(machine, strict=False).fits(spec("big", gpus=2), set) is None


def test_without_nvml_the_named_gpus_are_handed_out_after_one_warning():
    machine = Machine(16 * GIB)
    machine.fail = "NVML did not start (Driver Not Loaded)"
    said = []
    gpus = book(machine, ids=["0", "1"], say=lambda text, level: said.append(text))
    assert len(said) == 1 and "Driver Not Loaded" in said[0]
    assert gpus.take(1, spec("a"), set)["where"] == {"resources": '{"gpus": 1.0}', "gpu": "0", "gpu_uuids": None}
    assert gpus.take(2, spec("b", gpus=0.5), set)["where"]["gpu"] == "1"
    assert gpus.take(3, spec("c", gpus=0.5), set)["where"]["gpu"] == "1"
    assert gpus.fits(spec("d"), set) is not None
    assert len(said) == 1
    with pytest.raises(UsageError, match="NVML sees no GPU 3"):
        book(Machine(GIB), ids=["0", "3"])
    assert book(Machine(), ids=None).slots == [] and book(Machine()).gpus_per_version == 0.0


# -- the queue: backfill without starving the version that waits -------------------------------------------

def _queue_with(names: List[str]):
    from mlpipeline.core.lifecycle import Mode, VersionSpec
    from mlpipeline.plan.planner import Plan, QueueItem
    from mlpipeline.run.queue import BatchQueue

    items = [QueueItem(VersionSpec(f"/p/{n}.py", "s.py", n, {}), SimpleNamespace()) for n in names]
    plan = Plan(items=items)
    searches = SimpleNamespace(step=lambda slot: None)
    return BatchQueue(SimpleNamespace(), SimpleNamespace(), searches, Mode.RUN, False, lambda *a, **k: None), plan


def test_a_small_version_backfills_until_the_big_one_has_waited_longer_than_a_version_takes():
    queue, plan = _queue_with(["big", "small1", "small2"])
    big_fits = [False]

    def fits(spec):
        if spec.version == "big" and not big_fits[0]:
            return Wait("waits for 2 GPUs: GPU 1 is in use by this runner's versions (1 of it)")
        return None

    step = queue.next(plan, set(), fits, now=0.0)
    assert step.spec.version == "small1"  # backfilled: nothing is known of how long versions take
    assert queue.state(plan.items[0], set(), set())[1].startswith("waits for 2 GPUs")
    queue.started(step)
    queue.took(30.0)  # a version of this batch takes 30 s
    assert queue.next(plan, {("s.py", "small1")}, fits, now=10.0).spec.version == "small2"  # waited 10 < 30
    assert queue.next(plan, {("s.py", "small1")}, fits, now=31.0) is None  # waited 31 > 30: no one jumps it
    big_fits[0] = True
    assert queue.next(plan, {("s.py", "small1")}, fits, now=40.0).spec.version == "big"


def test_a_version_that_never_fits_is_refused_once_and_the_rest_go_on():
    from mlpipeline.run.queue import Refused

    queue, plan = _queue_with(["huge", "ok"])

    def fits(spec):
        return Wait("asks for 4 GPUs; the GPUs this runner may use: 1 (GPU 0)", never=True) \
            if spec.version == "huge" else None

    step = queue.next(plan, set(), fits)
    assert isinstance(step, Refused) and "asks for 4 GPUs" in step.reason
    queue.started(step.item)
    queue.finished(step.item, False)
    assert queue.next(plan, set(), fits).spec.version == "ok"


def test_nvml_failing_mid_run_hands_the_gpus_out_as_plain_ids_again():
    """What NVML said last (a busy GPU, its memory) does not outlive it: the GPUs go out as --gpus would."""
    machine = Machine(16 * GIB)
    machine.gpus[0].processes = [(1, 5 * GIB)]
    said = []
    gpus = book(machine, say=lambda text, level: said.append(text))
    assert "busy" in gpus.fits(spec("a"), set).reason
    machine.fail = "NVML driver gone"
    gpus.now[0] += 5
    assert gpus.fits(spec("a"), set) is None and len(said) == 1
    assert gpus.take(1, spec("a"), set)["where"]["gpu"] == "0"


def test_nan_and_infinite_declarations_are_refused_in_one_line():
    for bad in ({"gpus": float("nan")}, {"cpus": float("nan")}, {"gpus": float("inf")}, {"memory": "1e400"},
                {"gpus": 1, "gpu_memory": float("inf")}):
        with pytest.raises(ResourceError, match="resources "):
            resources_of(bad)


def test_a_gpus_per_version_that_is_neither_a_fraction_nor_whole_is_a_usage_error(project):
    project.configure([])
    result = project.run("-r", "--gpus-per-version", "1.5")
    assert result.returncode == 2 and "--gpus-per-version 1.5: give a fraction below 1" in result.stderr
    assert project.runs() == []
