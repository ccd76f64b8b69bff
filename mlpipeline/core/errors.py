"""One exception root for everything mlpipeline raises on purpose.

Messages name the file or object, the problem and the fix, in one line:
``models.config:7: 'resnt.py' is not in models/ (found: resnet.py, mlp.py)``.
The CLI turns these into exit codes in one place (``cli.main``).
"""


class MLPipelineError(Exception):
    """Root of all mlpipeline errors. ``exit_code`` is what the CLI exits with."""

    exit_code = 1


class UsageError(MLPipelineError):
    """Bad command-line use or a missing project file."""

    exit_code = 2


class ConfigError(MLPipelineError):
    """A config file that cannot be used as written."""

    exit_code = 2


class ScriptError(MLPipelineError):
    """A model script that cannot be loaded or does not define a usable MODEL.

    ``details`` optionally carries the user's own traceback (never mlpipeline's).
    ``transient``: the failure depends on the machine, not on the script and
    the files it read (a module not installed yet, a data file not there yet),
    so it is not remembered across sessions.
    """

    def __init__(self, message: str, details: str = "", transient: bool = False):
        super().__init__(message)
        self.details = details
        self.transient = transient


class VersionError(MLPipelineError):
    """A bad call on a ``Versions`` object (duplicate or unknown name, bad parameter)."""


class VersionValueError(VersionError, ValueError):
    """A bad call on Versions (a ValueError, as the original raised for its bad calls)."""


class StorageError(MLPipelineError):
    """A write the runner must make failed (disk full, read-only folder): it stops."""


class LedgerError(MLPipelineError):
    """The run ledger cannot be opened or written."""

    exit_code = 2


def display(path: str) -> str:
    """A path as messages show it: relative to the current folder when it is
    inside it, else absolute (never ``../../..``, nor ``.`` for the folder itself)."""
    import os

    rel = os.path.relpath(path)
    return rel if not rel.startswith("..") and rel != "." else os.path.abspath(path)


def unwritable(*paths: str) -> str:
    """The first of ``paths`` (files or folders that exist) this process may not
    write, as '<path> (owner uid N, mode 0o644)'; '' when all are writable."""
    import os

    for path in paths:
        if os.path.exists(path) and not os.access(path, os.W_OK):
            st = os.stat(path)
            return f"{display(path)} (owner uid {st.st_uid}, mode {oct(st.st_mode & 0o777)})"
    return ""


def write_failed(path: str, exc: OSError, what: str, keeps: str = "what was recorded is kept") -> "StorageError":
    """The one wording of a failed write: a full disk says to free space; a
    permission problem names the exact file and its owner; each says what is kept."""
    import errno
    import os

    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return StorageError(f"{display(path)}: cannot {what}: no space left on the device; free some space and "
                            f"run again ({keeps})")
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        culprit = unwritable(path, os.path.dirname(os.path.abspath(path)))
        where = "the file system is read-only" if exc.errno == errno.EROFS else \
            f"not writable by you (uid {os.getuid()}): {culprit or display(path)}"
        return StorageError(f"{display(path)}: cannot {what}: {where}; fix the permissions (or run as its owner) "
                            f"and run again ({keeps})")
    return StorageError(f"{display(path)}: cannot {what} ({exc.strerror}); {keeps}")
