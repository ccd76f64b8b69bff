"""Editing a queue config (models.config) for the dashboard: whitelist,
blacklist, unlist, reorder and use_blacklist.

Edits are line surgery, not a re-render: every comment, blank line and line
ending the user wrote stays as it was; only the lines an edit is about change.
The runner re-reads this file between versions, so a save is atomic (a temp
file in the same folder, fsync, ``os.replace``) and must parse with the runner's
own reader before it replaces anything. Edits made here hold an flock on the
folder, so two at once both land; an editor saving at that moment wins or loses whole.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import stat
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from .config import QueueConfig, list_sections, read_queue_config
from ..core.errors import UsageError, display, write_failed

WHITE, BLACK = "WHITELISTED_MODELS", "BLACKLISTED_MODELS"
NEW_FILE = """\
# The queue. use_blacklist = False: run the [WHITELISTED_MODELS], in order.
# use_blacklist = True: run every *.py in models_dir except the [BLACKLISTED_MODELS].
[MLP]
use_blacklist = False

[WHITELISTED_MODELS]

[BLACKLISTED_MODELS]
"""
_COMMENT_MARKERS = (" ;", " #", "\t;", "\t#")  # where read_ini ends a value


@dataclass
class _Entry:
    section: str
    key: str    # as written
    start: int  # index of its line
    stop: int   # one past its last continuation line

    @property
    def name(self) -> str:
        return _py(self.key)


def _py(name: str) -> str:
    return name if name.endswith(".py") else name + ".py"


def _body(line: str) -> str:
    """``line`` without its line ending."""
    return line.splitlines()[0] if line else ""


def _is_note(line: str) -> bool:
    """A blank or comment line: read_ini skips it."""
    return not line.strip() or line.strip()[0] in ";#"


def _split(text: str) -> Tuple[str, str, str]:
    return text.partition("=" if "=" in text or ":" not in text else ":")


def _value_end(value: str) -> int:
    return min([value.find(m) for m in _COMMENT_MARKERS if m in value] or [len(value)])


def _scan(lines: List[str]) -> Tuple[Dict[str, int], List[_Entry]]:
    """Section headers and entries (with their continuation lines), as read_ini sees them."""
    headers: Dict[str, int] = {}
    entries: List[_Entry] = []
    section = ""
    for index, raw in enumerate(lines):
        line = raw.strip()
        if _is_note(line):
            continue
        if line.startswith("["):
            if "]" in line and line[line.index("]") + 1:].strip()[:1] in (";", "#"):
                line = line[:line.index("]") + 1]
            section = line[1:-1].strip().upper()
            headers[section] = index
        elif raw[:1].isspace() and entries and entries[-1].section == section:
            entries[-1].stop = index + 1
        else:
            entries.append(_Entry(section, _split(line)[0].strip(), index, index + 1))
    return headers, entries


def _listed(lines: List[str], section: str) -> List[_Entry]:
    return [e for e in _scan(lines)[1] if e.section == section]


def _remove(lines: List[str], section: str, name: str) -> bool:
    """Drop every entry of ``name`` in ``section`` (a duplicate too: it would take effect)."""
    found = [e for e in _listed(lines, section) if e.name == name]
    for entry in reversed(found):
        del lines[entry.start:entry.stop]
    return bool(found)


def _entry_lines(key: str, versions: Optional[List[str]], nl: str, old: str = "") -> List[str]:
    """``key = v1, v2`` (or ``key``), keeping the indent and inline comment of ``old``, the line it replaces."""
    old = _body(old)
    indent, value = old[:len(old) - len(old.lstrip())], _split(old)[2]
    comment = value[_value_end(value):].strip()
    text = indent + key + (" = " + ", ".join(versions) if versions else "")
    if comment and not versions:  # after a bare name, read_ini would take a comment as part of the name
        return [indent + comment + nl, text + nl]
    return [text + ("  " + comment if comment else "") + nl]


def _put(lines: List[str], nl: str, section: str, name: str, versions: Optional[List[str]]) -> Optional[str]:
    """List ``name`` in ``section``: in place if it is there (returns None), else
    at the section's end (returns the name before it, '' if none)."""
    for entry in _listed(lines, section):
        if entry.name == name:
            notes = [line for line in lines[entry.start + 1:entry.stop] if _is_note(line)]
            lines[entry.start:entry.stop] = _entry_lines(entry.key, versions, nl, lines[entry.start]) + notes
            return None
    return _append(lines, nl, section, _entry_lines(name, versions, nl))


