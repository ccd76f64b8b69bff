"""Versions that crash in every way a process can: the runner records each
with the right status and reason, keeps the flood's output on disk without
holding it in memory, and goes on with the batch."""
from __future__ import annotations

import signal

from reliability_support import PeakMemory, model_script

FLOOD_MIB = 50
CHUNK_MIB = 50

SCRIPTS = {
    "a_segfault.py": """
        import ctypes
        ctypes.string_at(0)
        """,
    "b_exit7.py": """
        os._exit(7)
        """,
    "c_oom.py": f"""
        chunks = []
        for i in range(60):  # 3 GB of address space, never touched: harmless if no limit applies
            chunks.append(bytearray({CHUNK_MIB} << 20))
            print("allocated", (i + 1) * {CHUNK_MIB}, "MiB", flush=True)
        raise RuntimeError("allocated 3 GB: --memory-limit was not enforced")
        """,
    "d_hang.py": """
        time.sleep(3600)
        """,
    "e_flood.py": f"""
        line = "x" * 1023 + "\\n"
        block = line * 1024            # 1 MiB
        for _ in range({FLOOD_MIB}):
            sys.stdout.write(block)
        sys.stdout.flush()
        """,
    "f_normal.py": """
        print("normal version trained")
        """,
}


def test_crashing_versions_are_recorded_and_the_batch_goes_on(project):
    for name, body in SCRIPTS.items():
        project.script(name, model_script(body))
    project.configure(list(SCRIPTS))
    proc = project.start("-r", "--timeout", "3", "--memory-limit", "300M")
    with PeakMemory(proc.pid) as memory:
        out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, err[-3000:]
    assert "Traceback" not in err, err[-3000:]

    runs = {r["script"].split("/")[-1]: r for r in project.runs()}
    assert list(runs) == list(SCRIPTS), [(r["script"], r["status"]) for r in project.runs()]
    summary = {name: (r["status"], r["exit_code"], r["signal"], r["error"]) for name, r in runs.items()}

    segv = runs["a_segfault.py"]
    assert segv["status"] == "failed" and segv["signal"] == signal.SIGSEGV, summary
    assert "SIGSEGV" in segv["error"], summary

    exit7 = runs["b_exit7.py"]
    assert exit7["status"] == "failed" and exit7["exit_code"] == 7 and exit7["signal"] is None, summary
    assert "exited with code 7" in exit7["error"], summary

    oom = runs["c_oom.py"]
    assert oom["status"] == "failed", summary
    assert "out of memory" in oom["error"] and "memory-limit" in oom["error"], summary
    oom_log = (project.outputs / "runs" / str(oom["id"]) / "output.log").read_text()
    allocated = [int(line.split()[1]) for line in oom_log.splitlines() if line.startswith("allocated ")]
    assert max(allocated, default=0) < 300, oom_log[-500:]  # the limit was really enforced

    hang = runs["d_hang.py"]
    assert hang["status"] == "timeout", summary
    assert "timed out after 3 s" in hang["error"], summary
    assert 2.5 < hang["ended_at"] - hang["started_at"] < 15, summary

    flood = runs["e_flood.py"]
    assert flood["status"] == "succeeded", summary
    flood_log = project.outputs / "runs" / str(flood["id"]) / "output.log"
    size = flood_log.stat().st_size
    assert FLOOD_MIB << 20 <= size < (FLOOD_MIB << 20) + (64 << 10), size
    assert out.count("x" * 1023 + "\n") == FLOOD_MIB * 1024  # echoed live, whole
    # The runner streams the flood through: its peak resident size stays far below 50 MiB of output.
    baseline = min(memory.samples[len(memory.samples) // 10:] or [0])
    print("runner peak", memory.peak_kib, "KiB; baseline", baseline, "KiB", summary)
    assert memory.peak_kib > 0 and memory.peak_kib - baseline < 25 * 1024, (memory.peak_kib, baseline)

    normal = runs["f_normal.py"]
    assert normal["status"] == "succeeded", summary
    assert "2 succeeded, 3 failed, 1 timeout" in err, err[-2000:]
