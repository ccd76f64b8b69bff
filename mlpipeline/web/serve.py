"""``mlpipeline serve``: bind, print the address with its token, run uvicorn
until Ctrl+C. Loopback by default; anything else needs ``--allow-remote`` and
a token the user chose."""
from __future__ import annotations

import errno
import os
import secrets
import socket
import threading
from typing import Any, Callable, Iterable, Optional

from ..plan.config import Project
from ..core.errors import UsageError
from .guard import allowed_hosts, is_loopback

TOKEN_ENV = "MLPIPELINE_TOKEN"


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP spelt out: asyncio sets TCP_NODELAY only on sockets that say so, and without it every
    # keep-alive response waits out the client's delayed ACK (40 ms)
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise UsageError(f"port {port} on {host} is in use (another mlpipeline serve?); pick another with "
                             f"--port") from None
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


EXIT_WITHIN = 8.0


def _server(config: Any, events: Any) -> Any:
    """uvicorn's server, plus: on Ctrl+C or SIGTERM the open event streams end
    at once (so shutdown does not wait on pages that never hang up), and a
    shutdown that still takes longer than ``EXIT_WITHIN`` seconds ends the process."""
    import uvicorn

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: Any) -> None:
            super().handle_exit(sig, frame)
            events.close_streams()
            timer = threading.Timer(EXIT_WITHIN, _give_up)
            timer.daemon = True
            timer.start()
    return Server(config)


def _give_up() -> None:
    os.write(2, b"mlpipeline: the dashboard took too long to stop; exiting\n")
    os._exit(0)


def serve(project: Project, host: str = "127.0.0.1", port: int = 8765, token: Optional[str] = None,
          allow_remote: bool = False, allow_hosts: Iterable[str] = (), max_upload: Optional[int] = None,
          say: Callable[[str], None] = print, warn: Callable[[str], None] = print) -> int:
    """Serve ``project``'s dashboard until interrupted."""
    token = token or os.environ.get(TOKEN_ENV) or None
    if token is not None and len(token) < 16:
        raise UsageError("--token: use at least 16 characters (or leave it out for a random one)")
    if not is_loopback(host):
        if not allow_remote:
            raise UsageError(f"--host {host}: the dashboard can steer the queue, so it listens on loopback only; "
                             f"reach it from elsewhere with ssh -L 8765:127.0.0.1:8765, or add --allow-remote and "
                             f"--token")
        if not token:
            raise UsageError(f"--host {host} --allow-remote: choose a long token with --token (or {TOKEN_ENV}); "
                             f"anyone who can reach the port and knows it can steer the queue")
        warn(f"the dashboard listens on {host}:{port}, reachable from other machines; it is plain HTTP, so the "
             f"token crosses the network in the clear. Prefer ssh -L on untrusted networks")
    try:
        import uvicorn

        from .app import create_app
        from .state import MAX_UPLOAD, Dashboard
    except ImportError as exc:
        raise UsageError(f"mlpipeline serve needs the web extra ({exc.name} is missing): "
                         f"pip install 'mlpipeline[web]'") from None
    token = token or secrets.token_urlsafe(24)
    dash = Dashboard(project, token, allowed_hosts(host, allow_hosts), max_upload=max_upload or MAX_UPLOAD)
    sock = _bind(host, port)
    port = sock.getsockname()[1]
    shown = f"[{host.strip('[]')}]" if ":" in host else host
    say(f"dashboard of {project.root}: http://{shown}:{port}/?token={token}")
    say("open that address once (the browser keeps the token in a cookie); Ctrl+C stops the server")
    app = create_app(dash)
    config = uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=2, lifespan="on",
                            server_header=False, proxy_headers=False, access_log=False)
    server = _server(config, app.app.state.events)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
    return 0
