"""A full disk under the project. A version fills it (one big file: no blocks
left; or many small ones: no inodes left) with more versions queued behind it.
The runner stops with one clear error line naming the file it could not write
(exit non-zero, no traceback), the ledger stays intact with the earlier
successes in it, and once space is freed ``-r -u`` finishes the rest.

The disk is a 3 MiB tmpfs (root can mount one here). Where mounting is not
allowed the same scenario runs with ENOSPC injected at the runner's write
boundary instead (the runner in this process, ``open``/``os.makedirs`` patched);
the ``injected`` cases run that way always, so the fallback itself is tested.
"""
from __future__ import annotations

import errno
import os
import re
import shutil
import subprocess
import sys

import pytest

from reliability_support import Project, in_process_cli, model_script, queue_config

BIG = "big.bin"
SHARDS = "shards"

FILLER = model_script(f"""
    # fills the disk the first time it runs; once space is freed, it trains normally
    marker = os.path.join(self.model_dir, "filled-once")
    if os.path.exists(marker):
        with open(os.path.join(self.model_dir, "small.bin"), "wb") as handle:
            handle.write(b"x" * 1000)
    elif os.environ.get("FILL_WITH") == "inodes":
        open(marker, "w").close()
        os.makedirs(os.path.join(self.model_dir, "{SHARDS}"))
        for i in range(20000):
            open(os.path.join(self.model_dir, "{SHARDS}", "shard-%05d" % i), "w").close()
    else:
        open(marker, "w").close()
        with open(os.path.join(self.model_dir, "{BIG}"), "wb") as handle:
            for _ in range(16):
                handle.write(b"\\0" * (1 << 20))
                handle.flush()
    """, versions=("fill",))
SCRIPTS = {
    "a_first.py": model_script("print('first trained')", versions=("first",)),
    "b_filler.py": FILLER,
    "c_after.py": model_script("print('after trained')", versions=("after1", "after2")),
}
STOP_LINE = re.compile(r"^mlpipeline: error: (?P<path>(?:/\S*/)?models/outputs/[^:\s]+): cannot .*free some space")


def mount_tmpfs(where, options: str) -> bool:
    where.mkdir(parents=True)
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)],
                              capture_output=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0


def unmount(where) -> None:
    if subprocess.run(["umount", str(where)], capture_output=True).returncode != 0:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


def integrity_in_a_subprocess(db) -> str:
    """PRAGMA integrity_check, in a process of its own: SQLite may die of SIGBUS
    mapping its -shm file on a full disk, and that must not take pytest down."""
    code = ("import sqlite3, sys; c = sqlite3.connect('file:' + sys.argv[1] + '?mode=ro', uri=True); "
            "print(c.execute('PRAGMA integrity_check').fetchone()[0])")
    done = subprocess.run([sys.executable, "-c", code, str(db)], capture_output=True, text=True, timeout=60)
    return done.stdout.strip() or f"exit {done.returncode}: {done.stderr.strip()[-300:]}"


def make_project(root) -> Project:
    project = Project(root)
    project.write("mlp.config", "[MLP]\nmodels_dir = models\n")
    for name, text in SCRIPTS.items():
        project.script(name, text)
    project.write("models.config", queue_config(list(SCRIPTS)))
    return project


class Injected:
    """ENOSPC at the runner's write boundary, once the filler's files are there:
    appends to the log/output files and the run's output.log (``blocks``), or
    creating a run's folder (``inodes``)."""

    def __init__(self, project: Project, fill_with: str):
        self.project, self.fill_with = project, fill_with

    def full(self) -> bool:
        model_dir = self.project.outputs / "model_ckpts" / "b_filler-fill"
        return (model_dir / (SHARDS if self.fill_with == "inodes" else BIG)).exists()

    def enospc(self, path):
        return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    def install(self, monkeypatch) -> None:
        import builtins

        from mlpipeline.execution import childrun as executors  # a run's output.log
        from mlpipeline.run import hostfiles as outputs  # the host's log and output files

        real_open, real_makedirs = builtins.open, os.makedirs

        def open_(file, mode="r", *args, **kwargs):
            if self.fill_with == "blocks" and self.full() and any(m in mode for m in "wax+"):
                raise self.enospc(file)
            return real_open(file, mode, *args, **kwargs)

        def makedirs(name, *args, **kwargs):
            if self.fill_with == "inodes" and self.full() and os.sep + "runs" + os.sep in os.fspath(name) \
                    and not os.path.isdir(name):
                raise self.enospc(name)
            return real_makedirs(name, *args, **kwargs)

        monkeypatch.setattr(outputs, "open", open_, raising=False)
        monkeypatch.setattr(executors, "open", open_, raising=False)
        monkeypatch.setattr(os, "makedirs", makedirs)


@pytest.mark.parametrize("fill_with", ["blocks", "inodes"])
@pytest.mark.parametrize("disk", ["tmpfs", "injected"])
def test_disk_full_stops_cleanly_and_resumes(tmp_path, monkeypatch, disk, fill_with):
    mount = tmp_path / "disk"
    options = "size=3M" if fill_with == "blocks" else "size=32M,nr_inodes=300"
    mounted = disk == "tmpfs" and mount_tmpfs(mount, options)
    try:
        project = make_project((mount if mounted else tmp_path) / "proj")
        env = {"FILL_WITH": fill_with}
        if mounted:
            first = project.run("-r", "-u", env=env)
            code, err = first.returncode, first.stderr
        else:
            injected = Injected(project, fill_with)
            with in_process_cli() as mlpipeline:
                injected.install(monkeypatch)
                monkeypatch.setenv("FILL_WITH", fill_with)
                code, _, err = mlpipeline("-C", str(project.root), "-r", "-u")
                monkeypatch.undo()

        lines = err.splitlines()
        assert code not in (0, 2), err  # stopped on a storage error, not a success or a usage error
        assert "Traceback" not in err and "internal error" not in err, err
        assert all(line.startswith("mlpipeline: ") for line in lines), err  # nothing unformatted
        stops = [line for line in lines if STOP_LINE.match(line)]
        assert len(stops) == 1 and lines[-1] == stops[0], err  # one line, the last, naming the file
        assert integrity_in_a_subprocess(project.outputs / "mlpipeline.db") == "ok"
        runs = project.runs()
        assert [(r["version"], r["status"]) for r in runs][:1] == [("first", "succeeded")], runs
        assert not any(r["version"] in ("after1", "after2") and r["status"] == "succeeded" for r in runs)
        for run in runs:  # a run the stop cut short says why, and nobody pressed Ctrl+C
            assert "Ctrl+C" not in (run["error"] or ""), (run["id"], run["version"], run["status"], run["error"])

        # free the space, then run again: the rest of the queue finishes
        model_dir = project.outputs / "model_ckpts" / "b_filler-fill"
        if fill_with == "blocks":
            (model_dir / BIG).unlink()
        else:
            shutil.rmtree(model_dir / SHARDS)
        again = project.run("-r", "-u", env=env)
        assert again.returncode == 0, again.stderr[-3000:]
        runs = project.runs()
        succeeded = [r["version"] for r in runs if r["status"] == "succeeded"]
        assert sorted(succeeded) == ["after1", "after2", "fill", "first"], [(r["version"], r["status"]) for r in runs]
        assert [r["id"] for r in runs if r["version"] == "first"] == [runs[0]["id"]]  # not run again
        assert all(r["status"] in ("succeeded", "failed", "interrupted") for r in runs), runs
        assert integrity_in_a_subprocess(project.outputs / "mlpipeline.db") == "ok"
    finally:
        if mounted:
            unmount(mount)
