"""What keeps the dashboard safe on a shared box: every request but a static
asset needs the token (cookie or ``Authorization: Bearer``), the Host header
must be one we serve (DNS rebinding), a POST must come from our own origin, and
every file path a request names stays inside the folder it belongs to."""
from __future__ import annotations

import hmac
import ipaddress
import os
import re
import urllib.parse
from typing import Iterable, List, Optional, Set, Tuple

COOKIE = "mlpipeline_token"


def cookie_name(port: int) -> str:
    """Browsers keep cookies per host, not per port: two dashboards on one
    machine must not overwrite each other's token."""
    return f"{COOKIE}_{port}"
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")
_PORT = re.compile(r"(:[0-9]{0,5})?")
# No inline script anywhere: data reaches the page as JSON in <script type="application/json">.
SECURITY_HEADERS: List[Tuple[bytes, bytes]] = [
    (b"content-security-policy", b"default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
                                 b"img-src 'self' data: blob:; connect-src 'self'; object-src 'none'; "
                                 b"base-uri 'none'; frame-ancestors 'none'; form-action 'self'"),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
]


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def allowed_hosts(bind: str, extra: Iterable[str] = ()) -> Set[str]:
    """Host names (no port) a request may name: loopback's, the bound address
    unless it is a wildcard, and any the user added."""
    hosts = set(LOOPBACK_NAMES)
    if bind not in ("0.0.0.0", "::", ""):
        hosts.add(bind.strip("[]").lower())
    hosts.update(h.strip().lower() for h in extra if h.strip())
    return hosts


def host_name(header: str) -> str:
    """The name part of a Host header (``[::1]:8765`` → ``::1``). Anything after
    the name but a port (``127.0.0.1:80@evil.example``) leaves the header whole,
    so it matches no allowed name."""
    header = header.strip().lower()
    if header.startswith("[") and "]" in header:
        name, rest = header[1:].split("]", 1)
    elif header.count(":") == 1:
        name, port = header.split(":", 1)
        rest = ":" + port
    else:
        return header
    return name if _PORT.fullmatch(rest) else header


def token_matches(given: Optional[str], token: str) -> bool:
    return bool(given) and hmac.compare_digest(str(given).encode(), token.encode())


def origin_allowed(origin: str, host_header: str) -> bool:
    """A POST's Origin must be this very server as the browser reached it."""
    parsed = urllib.parse.urlsplit(origin)
    return parsed.scheme in ("http", "https") and parsed.netloc.lower() == host_header.strip().lower()


class Refused(Exception):
    """A path a request named that is not inside the folder it must stay in."""


def confine(base: str, relative: str) -> str:
    """``relative`` (as a URL gave it) resolved inside ``base``, symlinks
    followed; raises ``Refused`` for anything that would leave it: ``..``,
    absolute paths, backslashes, NUL, or a link pointing out."""
    if not relative or "\\" in relative or "\0" in relative or relative.startswith("/") \
            or any(part in ("..", ".") for part in relative.split("/")) or "%" in relative and \
            urllib.parse.unquote(relative) != relative:
        raise Refused(relative)
    root = os.path.realpath(base)
    target = os.path.realpath(os.path.join(root, relative))
    if target != root and not target.startswith(root + os.sep):
        raise Refused(relative)
    return target


def inside(base: str, path: str) -> bool:
    """Whether ``path`` (symlinks resolved) is ``base`` or lies under it."""
    root, target = os.path.realpath(base), os.path.realpath(path)
    return target == root or target.startswith(root + os.sep)