def _append(lines: List[str], nl: str, section: str, new: List[str]) -> str:
    """Add ``new`` after the last entry of ``section`` (a section added at the end
    if missing); returns the name of the entry before it, '' if none."""
    headers, entries = _scan(lines)
    if section not in headers:
        lines.extend(([nl] if lines and lines[-1].strip() else []) + [f"[{section}]{nl}"] + new)
        return ""
    mine = [e for e in entries if e.section == section]
    at = mine[-1].stop if mine else headers[section] + 1
    while not mine and at < len(lines) and lines[at].strip() and _is_note(lines[at]):
        at += 1  # below the comments under the header of an empty section
    lines[at:at] = new
    return mine[-1].name if mine else ""


def _plain(path: str, text: str, what: str, banned: str) -> str:
    """``text`` if it can stand in the file as one name, else a UsageError."""
    if not text or text != text.strip() or not text.isprintable() or any(b in text for b in banned.split()):
        raise UsageError(f"{display(path)}: {text!r} is not {what}; give a plain name (no spaces around it, "
                         f"no {' '.join(banned.split())})")
    return text


def _script(path: str, script: str) -> str:
    name = _py(_plain(path, script, "a script file name", "/ \\ .. = : [ # ;"))
    if name == ".py":
        raise UsageError(f"{display(path)}: {script!r} is not a script file name; give a name such as resnet.py")
    return name


def _edit(path: str, change: Callable[[List[str], str, QueueConfig], str]) -> str:
    """Apply ``change`` to the file's lines under the folder's lock; save the
    result atomically if it differs. Returns what ``change`` says it did."""
    path = os.path.realpath(path)  # a symlinked config is edited where it points
    try:
        lock = os.open(os.path.dirname(path), os.O_RDONLY | os.O_DIRECTORY)
    except OSError as exc:
        raise UsageError(f"{display(path)}: cannot open its folder ({exc.strerror}); create it or fix the path") from None
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        exists = os.path.exists(path)
        config = read_queue_config(path) if exists else QueueConfig(path)  # a broken file is not edited
        white, black = list_sections(path)
        data = NEW_FILE.replace("WHITELISTED_MODELS", white).replace("BLACKLISTED_MODELS", black).encode()
        if exists:
            with open(path, "rb") as handle:
                data = handle.read()
        bom = b"\xef\xbb\xbf" if data.startswith(b"\xef\xbb\xbf") else b""
        lines = data[len(bom):].decode("utf-8").splitlines(keepends=True)
        endings = [line[len(_body(line)):] for line in lines]
        nl = "\r\n" if endings.count("\r\n") > endings.count("\n") else "\n"
        open_end = bool(lines) and not endings[-1]  # no line ending at the end: so it stays
        if open_end:
            lines[-1] += nl
        message = change(lines, nl, config)
        if open_end and lines:
            lines[-1] = _body(lines[-1])
        result = bom + "".join(lines).encode("utf-8")
        if result != data or not exists:
            _replace(path, result)
            os.fsync(lock)  # the rename itself
        return message
    finally:
        os.close(lock)


def _replace(path: str, data: bytes) -> None:
    mode = stat.S_IMODE(os.stat(path).st_mode) if os.path.exists(path) else None
    temp = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.{secrets.token_hex(4)}.tmp")
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # a new file gets the umask's mode
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            if mode is not None:
                os.fchmod(fd, mode)
            os.fsync(fd)
        read_queue_config(temp)  # what the runner will read must parse
        os.replace(temp, path)
    except OSError as exc:
        raise write_failed(path, exc, "save the queue", "the file is unchanged") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)


def whitelist(path: str, script: str, versions: Optional[Sequence[str]] = None) -> str:
    """Whitelist ``script`` (only ``versions`` of it, if given) at the end of the
    run order, or change its versions where it is; it leaves the blacklist."""
    return _move(path, script, versions, list_sections(path)[0])


def blacklist(path: str, script: str) -> str:
    """Blacklist all of ``script``; it leaves the whitelist."""
    return _move(path, script, None, list_sections(path)[1])


