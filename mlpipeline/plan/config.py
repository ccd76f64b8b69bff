"""Reading mlp.config, models.config and models_test.config.

A small INI reader of our own rather than configparser, so every problem can
name its line: ``models.config:7: ...``. Keys are case-insensitive, values run
to an inline ``;``/``#`` comment, and a key may stand alone (a script name).
"""
from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from typing import Any, Dict, FrozenSet, List, Optional, Tuple

from ..core.errors import ConfigError, UsageError, display
from ..core.retry import parse_kinds
from ..core.layout import (EXPERIMENT_CONFIGS, EXPERIMENTS, PROJECT_FILE, RUN_CONFIG, TEST_CONFIG, NotifySettings,
                           Project, SlurmSettings)
from ..core.vocabulary import NotifyEvent

__all__ = ["Project", "QueueConfig", "find_project", "read_queue_config", "resolve_scripts"]

MAX_CONFIG_BYTES = 1 << 20

BACKENDS = ("local", "ray", "slurm")  # where execution-mode versions run

@dataclass
class Entry:
    key: str
    value: Optional[str]
    line: int


@dataclass
class IniFile:
    path: str
    sections: Dict[str, List[Entry]] = field(default_factory=dict)
    section_lines: Dict[str, int] = field(default_factory=dict)
    section_names: Dict[str, str] = field(default_factory=dict)  # upper-cased → as written

    def where(self, line: int) -> str:
        return f"{_display(self.path)}:{line}"


def _display(path: str) -> str:
    return display(path)


