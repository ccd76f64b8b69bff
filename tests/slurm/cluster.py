"""A real one-node Slurm on this machine, for the tests and the bench: Debian's slurmctld, slurmd
and munge (``make slurm`` installs them), started as root with a slurm.conf of our own in a temporary
folder, two fake GPUs declared as gres, and torn down after.

The fake GPUs are character device nodes (``mknod NAME c 195 N``, the NVIDIA major): with plain
files Slurm schedules the gres but sets no ``CUDA_VISIBLE_DEVICES``.

    python tests/slurm/cluster.py start DIR   # prints the SLURM_CONF to export
    python tests/slurm/cluster.py stop DIR
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from typing import Dict, List, Optional

NEEDED = ("slurmctld", "slurmd", "munged", "sbatch", "squeue", "scancel", "scontrol", "sinfo")
PACKAGES = "slurmctld slurmd slurm-client munge"


def missing() -> Optional[str]:
    """Why no Slurm can start here (None: it can)."""
    if os.geteuid() != 0:
        return "the one-node Slurm runs its daemons as root"
    absent = [name for name in NEEDED if shutil.which(name) is None and not os.path.exists(f"/usr/sbin/{name}")]
    if absent:
        return f"{', '.join(absent)} not installed: make slurm (apt-get install {PACKAGES})"
    return None


def _which(name: str) -> str:
    return shutil.which(name) or f"/usr/sbin/{name}"


class OneNodeSlurm:
    """``slurmctld`` and ``slurmd`` for this host alone: ``cpus`` CPUs, ``gpus`` fake GPUs, one partition
    ``debug``. ``env`` is what a client needs (``SLURM_CONF``)."""

    def __init__(self, root: str, cpus: int = 2, gpus: int = 2, memory_mb: int = 4000):
        self.root = os.path.abspath(root)
        self.cpus, self.gpus, self.memory_mb = cpus, gpus, memory_mb
        self.node = socket.gethostname()
        self.conf = os.path.join(self.root, "slurm.conf")
        self.env: Dict[str, str] = {"SLURM_CONF": self.conf}
        self._procs: List[subprocess.Popen] = []

    def _write(self) -> None:
        for sub in ("state", "spool", "dev", "log"):
            os.makedirs(os.path.join(self.root, sub), exist_ok=True)
        devices = []
        for index in range(self.gpus):
            path = os.path.join(self.root, "dev", f"nvidia{index}")
            if not os.path.exists(path):
                os.mknod(path, 0o666 | 0o020000, os.makedev(195, index))
            devices.append(path)
        r = self.root
        lines = [
            "ClusterName=mlptest", f"SlurmctldHost={self.node}(127.0.0.1)", "SlurmUser=root", "SlurmdUser=root",
            "AuthType=auth/munge", "CredType=cred/munge", "MpiDefault=none",
            "ProctrackType=proctrack/linuxproc", "TaskPlugin=task/none", "JobAcctGatherType=jobacct_gather/none",
            "AccountingStorageType=accounting_storage/none", "JobCompType=jobcomp/none",
            "SelectType=select/cons_tres", "SelectTypeParameters=CR_CPU_Memory", "GresTypes=gpu",
            "SchedulerType=sched/backfill", "DefMemPerCPU=500", "ReturnToService=2", "KillWait=2", "MinJobAge=300",
            "SlurmctldTimeout=30", "SlurmdTimeout=30", "InactiveLimit=0", "Waittime=0",
            "MessageTimeout=10", "SlurmdParameters=config_overrides",
            f"StateSaveLocation={r}/state", f"SlurmdSpoolDir={r}/spool",
            f"SlurmctldPidFile={r}/slurmctld.pid", f"SlurmdPidFile={r}/slurmd.pid",
            f"SlurmctldLogFile={r}/log/slurmctld.log", f"SlurmdLogFile={r}/log/slurmd.log",
            "SlurmctldDebug=info", "SlurmdDebug=info",
            f"NodeName={self.node} NodeAddr=127.0.0.1 CPUs={self.cpus} RealMemory={self.memory_mb} "
            f"Gres=gpu:{self.gpus} State=UNKNOWN",
            "PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP",
        ]
        with open(self.conf, "w") as out:
            out.write("\n".join(lines) + "\n")
        with open(os.path.join(self.root, "gres.conf"), "w") as out:
            for index, path in enumerate(devices):
                out.write(f"NodeName={self.node} Name=gpu File={path}\n")

    def start(self, wait: float = 60.0) -> OneNodeSlurm:
        why = missing()
        if why:
            raise RuntimeError(why)
        self._write()
        env = {**os.environ, **self.env}
        if subprocess.run(["munge", "-n"], capture_output=True, env=env).returncode != 0:
            os.makedirs("/run/munge", exist_ok=True)
            subprocess.run(["chown", "munge:munge", "/run/munge"], check=False)
            subprocess.run(["runuser", "-u", "munge", "--", _which("munged")], check=True)
        for daemon in ("slurmctld", "slurmd"):
            log = open(os.path.join(self.root, "log", f"{daemon}.out"), "ab")
            self._procs.append(subprocess.Popen([_which(daemon), "-D", "-f", self.conf], env=env, stdout=log,
                                                stderr=subprocess.STDOUT, start_new_session=True))
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            done = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True, env=env)
            if done.returncode == 0 and done.stdout.strip() in ("idle", "mix", "alloc"):
                return self
            if any(proc.poll() is not None for proc in self._procs):
                break
            time.sleep(0.5)
        logs = self.logs()
        self.stop()
        raise RuntimeError(f"the one-node Slurm did not come up in {wait:g} s:\n{logs}")

    def logs(self) -> str:
        text = []
        for name in ("slurmctld.log", "slurmd.log", "slurmctld.out", "slurmd.out"):
            path = os.path.join(self.root, "log", name)
            if os.path.exists(path):
                with open(path, errors="replace") as handle:
                    text.append(f"--- {name}\n" + "".join(handle.readlines()[-30:]))
        return "\n".join(text)

    def run(self, *argv: str) -> str:
        """A Slurm command against this cluster; its stdout."""
        return subprocess.run(list(argv), capture_output=True, text=True, check=True,
                              env={**os.environ, **self.env}).stdout

    def set_node(self, state: str, reason: str = "mlpipeline test") -> None:
        """``scontrol update State=...``; RESUME of a node that is up already (ReturnToService=2 brings a
        DOWN node back as soon as its slurmd registers) does nothing."""
        args = ["scontrol", "update", f"NodeName={self.node}", f"State={state}"]
        if state.upper() in ("DOWN", "DRAIN"):
            args.append(f"Reason={reason}")
        if state.upper() == "RESUME" and not re.match(r"(down|drain|fail)", self.run("sinfo", "-h", "-o", "%t").strip()):
            return
        self.run(*args)

    def stop(self) -> None:
        env = {**os.environ, **self.env}
        subprocess.run(["scancel", "--full", "-u", "root"], capture_output=True, env=env)
        procs = self._procs or [None]
        for proc in self._procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for name in ("slurmctld.pid", "slurmd.pid"):  # a cluster started by another process (the CLI below)
            path = os.path.join(self.root, name)
            try:
                with open(path) as handle:
                    os.kill(int(handle.read().strip()), signal.SIGTERM)
            except (OSError, ValueError):
                pass
        for proc in self._procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        del procs
        self._procs = []


def main(argv: List[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("start", "stop"):
        print("usage: python tests/slurm/cluster.py start|stop DIR", file=sys.stderr)
        return 2
    cluster = OneNodeSlurm(argv[1])
    if argv[0] == "start":
        cluster.start()
        for proc in cluster._procs:  # they outlive this command
            proc.returncode = 0
        print(f"export SLURM_CONF={cluster.conf}")
    else:
        cluster.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
