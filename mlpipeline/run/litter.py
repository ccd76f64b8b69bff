"""Noticing a version that writes next to the configs and scripts instead of
inside the model dir it is given (a warning, never a failure)."""
from __future__ import annotations

import os
from typing import Dict, List, Set, Tuple


def _own_output_files() -> Set[Tuple[int, int]]:
    """(device, inode) of the files this process's stdout/stderr write to
    (``mlpipeline -r > train.log``): they change while a version runs, but
    the runner writes them, not the version."""
    own = set()
    for fd in (1, 2):
        try:
            st = os.fstat(fd)
        except OSError:
            continue
        own.add((st.st_dev, st.st_ino))
    return own


EXPECTED = (".config", ".py", ".pyc")  # configs and scripts: editing them while versions run is expected


def snapshot(folders: List[str]) -> Dict[str, int]:
    """mtimes of the files directly in ``folders`` (what a version may litter), configs and scripts aside."""
    state = {}
    own = _own_output_files()
    for folder in folders:
        try:
            with os.scandir(folder) as entries:
                for entry in entries:
                    if entry.name.endswith(EXPECTED):
                        continue
                    if entry.is_file(follow_symlinks=False):
                        st = entry.stat()
                        if (st.st_dev, st.st_ino) not in own:
                            state[entry.path] = st.st_mtime_ns
        except OSError:
            pass
    return state


def changed_since(before: Dict[str, int], folders: List[str]) -> List[str]:
    """Files in ``folders`` written since ``before``."""
    after = snapshot(folders)
    return sorted(path for path, mtime in after.items() if before.get(path) != mtime)