def read_ini(path: str) -> IniFile:
    """Parse ``path``; raise ConfigError naming file and line on anything malformed."""
    name = _display(path)
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_CONFIG_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError(f"{name}: file not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{name}: is a folder, not a config file") from None
    except OSError as exc:
        raise ConfigError(f"{name}: cannot read: {exc.strerror}") from None
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{name}: larger than {MAX_CONFIG_BYTES // 1024} KiB; a config is a short text file")
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        where = data[:exc.start].count(b"\n") + 1
        raise ConfigError(f"{name}:{where}: not UTF-8 text (byte 0x{data[exc.start]:02x}); save the file as UTF-8") from None
    ini = IniFile(path)
    section: Optional[str] = None
    for number, raw in enumerate(text.splitlines(), start=1):
        if "\x00" in raw:
            raise ConfigError(f"{name}:{number}: contains a NUL byte; is this a binary file?")
        line = raw.strip()
        if not line or line[0] in ";#":
            continue
        if line.startswith("["):
            if "]" in line and line[line.index("]") + 1:].strip()[:1] in (";", "#"):
                line = line[:line.index("]") + 1]  # "[MLP] ; comment", as configparser allows
            if not line.endswith("]") or len(line) < 3:
                raise ConfigError(f"{name}:{number}: malformed section header {line[:60]!r}; write it as [SECTION]")
            section = line[1:-1].strip().upper()
            if section in ini.sections:
                raise ConfigError(f"{name}:{number}: section [{section}] appears twice "
                                  f"(first at line {ini.section_lines[section]}); merge them")
            ini.sections[section] = []
            ini.section_lines[section] = number
            ini.section_names[section] = line[1:-1].strip()
            continue
        if section is None:
            raise ConfigError(f"{name}:{number}: {line[:60]!r} is outside any section; "
                              f"put it under a [SECTION] header")
        if raw[:1].isspace() and ini.sections[section]:
            # A continuation line belongs to the previous value, as in configparser.
            previous = ini.sections[section][-1]
            if section.endswith(".PY") and VERSION_LINE.match(line):  # two versions would become one
                raise ConfigError(f"{name}:{number}: {line[:60]!r} is indented, so it reads as more arguments of "
                                  f"version {previous.key!r} above; start it at the beginning of the line to make "
                                  f"it a version of its own")
            previous.value = f"{previous.value or ''}\n{_strip_comment(line)}".strip()
            continue
        line = _strip_comment(line)  # "a.py  # note" lists a.py, as "a.py = v1  # note" lists v1
        key, sep, value = line.partition("=")
        if not sep and ":" in line:
            key, sep, value = line.partition(":")
        key = key.strip()
        if not key:
            raise ConfigError(f"{name}:{number}: a value with no key; write key = value")
        ini.sections[section].append(Entry(key, _strip_comment(value) if sep else None, number))
    return ini


VERSION_LINE = re.compile(r"[A-Za-z_][\w.+-]*\s*=")  # "large = --lr 0.01": a version's argument line


def _strip_comment(value: str) -> str:
    """The value without its comment: from a ``;`` or ``#`` after a space or tab, outside quotes (an argument
    line's ``--msg "run #1"`` keeps its ``#``)."""
    quote = ""
    for index, char in enumerate(value):
        if quote:
            if char == quote:
                quote = ""
        elif char in "'\"" and (index == 0 or value[index - 1] in " \t="):
            quote = char
        elif char in ";#" and index > 0 and value[index - 1] in " \t":
            return value[:index].strip()
    return value.strip()


def parse_bool(ini: IniFile, entry: Entry) -> bool:
    value = (entry.value or "").strip().lower()
    if value in ("1", "yes", "true", "on"):
        return True
    if value in ("0", "no", "false", "off"):
        return False
    raise ConfigError(f"{ini.where(entry.line)}: {entry.key} = {entry.value!r} is not a boolean; use True or False")


@dataclass
class ScriptEntry:
    """One line of a whitelist or blacklist: a script and optionally some of its versions."""

    name: str                 # as written, normalised to end in .py
    versions: Optional[List[str]]
    line: int


@dataclass
class QueueConfig:
    """What models.config (or models_test.config) asks for."""

    path: str
    use_blacklist: bool = False
    whitelist: List[ScriptEntry] = field(default_factory=list)
    blacklist: List[ScriptEntry] = field(default_factory=list)
    timeout: Optional[float] = None
    retries: Optional[int] = None            # [MLP] retries: runs again a version whose run ended as retry_on says
    retry_on: Optional[FrozenSet[str]] = None
    stall_timeout: Optional[float] = None    # [MLP] stall_timeout: seconds of silence that end a version
    stop_on_nan: Optional[bool] = None       # [MLP] stop_on_nan: a NaN or infinite point ends its version
    keep: Optional[Tuple[int, str]] = None   # [MLP] keep = 3 by test/accuracy: gc keeps the best 3 model dirs a script
    warnings: List[str] = field(default_factory=list)
    # a plain script's versions: [train.py] → its entries (version = argument line), and its header's line
    arguments: Dict[str, List[Entry]] = field(default_factory=dict)
    arguments_at: Dict[str, int] = field(default_factory=dict)


def _script_entries(ini: IniFile, section: str, warnings: List[str]) -> List[ScriptEntry]:
    entries: List[ScriptEntry] = []
    seen: Dict[str, int] = {}
    for entry in ini.sections.get(section, []):
        name = entry.key if entry.key.endswith(".py") else entry.key + ".py"
        if name in seen:
            warnings.append(f"{ini.where(entry.line)}: {name} is listed again (first at line {seen[name]}); "
                            f"this line is ignored")
            continue
        seen[name] = entry.line
        versions = None
        if entry.value:
            versions = [v.strip() for v in entry.value.replace("\n", ",").split(",") if v.strip()]
        entries.append(ScriptEntry(name, versions or None, entry.line))
    return entries


POST8 = "the original's 1.1a3.post8 ... 2.0a7.post1"  # the generations that spelled models "experiments"


def list_sections(path: str) -> Tuple[str, str]:
    """The whitelist and blacklist sections of a queue config: experiments.config and
    experiments_test.config (1.1a3.post8 ... post12) keep their ``*_EXPERIMENTS`` spelling."""
    if os.path.basename(path) in EXPERIMENT_CONFIGS.values():
        return "WHITELISTED_EXPERIMENTS", "BLACKLISTED_EXPERIMENTS"
    return "WHITELISTED_MODELS", "BLACKLISTED_MODELS"


def read_queue_config(path: str) -> QueueConfig:
    """Parse a models.config-style file. Unknown sections and keys are warnings."""
    ini = read_ini(path)
    config = QueueConfig(path)
    white, black = list_sections(path)
    known = {"MLP", white, black}
    for section, line in ini.section_lines.items():
        if section.endswith(".PY"):  # a plain script's argument lines, one version each
            name = ini.section_names[section]
            config.arguments[name] = ini.sections[section]
            config.arguments_at[name] = line
            seen: Dict[str, int] = {}
            for entry in ini.sections[section]:
                if entry.key in seen:
                    raise ConfigError(f"{ini.where(entry.line)}: version {entry.key!r} of {name} is given again "
                                      f"(first at line {seen[entry.key]}); give each argument line its own name")
                seen[entry.key] = entry.line
        elif section not in known and section.endswith(("LISTED_MODELS", "LISTED_EXPERIMENTS")):
            config.warnings.append(f"{ini.where(line)}: [{ini.section_names[section]}] is ignored: "
                                   f"{os.path.basename(path)} lists scripts under [{white}] and [{black}] "
                                   f"(the *_EXPERIMENTS sections belong in experiments.config, of {POST8}); "
                                   f"rename the section")
        elif section not in known:
            config.warnings.append(f"{ini.where(line)}: unknown section [{section}] is ignored "
                                   f"(known: {', '.join(sorted(known))}, and [script.py] for a plain script's "
                                   f"argument lines)")
    for entry in ini.sections.get("MLP", []):
        key = entry.key.lower()
        if key == "use_blacklist":
            config.use_blacklist = parse_bool(ini, entry)
        elif key in ("timeout", "stall_timeout"):
            try:
                seconds = float(entry.value or "")
                if not math.isfinite(seconds) or seconds <= 0:
                    raise ValueError
            except ValueError:
                raise ConfigError(f"{ini.where(entry.line)}: {key} = {entry.value!r} is not a positive "
                                  f"number of seconds") from None
            setattr(config, key, seconds)
        elif key == "retries":
            if not (entry.value or "").strip().isdigit():
                raise ConfigError(f"{ini.where(entry.line)}: retries = {entry.value!r} is not a whole number "
                                  f"(0 or more)")
            config.retries = int((entry.value or "").strip())
        elif key == "retry_on":
            try:
                config.retry_on = parse_kinds(entry.value or "", f"{ini.where(entry.line)}: retry_on =")
            except ValueError as exc:
                raise ConfigError(str(exc)) from None
        elif key == "stop_on_nan":
            config.stop_on_nan = parse_bool(ini, entry)
        elif key == "keep":
            config.keep = parse_keep(ini.where(entry.line), entry.value)
        else:
            config.warnings.append(f"{ini.where(entry.line)}: unknown key {entry.key!r} in [MLP] is ignored "
                                   f"(known: use_blacklist, timeout, retries, retry_on, stall_timeout, "
                                   f"stop_on_nan, keep)")
    config.whitelist = _script_entries(ini, white, config.warnings)
    config.blacklist = _script_entries(ini, black, config.warnings)
    return config


KEEP = re.compile(r"\s*(\d+)\s+by\s+(\S+)\s*", re.IGNORECASE)


def parse_keep(where: str, value: Optional[str]) -> Tuple[int, str]:
    """``keep = 3 by test/accuracy``: (3, "test/accuracy"); a bare name is a test result."""
    match = KEEP.fullmatch(value or "")
    if match is None or int(match.group(1)) < 1:
        raise ConfigError(f"{where}: keep = {value!r} is not 'N by METRIC' with N of 1 or more; e.g. keep = 3 by "
                          f"test/accuracy keeps the model dirs of each script's 3 best runs")
    metric = match.group(2)
    return int(match.group(1)), metric if "/" in metric else f"test/{metric}"


def find_project(directory: Optional[str] = None) -> Project:
    """Open the project whose mlp.config is in ``directory`` (default: the current
    one) or the nearest folder above it, the way git finds ``.git``: run from
    ``models/`` and the project is found."""
    start = os.path.abspath(directory or os.getcwd())
    if not os.path.isdir(start):
        raise UsageError(f"{start}: no such folder")
    root = start
    while not os.path.isfile(os.path.join(root, PROJECT_FILE)):
        parent = os.path.dirname(root)
        if parent == root:
            raise UsageError(f"no {PROJECT_FILE} in {start} or any folder above it; run 'mlpipeline init' to "
                             f"create a project here, or pass -C DIR")
        root = parent
    path = os.path.join(root, PROJECT_FILE)
    ini = read_ini(path)
    warnings: List[str] = []
    models_dir: Optional[str] = None
    dirs: Dict[str, Entry] = {}  # models_dir, experiments_dir (1.1a3.post8 ... post12) as written
    settings: Dict[str, Optional[str]] = {"backend": None, "ray_address": None}
    if "MLP" not in ini.sections:
        raise ConfigError(f"{_display(path)}: no [MLP] section; add '[MLP]' and 'models_dir = models'")
    for section, line in ini.section_lines.items():
        if section not in ("MLP", "NOTIFY", "SLURM", "MLFLOW"):
            warnings.append(f"{ini.where(line)}: unknown section [{section}] is ignored (known: MLP, NOTIFY, SLURM, "
                            f"MLFLOW)")
    for entry in ini.sections["MLP"]:
        if entry.key.lower() in ("models_dir", "experiments_dir"):
            dirs[entry.key.lower()] = entry
        elif entry.key.lower() == "backend":
            if (entry.value or "").strip().lower() not in BACKENDS:
                raise ConfigError(f"{ini.where(entry.line)}: backend = {entry.value!r}; use one of "
                                  f"{', '.join(BACKENDS)}")
            settings["backend"] = (entry.value or "").strip().lower()
        elif entry.key.lower() == "ray_address":
            settings["ray_address"] = (entry.value or "").strip() or None
        else:
            warnings.append(f"{ini.where(entry.line)}: unknown key {entry.key!r} in [MLP] is ignored "
                            f"(known: models_dir, experiments_dir, backend, ray_address)")
    spelling = _spelling(root, dirs)
    key = "experiments_dir" if spelling == EXPERIMENTS else "models_dir"
    if spelling == EXPERIMENTS and "models_dir" in dirs:
        warnings.append(f"{ini.where(dirs['models_dir'].line)}: models_dir is ignored: this project's "
                        f"experiments.config is of {POST8}, which reads experiments_dir "
                        f"(default: experiments)")
    if key in dirs:
        entry = dirs[key]
        if not entry.value:
            raise ConfigError(f"{ini.where(entry.line)}: {key} is empty; give the folder of your "
                              f"scripts, e.g. {key} = {key[:-4]}")
        models_dir = os.path.normpath(os.path.join(root, os.path.expanduser(entry.value)))
        if not os.path.isdir(models_dir):
            raise ConfigError(f"{ini.where(entry.line)}: {key} {entry.value!r} is not a folder "
                              f"({models_dir}); create it or fix the path")
    elif spelling == EXPERIMENTS:
        models_dir = os.path.join(root, EXPERIMENTS)  # the original's default experiments_dir
        if not os.path.isdir(models_dir):
            raise ConfigError(f"{_display(path)}:{ini.section_lines['MLP']}: [MLP] has no experiments_dir and "
                              f"there is no experiments/ folder ({POST8} generation, whose configs this project "
                              f"has); add 'experiments_dir = <the folder of your experiment scripts>'")
    if models_dir is None:
        raise ConfigError(f"{_display(path)}:{ini.section_lines['MLP']}: [MLP] has no models_dir; "
                          f"add 'models_dir = models'")
    notify = _notify_settings(ini, warnings) if "NOTIFY" in ini.sections else None
    slurm = _slurm_settings(ini, warnings) if "SLURM" in ini.sections else SlurmSettings()
    mlflow_uri = _mlflow_uri(ini, root, warnings) if "MLFLOW" in ini.sections else None
    return Project(root, models_dir, warnings, **settings, notify=notify, spelling=spelling, slurm=slurm,
                   mlflow_uri=mlflow_uri)


def _mlflow_uri(ini: IniFile, root: str, warnings: List[str]) -> Optional[str]:
    """``[MLFLOW] tracking_uri`` (the original's 2.0a1 ... 2.0a7.post1): the MLflow store execution-mode runs
    are also logged to. Unknown keys are warnings."""
    uri: Optional[str] = None
    for entry in ini.sections["MLFLOW"]:
        if entry.key.lower() == "tracking_uri":
            uri = tracking_uri(entry.value or "", root)
            if uri is None:
                warnings.append(f"{ini.where(entry.line)}: tracking_uri is empty, so runs are not logged to MLflow; "
                                f"give a folder (e.g. tracking_uri = mlruns) or a server (http://host:5000)")
        else:
            warnings.append(f"{ini.where(entry.line)}: unknown key {entry.key!r} in [MLFLOW] is ignored "
                            f"(known: tracking_uri)")
    return uri


def tracking_uri(value: str, base: str) -> Optional[str]:
    """An MLflow tracking URI as mlp.config or the command line gives it, a local store made absolute against
    ``base``: a path or a relative ``file:`` URI becomes ``file:///abs/path`` and a relative ``sqlite:///x.db``
    ``sqlite:////abs/x.db``; a server's (http, databricks, ...) is kept. None when empty."""
    from urllib.parse import urlparse

    value = value.strip()
    scheme = value.partition(":")[0].lower() if re.match(r"[A-Za-z][A-Za-z0-9+.-]+:", value) else ""
    if not value or value in ("databricks", "databricks-uc"):  # (MLflow's names for a Databricks workspace)
        return value or None
    if scheme in ("", "file"):  # a path (C:\\x too: a one-letter scheme is a drive)
        parsed = urlparse(value) if scheme else None
        path = value if parsed is None else parsed.path if parsed.netloc in ("", "localhost") \
            else parsed.netloc + parsed.path  # file://mlruns: the folder mlruns, as meant
        return "file://" + os.path.normpath(os.path.join(base, os.path.expanduser(path)))
    if scheme == "sqlite" and value[7:].startswith("///") and not value[7:].startswith("////"):
        return "sqlite:///" + os.path.normpath(os.path.join(base, value[10:]))
    return value


SLURM_KEYS = ("partition", "account", "qos", "time", "constraint", "extra", "poll")


def _slurm_settings(ini: Any, warnings: List[str]) -> SlurmSettings:
    """``[SLURM]``: partition, account, qos, time, constraint, extra (more sbatch options), poll."""
    import shlex

    values: Dict[str, Any] = {}
    for entry in ini.sections["SLURM"]:
        key, value = entry.key.lower(), (entry.value or "").strip()
        if key not in SLURM_KEYS:
            warnings.append(f"{ini.where(entry.line)}: unknown key {entry.key!r} in [SLURM] is ignored "
                            f"(known: {', '.join(SLURM_KEYS)})")
        elif key == "extra":
            try:
                values["extra"] = tuple(shlex.split(value))
            except ValueError as exc:
                raise ConfigError(f"{ini.where(entry.line)}: extra = {value!r} does not split as shell words "
                                  f"({exc}); quote as in a shell, e.g. extra = --mail-type=END --exclusive") from None
            if any(word.split("=")[0] == "--requeue" for word in values["extra"]):
                raise ConfigError(f"{ini.where(entry.line)}: extra = {value!r}: --requeue is not supported (a requeued "
                                  f"job would record its points twice); a version whose node was lost runs again "
                                  f"under --retries, in the same model dir")
            if values["extra"] and not values["extra"][0].startswith("-"):
                raise ConfigError(f"{ini.where(entry.line)}: extra = {value!r}: give sbatch options "
                                  f"(--name=value), not {values['extra'][0]!r}")
        elif key == "poll":
            try:
                values["poll"] = float(value)
            except ValueError:
                values["poll"] = -1.0
            if not 0.2 <= values["poll"] <= 600:
                raise ConfigError(f"{ini.where(entry.line)}: poll = {value!r}; give the seconds between two "
                                  f"looks at Slurm, 0.2 to 600 (default 2)")
        elif value:
            if any(c.isspace() for c in value):
                raise ConfigError(f"{ini.where(entry.line)}: {key} = {value!r} holds a space; give one value "
                                  f"(more sbatch options go in extra = ...)")
            values[key] = value
    return SlurmSettings(**values)


def _spelling(root: str, dirs: Dict[str, Entry]) -> str:
    """"experiments" for a project of 1.1a3.post8 ... post12: mlp.config names experiments_dir, or
    only experiments.config / experiments_test.config are there (the original read experiments_dir,
    default experiments, and ignored models_dir). Else "models"."""
    if "experiments_dir" in dirs:
        return EXPERIMENTS
    theirs = any(os.path.isfile(os.path.join(root, name)) for name in EXPERIMENT_CONFIGS.values())
    ours = any(os.path.isfile(os.path.join(root, name)) for name in (RUN_CONFIG, TEST_CONFIG))
    return EXPERIMENTS if theirs and not ours else "models"


DEFAULT_EVENTS = (NotifyEvent.FAILED, NotifyEvent.OOM, NotifyEvent.STALLED, NotifyEvent.BATCH_DONE,
                  NotifyEvent.RUNNER_DIED)
_URL_START = re.compile(r",\s*(?=[A-Za-z][A-Za-z0-9+.-]*://)")


def split_urls(text: str) -> List[str]:
    """Apprise URLs as ``[NOTIFY] urls`` lists them: separated by whitespace, newlines or commas (a
    comma inside a URL, as in ``mailto://...?to=a@x.org,b@x.org``, stays: only one before a scheme splits)."""
    return [url.strip(",") for part in text.split() for url in _URL_START.split(part) if url.strip(",")]


def _notify_settings(ini: IniFile, warnings: List[str]) -> NotifySettings:
    """``[NOTIFY]``: urls, on, dashboard_url. Unknown keys and events are warnings (a typo must not stop
    a batch); a file that others may read is one too, since the URLs hold secrets."""
    urls: List[str] = []
    on = set(event.value for event in DEFAULT_EVENTS)
    dashboard: Optional[str] = None
    known = {event.value for event in NotifyEvent}
    for entry in ini.sections["NOTIFY"]:
        key, value = entry.key.lower(), (entry.value or "").strip()
        if key == "urls":
            urls += split_urls(value)
        elif key == "on":
            asked = {word.strip().lower() for word in value.replace(",", " ").split()}
            for word in sorted(asked - known):
                warnings.append(f"{ini.where(entry.line)}: unknown event {word!r} in [NOTIFY] on is ignored "
                                f"(known: {', '.join(event.value for event in NotifyEvent)})")
            on = asked & known
        elif key == "dashboard_url":
            if value.startswith(("http://", "https://")):
                dashboard = value.rstrip("/")
            elif value:
                warnings.append(f"{ini.where(entry.line)}: dashboard_url = {value!r} is ignored; give the "
                                f"dashboard's address, e.g. http://gpu-box:8765")
        else:
            warnings.append(f"{ini.where(entry.line)}: unknown key {entry.key!r} in [NOTIFY] is ignored "
                            f"(known: urls, on, dashboard_url)")
    try:
        shared = os.stat(ini.path).st_mode & 0o044
    except OSError:
        shared = 0
    if shared and urls:
        warnings.append(f"{_display(ini.path)}: its [NOTIFY] urls hold secrets (tokens, passwords) and others may "
                        f"read the file; chmod 600 {PROJECT_FILE}")
    return NotifySettings(tuple(urls), frozenset(on), dashboard)


@dataclass
class Selection:
    """A script the queue selects, with the versions the config keeps or drops."""

    path: str
    only: Optional[List[str]] = None      # whitelisted versions (None: all)
    exclude: List[str] = field(default_factory=list)  # blacklisted versions
    line: int = 0                         # the config line that selected it (0: blacklist mode)


def resolve_scripts(project: Project, config: QueueConfig) -> Tuple[List[Selection], List[Tuple[str, str, bool]]]:
    """The scripts a queue config selects, in run order, and the ones it leaves
    out as ``(path, reason, warn)``; ``warn`` marks a problem to tell the user
    about (a whitelisted script that does not exist), not a choice.
    """
    left_out: List[Tuple[str, str, bool]] = []
    where = _display(config.path)
    available = sorted(f for f in os.listdir(project.models_dir)
                       if f.endswith(".py") and os.path.isfile(os.path.join(project.models_dir, f)))
    if config.use_blacklist:
        blocked = {e.name: e for e in config.blacklist}
        selected = []
        for name in available:
            entry = blocked.get(name)
            path = os.path.join(project.models_dir, name)
            if entry is None:
                selected.append(Selection(path))
            elif entry.versions:  # only some of its versions are blacklisted
                selected.append(Selection(path, exclude=entry.versions, line=entry.line))
            else:
                left_out.append((path, f"blacklisted in {where}:{entry.line}", False))
        return selected, left_out
    selected = []
    listed = set()
    for entry in config.whitelist:
        path = os.path.join(project.models_dir, entry.name)
        listed.add(entry.name)
        if not os.path.isfile(path):
            found = ", ".join(available) or "no scripts"
            left_out.append((path, f"{where}:{entry.line}: {entry.name!r} is not in "
                                   f"{os.path.relpath(project.models_dir, project.root)}/ (found: {found}); skipped",
                             True))
            continue
        selected.append(Selection(path, only=entry.versions, line=entry.line))
    left_out += [(os.path.join(project.models_dir, name), f"not whitelisted in {where}", False)
                 for name in available if name not in listed]
    return selected, left_out