def _move(path: str, script: str, versions: Optional[Sequence[str]], section: str) -> str:
    name = _script(path, script)
    if versions is not None and not versions:
        raise UsageError(f"{display(path)}: no versions given for {name}; pass None to run all of its versions")
    wanted = list(dict.fromkeys(_plain(path, v, f"a version name of {name}", ", # ;") for v in versions or ())) or None
    white, black = list_sections(path)  # experiments.config keeps its *_EXPERIMENTS spelling
    other, verb, away = (black, "whitelisted", "blacklist") if section == white else (white, "blacklisted", "whitelist")

    def change(lines: List[str], nl: str, config: QueueConfig) -> str:
        was = next((e for e in (config.whitelist if section == white else config.blacklist) if e.name == name), None)
        moved = f"; removed it from the {away}" if _remove(lines, other, name) else ""
        if was is not None and was.versions == wanted:
            return f"{display(path)}: {name} is already {verb}{moved or '; nothing changed'}"
        after = _put(lines, nl, section, name, wanted)
        what = f"{name} = {', '.join(wanted)}" if wanted else name + (" (all its versions)" if was else "")
        where = "" if after is None or section == black else f" ({f'after {after}' if after else 'first in the queue'})"
        return f"{display(path)}: {verb} {what}{where}{moved}"

    return _edit(path, change)


def unlist(path: str, script: str) -> str:
    """Take ``script`` out of both the whitelist and the blacklist."""
    name = _script(path, script)

    def change(lines: List[str], nl: str, config: QueueConfig) -> str:
        sections = zip(list_sections(path), ("whitelist", "blacklist"))
        lists = [what for section, what in sections if _remove(lines, section, name)]
        if not lists:
            return f"{display(path)}: {name} is in neither list; nothing changed"
        return f"{display(path)}: removed {name} from the {' and the '.join(lists)}"

    return _edit(path, change)


def reorder(path: str, scripts: Sequence[str]) -> str:
    """Run ``scripts`` first, in that order, then the other whitelisted scripts in
    theirs. Comment lines directly above an entry move with it; blank lines stay."""
    order = [_script(path, s) for s in scripts]
    twice = sorted({n for n in order if order.count(n) > 1})
    if twice:
        raise UsageError(f"{display(path)}: {', '.join(twice)} named more than once; give each script once")

    def change(lines: List[str], nl: str, config: QueueConfig) -> str:
        first: Dict[str, _Entry] = {}
        blocks: List[Tuple[_Entry, int]] = []  # each entry, and where the comments directly above it start
        for entry in _listed(lines, list_sections(path)[0]):
            first.setdefault(entry.name, entry)
            start = entry.start
            while start > (blocks[-1][0].stop if blocks else 0) and lines[start - 1].strip() and _is_note(lines[start - 1]):
                start -= 1
            blocks.append((entry, start))
        unknown = [n for n in order if n not in first]
        if unknown:
            raise UsageError(f"{display(path)}: {', '.join(unknown)} not whitelisted (whitelisted: "
                             f"{', '.join(first) or 'nothing'}); whitelist it first")
        moved = [b for n in order for b in blocks if b[0] is first[n]]
        moved += [b for b in blocks if b not in moved]
        out = lines[:blocks[0][1]] if blocks else list(lines)
        for slot, (entry, start) in enumerate(moved):  # the blocks trade places; what lies between them stays
            chunk = lines[start:entry.stop]
            if slot:  # read_ini: an indented line after an entry continues it
                chunk[entry.start - start] = chunk[entry.start - start].lstrip()
            out += chunk + lines[blocks[slot][0].stop:blocks[slot + 1][1] if slot + 1 < len(blocks) else len(lines)]
        if out == lines:
            return f"{display(path)}: the whitelist is already in that order; nothing changed"
        lines[:] = out
        return f"{display(path)}: the whitelist runs {', '.join(order + [n for n in first if n not in order])}"

    return _edit(path, change)


def set_use_blacklist(path: str, value: bool) -> str:
    """Run everything but the blacklist (True) or just the whitelist (False)."""

    def change(lines: List[str], nl: str, config: QueueConfig) -> str:
        said = f"use_blacklist = {value} ({'every script but the blacklist' if value else 'the whitelist'} runs)"
        if config.use_blacklist == value:
            return f"{display(path)}: already {said}; nothing changed"
        mine = [e for e in _listed(lines, "MLP") if e.key.lower() == "use_blacklist"]
        for entry in mine:  # the value alone changes: key, spacing and comment stay
            line = lines[entry.start]
            key, sep, rest = _split(_body(line))
            rest = rest.replace(rest[:_value_end(rest)].strip(), str(value), 1)
            lines[entry.start] = key + sep + rest + line[len(_body(line)):]
        if not mine:
            _append(lines, nl, "MLP", [f"use_blacklist = {value}{nl}"])
        return f"{display(path)}: {said}"

    return _edit(path, change)
