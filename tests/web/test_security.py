"""The dashboard against someone who means it harm, on a real ``mlpipeline serve``
over real sockets: paths that climb out of a run's model dir (encoded, doubled,
backslashed, absolute, through symlinks), markup in every name a model can
choose, requests without the token or from another site or Host, hostile
uploads, and a ``--host`` that would expose it.

Requests go through ``http.client`` (the path is sent exactly as written: no
client normalises ``..`` or decodes ``%2f``) or a raw socket. Every answer of the
server is checked by ``call`` for what must hold everywhere: the security
headers, no ``Access-Control-Allow-*``, and no byte of a file that lies outside
the model dir (``root:x:0:0`` from /etc/passwd, the project's mlp.config, a
secret file next to it, the ledger's SQLite header).
"""
from __future__ import annotations

import http.client
import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
import zipfile
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import pytest

from helpers import FIXTURES, Project, pid_alive

TOKEN = "sec-test-token-0123456789abcdef"
MAX_UPLOAD = 2048                   # the server runs with --max-upload 2K
CONFIG_MARKER = "SECRET-CONFIG-MARKER-7f3a"
SECRET_MARKER = "TOP-SECRET-OUTSIDE-9c1e"
# Bytes that only a file outside the model dir holds: none may reach a client.
LEAKS = (b"root:x:0:0", CONFIG_MARKER.encode(), SECRET_MARKER.encode(), b"SQLite format 3")
EVIL_VERSION = "<img src=x onerror=window.__xss=1>"
EVIL_FILE = "<img src=x onerror=window.__xss=2>.py"     # a script name holding markup, for /queue
RAW_MARKUP = ("<script>window.__xss", "<img src=x onerror", "<b onmouseover", "onerror=\"window")
VALID_MODEL = """\
    import os
    from mlpipeline.helper import DataLoader, Model
    from mlpipeline.utils import Versions

    {side_effect}

    class L(DataLoader):
        def get_train_input(self, mode=None, **kw): return None
        def get_test_input(self, **kw): return None
        def get_train_sample_count(self): return 1
        def get_test_sample_count(self): return 1

    class M(Model):
        def train_model(self, input_fn, steps): pass
        def evaluate_model(self, input_fn, steps): return {{"acc": 1.0}}

    v = Versions(L(), 1, 1)
    v.add_version("only")
    MODEL = M(v)
    """


def model_script(side_effect: str = "") -> bytes:
    return textwrap.dedent(VALID_MODEL).format(side_effect=side_effect).encode()


def ran_marker(path: Path) -> str:
    """Import-time code that appends this process's pid to ``path``."""
    return f"open({str(path)!r}, 'a').write('%d\\n' % os.getpid())"


# -- the server -------------------------------------------------------------------------------------------------------

@dataclass
class Site:
    proj: Project
    proc: subprocess.Popen
    port: int
    curves: int          # run id of curves.py 'slow': its model dir holds the links
    model_dir: Path
    evil: int            # run id of evil.py's only version
    scratch: Path        # a folder outside the project

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def origin(self) -> str:
        return f"http://{self.host}"


@dataclass
class Reply:
    status: int
    headers: List[Tuple[str, str]]
    body: bytes

    def header(self, name: str) -> Optional[str]:
        values = [v for k, v in self.headers if k == name.lower()]
        return ", ".join(values) if values else None

    def json(self) -> Dict:
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


def _outward_links(model_dir: Path, root: Path) -> None:
    """Links inside the model dir that point out of it: to system files, to
    the project's own files, to folders, and relative ones."""
    (model_dir / "passwd_link").symlink_to("/etc/passwd")
    (model_dir / "config_link").symlink_to(root / "mlp.config")
    (model_dir / "secret_link").symlink_to(root / "secret.txt")
    (model_dir / "ledger_link").symlink_to(root / "models" / "outputs" / "mlpipeline.db")
    (model_dir / "etc_link").symlink_to("/etc", target_is_directory=True)
    (model_dir / "root_link").symlink_to("/", target_is_directory=True)
    (model_dir / "up").symlink_to("..", target_is_directory=True)
    (model_dir / "ckpt" / "rel_link").symlink_to(os.path.relpath(root / "secret.txt", model_dir / "ckpt"))


def _start(proj: Project, logs: Path, *args: str) -> Tuple[subprocess.Popen, int]:
    out, err = logs / "serve.out", logs / "serve.err"
    env = {k: v for k, v in os.environ.items() if k != "MLPIPELINE_TOKEN"}
    with open(out, "w") as stdout, open(err, "w") as stderr:
        proc = subprocess.Popen([sys.executable, "-m", "mlpipeline", "serve", "-C", str(proj.root), "--port", "0",
                                 "--token", TOKEN, *args], cwd=logs, stdout=stdout, stderr=stderr,
                                stdin=subprocess.DEVNULL, env=env)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = re.search(r"http://127\.0\.0\.1:(\d+)/\?token=(\S+)", out.read_text())
        if found:
            assert found.group(2) == TOKEN
            return proc, int(found.group(1))
        if proc.poll() is not None:
            raise AssertionError(f"mlpipeline serve exited ({proc.returncode}): {err.read_text()[-2000:]}")
        time.sleep(0.05)
    _stop(proc)
    raise AssertionError(f"mlpipeline serve printed no address in 30 s: {err.read_text()[-2000:]}")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """curves.py and evil.py run once with ``mlpipeline -r``; links out of
    curves.py 'slow''s model dir; a server with a 2K upload limit."""
    base = tmp_path_factory.mktemp("websec")
    proj = Project(base / "proj")
    proj.write("mlp.config", f"# {CONFIG_MARKER}\n[MLP]\nmodels_dir = models\n")
    proj.write("secret.txt", f"{SECRET_MARKER}\n")
    proj.models.mkdir(parents=True)
    for name in ("curves.py", "evil.py"):
        shutil.copy(FIXTURES / "web" / name, proj.models / name)
    proj.configure(["curves.py", "evil.py"])
    done = proj.run("-r", env={"WEB_TEST_SLEEP": "0"})
    assert done.returncode == 0, done.stderr[-3000:]
    runs = {r["version"]: r for r in proj.runs()}
    slow, evil = runs["slow"], runs[EVIL_VERSION]
    model_dir = Path(slow["model_dir"])
    assert (model_dir / "ckpt" / "weights.txt").read_text() == "rate=1.0\n"
    _outward_links(model_dir, proj.root)
    (proj.models / EVIL_FILE).write_text("x = 1\n")
    scratch = base / "scratch"
    scratch.mkdir()
    proc, port = _start(proj, scratch, "--max-upload", "2K")
    try:
        yield Site(proj, proc, port, slow["id"], model_dir, evil["id"], scratch)
    finally:
        _stop(proc)
    assert not pid_alive(proc.pid)


def call(site: Site, method: str, path: str, *, bearer: Optional[str] = TOKEN, cookie: Optional[str] = None,
         origin: Optional[str] = None, host: Optional[str] = None, headers: Sequence[Tuple[str, str]] = (),
         body: Optional[bytes] = None, chunked: bool = False) -> Reply:
    """One request with ``path`` sent byte for byte; the answer checked for
    what every answer must have (security headers, no CORS grant, no leak)."""
    conn = http.client.HTTPConnection("127.0.0.1", site.port, timeout=30)
    try:
        conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        conn.putheader("Host", site.host if host is None else host)
        if bearer is not None:
            conn.putheader("Authorization", f"Bearer {bearer}")
        if cookie is not None:
            conn.putheader("Cookie", f"mlpipeline_token_{site.port}={cookie}")
        if origin is not None:
            conn.putheader("Origin", origin)
        for name, value in headers:
            conn.putheader(name, value)
        if chunked:
            conn.putheader("Transfer-Encoding", "chunked")
        elif body is not None:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders()
        if chunked and body is not None:
            for start in range(0, len(body), 512):
                piece = body[start:start + 512]
                conn.send(b"%x\r\n%s\r\n" % (len(piece), piece))
            conn.send(b"0\r\n\r\n")
        elif body is not None:
            conn.send(body)
        response = conn.getresponse()
        reply = Reply(response.status, [(k.lower(), v) for k, v in response.getheaders()], response.read())
    finally:
        conn.close()
    _check_every_answer(reply, f"{method} {path}")
    return reply


def _check_every_answer(reply: Reply, what: str) -> None:
    grants = [k for k, _ in reply.headers if k.startswith("access-control-allow")]
    assert not grants, f"{what}: CORS headers {grants}"
    for name in ("content-security-policy", "x-frame-options", "x-content-type-options", "referrer-policy"):
        assert reply.header(name), f"{what}: no {name} ({reply.status})"
    for leak in LEAKS:
        assert leak not in reply.body, f"{what}: {leak!r} leaked ({reply.status})"


def models_dir_state(site: Site) -> Dict[str, bytes]:
    """Every entry right in models/ (hidden ones too) with its bytes, plus
    whatever lies next to the project: what an upload must not change."""
    state = {}
    for folder in (site.proj.models, site.proj.root, site.proj.root.parent):
        for entry in sorted(os.listdir(folder)):
            path = folder / entry
            state[str(path)] = path.read_bytes() if path.is_file() else b"<dir>"
    return state


# -- paths ----------------------------------------------------------------------------------------------------------

CLIMBS = [
    "../../../../../../../etc/passwd",
    "ckpt/../../../../../../../etc/passwd",
    "..%2f..%2f..%2f..%2f..%2f..%2f..%2fetc%2fpasswd",
    "%2e%2e%2f%2e%2e%2f%2e%2e%2f%2e%2e%2f%2e%2e%2f%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "%2E%2E/%2E%2E/%2E%2E/%2E%2E/%2E%2E/%2E%2E/%2E%2E/etc/passwd",
    "%252e%252e%252f%252e%252e%252f%252e%252e%252f%252e%252e%252f%252e%252e%252f%252e%252e%252fetc%252fpasswd",
    "..%252f..%252f..%252f..%252f..%252f..%252f..%252fetc%252fpasswd",
    "..\\..\\..\\..\\..\\..\\..\\etc\\passwd",
    "..%5c..%5c..%5c..%5c..%5c..%5c..%5cetc%5cpasswd",
    "ckpt\\..\\..\\..\\..\\..\\mlp.config",
    "/etc/passwd",
    "//etc/passwd",
    "%2fetc%2fpasswd",
    "//proc/self/root/etc/passwd",
    "/proc/self/root/etc/passwd",
    "../../../../mlp.config",                     # the project's own files, just outside the model dir
    "..%2f..%2f..%2f..%2fmlp.config",
    "..%2f..%2f..%2f..%2fsecret.txt",
    "../../mlpipeline.db",
    "../curves-fast/curves.py",                   # another run's model dir
    "./passwd_link",
    "passwd_link",                                # links that point out
    "config_link",
    "secret_link",
    "ledger_link",
    "etc_link/passwd",
    "root_link/etc/passwd",
    "root_link/proc/self/root/etc/passwd",
    "up/curves-fast/curves.py",
    "up/../../../mlp.config",
    "ckpt/rel_link",
    "ckpt%2f..%2fpasswd_link",
    "ckpt/weights.txt%00",
    "passwd_link%00ckpt/weights.txt",
    "ckpt",                                       # a folder is no file
    ".",
    "",
]


@pytest.mark.parametrize("climb", CLIMBS)
def test_a_file_path_that_leaves_the_model_dir_is_refused(site, climb):
    reply = call(site, "GET", f"/api/runs/{site.curves}/files/{climb}")
    assert reply.status in (400, 404), (climb, reply.status, reply.body[:300])
    assert b"rate=" not in reply.body and b"MODEL" not in reply.body


def test_a_file_inside_the_model_dir_is_served(site):
    """The control for the refusals above: the same route does serve a file."""
    reply = call(site, "GET", f"/api/runs/{site.curves}/files/ckpt/weights.txt")
    assert reply.status == 200 and reply.body == b"rate=1.0\n"
    assert reply.header("content-disposition").startswith("attachment")
    assert reply.header("content-type") == "application/octet-stream"


@pytest.mark.parametrize("path", [
    "/runs/..%2f..", "/runs/..%2f..%2f..%2fetc%2fpasswd", "/runs/1/../../etc/passwd", "/runs/%2e%2e",
    "/api/runs/1%2f..", "/api/runs/..%2f..", "/api/runs/%2e%2e%2f%2e%2e%2fetc%2fpasswd", "/api/runs/-1",
    "/api/runs/1%2f..%2f..%2fstatus", "/api/runs/..%2f..%2fmlp.config/files/x",
    "/api/runs/{curves}%2ffiles%2f..%2f..%2f..%2f..%2fmlp.config",
    "/api/runs/{curves}/files%2f..%2f..%2f..%2f..%2fsecret.txt",
    "/api/runs/{curves}%2f..%2f..%2f..%2f..%2f..%2f..%2fetc%2fpasswd",
])
def test_a_run_id_that_is_no_number_is_refused(site, path):
    reply = call(site, "GET", path.format(curves=site.curves))
    assert reply.status in (400, 404), (path, reply.status, reply.body[:300])
    assert b'"uid"' not in reply.body


@pytest.mark.parametrize("path", [
    "/static/../guard.py", "/static/..%2fguard.py", "/static/%2e%2e%2fguard.py", "/static/%2e%2e/routes.py",
    "/static/..\\guard.py", "/static/..%5cguard.py", "/static//etc/passwd", "/static/%2fetc%2fpasswd",
    "/static/..%2f..%2f..%2f..%2f..%2f..%2f..%2f..%2fetc%2fpasswd", "/static/../../../../../../../../etc/passwd",
])
@pytest.mark.parametrize("token", [None, TOKEN])
def test_static_files_stay_in_their_folder(site, path, token):
    """/static/ is served without the token: it must not serve anything else."""
    reply = call(site, "GET", path, bearer=token)
    assert reply.status in (400, 401, 404), (path, reply.status)
    assert b"import " not in reply.body and b"def " not in reply.body


def test_the_zip_holds_no_link_target(site):
    reply = call(site, "GET", f"/api/runs/{site.curves}/files.zip")
    assert reply.status == 200 and reply.header("content-type") == "application/zip"
    top = site.model_dir.name
    assert reply.header("content-disposition") == f'attachment; filename="{top}.zip"'
    with zipfile.ZipFile(io.BytesIO(reply.body)) as archive:
        names = archive.namelist()
        contents = {name: archive.read(name) for name in names}
    assert f"{top}/ckpt/weights.txt" in names and f"{top}/curves.py" in names   # the control: real files are in
    assert not [n for n in names if "link" in n or "/up/" in n or ".." in n or n.startswith("/")], names
    for name, data in contents.items():
        for leak in LEAKS:
            assert leak not in data, f"{name} holds {leak!r}"


def test_the_zip_of_a_markup_named_model_dir_has_a_plain_file_name(site):
    reply = call(site, "GET", f"/api/runs/{site.evil}/files.zip")
    assert reply.status == 200
    assert re.fullmatch(r'attachment; filename="[A-Za-z0-9._-]+\.zip"', reply.header("content-disposition"))


def test_the_listing_leaves_out_links_that_point_out(site):
    record = call(site, "GET", f"/api/runs/{site.curves}").json()
    listed = {f["path"] for f in record["files"]}
    assert {"curves.py", "ckpt/weights.txt"} <= listed
    assert not [p for p in listed if "link" in p or p.startswith("up") or p.startswith("etc")], listed
    page = call(site, "GET", f"/runs/{site.curves}").text
    assert "ckpt/weights.txt" in page
    for name in ("passwd_link", "config_link", "secret_link", "ledger_link", "etc_link", "root_link", "rel_link"):
        assert name not in page and name not in json.dumps(record)


# -- markup -----------------------------------------------------------------------------------------------------------

DATA_BLOCK = re.compile(r'<script type="application/json" id="[a-z-]+">(.*?)</script>', re.S)
REFLECTED = "%3Cscript%3Ewindow.__xss%3D%27reflected%27%3C%2Fscript%3E"


class Elements(HTMLParser):
    """The start tags of a page, parsed the way a browser tokenises them."""

    def __init__(self, html: str):
        super().__init__(convert_charrefs=True)
        self.tags: List[Tuple[str, Dict[str, Optional[str]]]] = []
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: List[Tuple[str, Optional[str]]]) -> None:
        self.tags.append((tag, dict(attrs)))

    handle_startendtag = handle_starttag


def _assert_inert(html: str, what: str) -> List:
    """No raw payload; no element a payload would make (img, svg, ...), no
    event-handler attribute, no script element but ours; JSON blocks that
    cannot close their element. Returns the JSON blocks, parsed."""
    for raw in RAW_MARKUP:
        assert raw not in html, f"{what}: raw {raw!r}"
    scripts = 0
    for tag, attrs in Elements(html).tags:
        assert tag not in ("img", "svg", "iframe", "object", "embed", "base"), f"{what}: <{tag} {attrs}>"
        assert not [a for a in attrs if a.startswith("on")], f"{what}: <{tag} {attrs}>"
        assert not [v for v in attrs.values() if v and v.strip().lower().startswith("javascript:")], what
        if tag == "script":
            scripts += 1
            assert attrs in ({"src": attrs.get("src"), "defer": None}, {"src": attrs.get("src")},
                             {"type": "application/json", "id": attrs.get("id")}), f"{what}: <script {attrs}>"
            assert "src" not in attrs or re.fullmatch(r"/static/[a-z.]+", attrs["src"]), f"{what}: {attrs}"
    blocks = DATA_BLOCK.findall(html)
    assert scripts == len(blocks) + len(re.findall(r'<script src="/static/', html)), what
    parsed = []
    for block in blocks:
        assert "<" not in block, f"{what}: {block[:200]}"
        parsed.append(json.loads(block))
    return parsed


@pytest.mark.parametrize("path, shown", [
    ("/", "&lt;img src=x onerror=window.__xss=1&gt;"),
    ("/?q=evil", "&lt;b onmouseover=alert(1)&gt;acc&lt;/b&gt;"),
    ("/runs/{evil}", "&lt;img src=x onerror=&#34;window.__xss=&#39;param&#39;&#34;&gt;"),
    ("/compare?script=evil.py", "&lt;img src=x onerror=window.__xss=1&gt;"),
    ("/compare?script=models/evil.py", "&lt;b onmouseover=alert(1)&gt;acc&lt;/b&gt;"),
    ("/compare?script=evil.py&metric=train/%3Cb%20onmouseover%3Dalert(1)%3Eacc%3C/b%3E", "&lt;b onmouseover"),
    ("/queue", "&lt;img src=x onerror=window.__xss=2&gt;.py"),
    ("/?fragment=1", "&lt;img src=x onerror=window.__xss=1&gt;"),
    ("/queue?fragment=1", "&lt;img src=x onerror=window.__xss=2&gt;.py"),
    (f"/compare?script={REFLECTED}", "&lt;script&gt;window.__xss="),
    (f"/?status={REFLECTED}", "&lt;script&gt;window.__xss="),
    (f"/?q={REFLECTED}", None),
    (f"/?sort={REFLECTED}", None),
    (f"/?mode={REFLECTED}", "&lt;script&gt;window.__xss="),
])
def test_markup_from_names_params_metrics_and_results_is_escaped(site, path, shown):
    reply = call(site, "GET", path.format(evil=site.evil), bearer=None, cookie=TOKEN)
    assert reply.status in (200, 400, 404), (path, reply.status)
    assert reply.header("content-type") == "text/html; charset=utf-8"
    _assert_inert(reply.text, path)
    if shown:   # the payload is on the page, as text
        assert shown in reply.text, path


def test_the_run_page_data_block_carries_markup_as_data(site):
    page = call(site, "GET", f"/runs/{site.evil}", bearer=None, cookie=TOKEN).text
    (data,) = _assert_inert(page, "run page")
    assert data["results"]["train"]["text"] == "<script>window.__xss='text'</script>"
    assert data["results"]["train"]["data"] == [["<script>window.__xss='cell'</script>"]]


@pytest.mark.parametrize("path, payload", [
    ("/api/runs/{evil}", EVIL_VERSION),
    ("/api/runs/{evil}/log", "<script>window.__xss = 'log'</script><img src=x onerror=\"window.__xss='log-img'\">"),
    ("/api/runs/{evil}/metrics", "<img src=x onerror=window.__xss='metric'>"),
    ("/api/runs", EVIL_VERSION),
    ("/api/compare?script=evil.py", "<img src=x onerror=\"window.__xss='param'\">"),
    ("/api/status", EVIL_FILE),
    (f"/api/compare?script={REFLECTED}", "<script>window.__xss='reflected'</script>"),
    (f"/api/{REFLECTED}", "<script>window.__xss='reflected'</script>"),
])
def test_the_api_returns_markup_as_json_data(site, path, payload):
    reply = call(site, "GET", path.format(evil=site.evil))
    assert reply.header("content-type") == "application/json"
    assert reply.header("x-content-type-options") == "nosniff"
    assert [text for text in _strings(reply.json()) if payload in text], path


def _strings(value: object) -> Iterator[str]:
    """Every string in a JSON value, keys included."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


# -- who may ask --------------------------------------------------------------------------------------------------------

GUARDED = ["/", "/runs/{curves}", "/compare?script=curves.py", "/queue", "/api/runs", "/api/runs/{curves}",
           "/api/runs/{curves}/log", "/api/runs/{curves}/files/ckpt/weights.txt", "/api/runs/{curves}/files.zip",
           "/api/status", "/api/events", "/api/compare?script=curves.py"]


CREDENTIALS = ["none", "wrong bearer", "wrong cookie", "empty bearer", "token as basic", "token prefix"]


@pytest.mark.parametrize("path, credentials", [(p, c) for p in GUARDED for c in CREDENTIALS] +
                         [(p, "token as query") for p in GUARDED if p.startswith("/api/")])
def test_a_request_without_the_token_is_refused(site, path, credentials):
    """No token, a wrong one, or the right one where it does not count: in
    the query of an API call (a page takes it once, to set the cookie)."""
    path = path.format(curves=site.curves)
    kwargs: Dict = {"bearer": None}
    if credentials == "wrong bearer":
        kwargs["bearer"] = TOKEN[:-1] + "X"
    elif credentials == "wrong cookie":
        kwargs["cookie"] = TOKEN + "X"
    elif credentials == "empty bearer":
        kwargs["bearer"] = ""
    elif credentials == "token prefix":
        kwargs["cookie"] = TOKEN[:8]
    elif credentials == "token as basic":
        kwargs["headers"] = [("Authorization", f"Basic {TOKEN}")]
    elif credentials == "token as query":
        path += ("&" if "?" in path else "?") + f"token={TOKEN}"
    reply = call(site, "GET", path, **kwargs)
    assert reply.status == 401, (path, credentials, reply.status)
    assert reply.header("set-cookie") is None
    assert b"rate=" not in reply.body and b"curves" not in reply.body


def test_the_query_token_sets_a_strict_cookie(site):
    reply = call(site, "GET", f"/runs/{site.curves}?token={TOKEN}&x=1", bearer=None)
    assert reply.status == 303
    assert reply.header("location") == f"/runs/{site.curves}?x=1"          # the token leaves the address bar
    cookie = reply.header("set-cookie")
    attributes = [a.strip().lower() for a in cookie.split(";")]
    assert attributes[0] == f"mlpipeline_token_{site.port}={TOKEN}".lower()
    assert "httponly" in attributes and "samesite=strict" in attributes and "path=/" in attributes
    assert call(site, "GET", "/api/runs", bearer=None, cookie=TOKEN).status == 200
    assert call(site, "GET", f"/?token={TOKEN[:-1]}X", bearer=None).header("set-cookie") is None


@pytest.mark.parametrize("path", ["//evil.example/", "/%2f%2fevil.example/", "/%2fevil.example/",
                                  "/%5cevil.example", "/\\evil.example", "/%5c%5cevil.example"])
def test_the_token_redirect_stays_on_this_site(site, path):
    reply = call(site, "GET", f"{path}?token={TOKEN}", bearer=None)
    location = reply.header("location") or "/"
    assert location.startswith("/") and not location.startswith("//") and not location.startswith("/\\"), location


@pytest.mark.parametrize("host", ["evil.example", "evil.example:{port}", "127.0.0.1.evil.example:{port}",
                                  "localhost.evil.example", "evil.example:{port}.127.0.0.1", "127.0.0.1:{port}@evil.example",
                                  "localhost:evil.example", "[::1]evil.example", "[::1].evil.example:{port}",
                                  "0.0.0.0:{port}", "", "127.0.0.1 :{port}"])
@pytest.mark.parametrize("path", ["/", "/api/runs", "/api/runs/{curves}/files/ckpt/weights.txt", "/static/app.js",
                                  "/?token=" + TOKEN])
def test_a_foreign_host_is_refused(site, host, path):
    """DNS rebinding: a page of evil.example that now resolves to 127.0.0.1
    reaches the port, but its requests name evil.example."""
    reply = call(site, "GET", path.format(curves=site.curves), host=host.format(port=site.port))
    assert reply.status in (400, 403), (host, path, reply.status)
    assert b"rate=" not in reply.body and b"curves" not in reply.body
    assert reply.header("set-cookie") is None


def test_a_request_without_a_host_is_refused(site):
    """HTTP/1.0 needs no Host header: no name, no answer."""
    with socket.create_connection(("127.0.0.1", site.port), timeout=10) as sock:
        sock.sendall(f"GET /api/runs HTTP/1.0\r\nAuthorization: Bearer {TOKEN}\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    status = int(data.split(b" ", 2)[1])
    assert status in (400, 403) and b"curves" not in data


@pytest.mark.parametrize("order", [0, 1])
def test_two_host_headers_are_refused(site, order):
    hosts = [site.host, "evil.example"][::1 if order else -1]
    with socket.create_connection(("127.0.0.1", site.port), timeout=10) as sock:
        sock.sendall((f"GET /api/runs HTTP/1.1\r\nHost: {hosts[0]}\r\nHost: {hosts[1]}\r\n"
                      f"Authorization: Bearer {TOKEN}\r\nConnection: close\r\n\r\n").encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    assert int(data.split(b" ", 2)[1]) in (400, 403) and b"curves" not in data


@pytest.mark.parametrize("host", ["localhost:{port}", "LOCALHOST:{port}", "127.0.0.1:{port}", "127.0.0.1"])
def test_a_loopback_host_is_served(site, host):
    """The control for the refusals above."""
    assert call(site, "GET", "/api/runs", host=host.format(port=site.port)).status == 200


FOREIGN = [  # (credentials, Origin, extra headers): each must be refused
    ("cookie", None, []),
    ("cookie", "http://evil.example", []),
    ("bearer", "http://evil.example", []),
    ("cookie", "null", []),
    ("bearer", "null", []),
    ("cookie", "https://evil.example", []),
    ("cookie", "http://127.0.0.1:{port}.evil.example", []),
    ("cookie", "http://127.0.0.1:{other}", []),
    ("cookie", "http://localhost:{port}", []),
    ("cookie", "http://evil.example@127.0.0.1:{port}", []),
    ("cookie", "file://", []),
    ("cookie", "{origin}", [("Sec-Fetch-Site", "cross-site")]),
    ("cookie", "{origin}", [("Sec-Fetch-Site", "same-site")]),
    ("bearer", "{origin}", [("Sec-Fetch-Site", "cross-site")]),
    (None, "{origin}", []),
    ("wrong", "{origin}", []),
]


def _post(site: Site, path: str, credentials: Optional[str], origin: Optional[str], extra: list,
          body: bytes, host: Optional[str] = None) -> Reply:
    origin = None if origin is None else origin.format(port=site.port, other=site.port + 1, origin=site.origin)
    return call(site, "POST", path, bearer=TOKEN if credentials == "bearer" else None,
                cookie={"cookie": TOKEN, "wrong": TOKEN + "X"}.get(credentials or ""), origin=origin,
                headers=[("Content-Type", "application/json"), *extra], body=body, host=host)


@pytest.mark.parametrize("credentials, origin, extra", FOREIGN)
def test_a_change_from_another_site_is_refused_before_it_happens(site, credentials, origin, extra):
    config = (site.proj.root / "models.config").read_bytes()
    before = models_dir_state(site)
    ledger = (site.proj.outputs / "mlpipeline.db").read_bytes()
    predictions = call(site, "GET", f"/api/runs/{site.curves}").json()["predictions"]
    ran = site.scratch / f"ran-{len(os.listdir(site.scratch))}"
    changes = [("/api/queue", json.dumps({"action": "whitelist", "script": EVIL_FILE}).encode()),
               ("/api/queue", json.dumps({"action": "use_blacklist", "value": True}).encode()),
               ("/api/scripts?name=csrf.py", model_script(ran_marker(ran))),
               (f"/api/runs/{site.curves}/rerun", b"{}"), (f"/api/runs/{site.curves}/cancel", b"{}"),
               ("/api/runner/pause", b"{}"), (f"/api/runs/{site.curves}/predict?name=x.txt", b"1 2 3\n")]
    for path, body in changes:
        reply = _post(site, path, credentials, origin, extra, body)
        assert reply.status == (401 if credentials in (None, "wrong") else 403), (path, reply.status, reply.body)
        assert "error" in reply.json()
    assert (site.proj.root / "models.config").read_bytes() == config
    assert models_dir_state(site) == before
    assert (site.proj.outputs / "mlpipeline.db").read_bytes() == ledger
    assert not ran.exists()
    assert call(site, "GET", f"/api/runs/{site.curves}").json()["predictions"] == predictions


@pytest.mark.parametrize("host", ["evil.example:{port}", "127.0.0.1:{port}@evil.example"])
def test_a_change_naming_a_foreign_host_is_refused_even_when_origin_matches_it(site, host):
    host = host.format(port=site.port)
    config = (site.proj.root / "models.config").read_bytes()
    body = json.dumps({"action": "whitelist", "script": EVIL_FILE}).encode()
    reply = _post(site, "/api/queue", "cookie", f"http://{host}", [], body, host=host)
    assert reply.status == 403
    assert (site.proj.root / "models.config").read_bytes() == config


def test_a_change_from_the_dashboards_own_page_goes_through(site):
    """The control for the refusals above: the same request with the page's
    own Origin does change models.config."""
    path = site.proj.root / "models.config"
    config = path.read_bytes()
    try:
        reply = _post(site, "/api/queue", "cookie", "{origin}", [("Sec-Fetch-Site", "same-origin")],
                      json.dumps({"action": "use_blacklist", "value": True}).encode())
        assert reply.status == 200 and reply.json()["changed"], reply.body
        assert path.read_bytes() != config
    finally:
        path.write_bytes(config)


@pytest.mark.parametrize("path", ["/api/queue", "/api/scripts?name=x.py", "/api/runs", "/", "/api/events"])
@pytest.mark.parametrize("token", [None, TOKEN])
def test_a_preflight_grants_no_other_origin(site, path, token):
    reply = call(site, "OPTIONS", path, bearer=token, origin="http://evil.example",
                 headers=[("Access-Control-Request-Method", "POST"),
                          ("Access-Control-Request-Headers", "authorization, content-type")])
    assert reply.status >= 400, (path, reply.status)    # and call() found no Access-Control-Allow-*


def test_a_cross_origin_read_gets_no_cors_grant(site):
    reply = call(site, "GET", "/api/runs", origin="http://evil.example")
    assert reply.status == 200 and reply.header("cross-origin-resource-policy") == "same-origin"


@pytest.mark.parametrize("path", ["/", "/runs/{curves}", "/api/runs", "/static/app.js", "/nowhere", "/api/nowhere",
                                  "/?token=" + TOKEN])
def test_every_answer_forbids_framing_sniffing_and_inline_script(site, path):
    reply = call(site, "GET", path.format(curves=site.curves), bearer=None if "token" in path else TOKEN)
    policy = dict(part.strip().split(" ", 1) for part in reply.header("content-security-policy").split(";"))
    assert policy["script-src"] == "'self'"                 # no 'unsafe-inline', no 'unsafe-eval'
    assert policy["frame-ancestors"] == "'none'" and policy["object-src"] == "'none'"
    assert reply.header("x-frame-options") == "DENY"
    assert reply.header("x-content-type-options") == "nosniff"
    assert reply.header("referrer-policy") == "no-referrer"


# -- uploads ----------------------------------------------------------------------------------------------------------

def _upload(site: Site, name: str, body: bytes, chunked: bool = False) -> Reply:
    return call(site, "POST", f"/api/scripts?name={name}", origin=site.origin, body=body, chunked=chunked,
                headers=[("Content-Type", "text/x-python")])


UPLOADS = [  # (query name, body, words the one-line message must hold)
    ("model.txt", "valid", ["'model.txt'", ".py"]),
    ("model", "valid", ["'model'", ".py"]),
    ("model.py.txt", "valid", [".py"]),
    ("model.py%00.txt", "valid", [".py"]),
    ("big.py", "big", ["big.py", "over the", "limit", str(MAX_UPLOAD), "--max-upload"]),
    ("broken.py", "broken", ["broken.py:2", "SyntaxError"]),
    ("nomodel.py", "nomodel", ["nomodel.py", "no MODEL"]),
    ("noversions.py", "noversions", ["noversions.py", "no versions"]),
    ("binary.py", "binary", ["binary.py", "UTF-8"]),
    ("../escape.py", "valid", ["'../escape.py'", "plain file name"]),
    ("..%2fescape.py", "valid", ["'../escape.py'", "plain file name"]),
    ("..%2f..%2f..%2fescape.py", "valid", ["plain file name"]),
    ("sub/escape.py", "valid", ["'sub/escape.py'", "plain file name"]),
    ("%2ftmp%2fescape.py", "valid", ["'/tmp/escape.py'", "plain file name"]),
    ("..%5cescape.py", "valid", ["plain file name"]),
    ("..\\escape.py", "valid", ["plain file name"]),
    (".escape.py", "valid", ["plain file name"]),
    ("outputs%2fescape.py", "valid", ["plain file name"]),
    ("nul%00.py", "valid", ["plain file name"]),
    ("%3Cimg%20src%3Dx%20onerror%3D1%3E.py", "valid", ["plain file name"]),
    ("", "valid", [".py"]),
    ("curves.py", "valid", ["curves.py", "already exists"]),
]


@pytest.mark.parametrize("name, kind, words", UPLOADS)
def test_a_bad_upload_is_refused_with_a_clear_message_and_nothing_saved(site, name, kind, words):
    ran = site.scratch / f"ran-{kind}-{len(os.listdir(site.scratch))}"
    body = {"valid": model_script(ran_marker(ran)),
            "big": model_script(ran_marker(ran) + "\n" + "# padding\n" * 300),
            "broken": b"import os\ndef broken(:\n    pass\n",
            "nomodel": b"x = 1\n",
            "noversions": model_script().replace(b'v.add_version("only")', b""),
            "binary": b"x = '\xff\xfe'\n"}[kind]
    assert (len(body) > MAX_UPLOAD) == (kind == "big")
    before = models_dir_state(site)
    reply = _upload(site, name, body)
    assert reply.status in ((409,) if kind == "valid" and name == "curves.py" else (400, 413)), reply.body
    message = reply.json()["error"]
    assert "\n" not in message and len(message) < 300, message
    for word in words:
        assert word in message, (name, message)
    assert models_dir_state(site) == before
    for folder in (site.proj.models, site.proj.outputs, *site.proj.models.parents):
        assert not (folder / "escape.py").exists(), folder
    assert not ran.exists(), "a refused upload ran"


def test_an_oversized_upload_without_a_length_is_cut_off(site):
    ran = site.scratch / "ran-chunked"
    before = models_dir_state(site)
    reply = _upload(site, "chunked.py", model_script(ran_marker(ran) + "\n" + "# padding\n" * 300), chunked=True)
    assert reply.status in (400, 413)
    assert "over the limit" in reply.json()["error"] and str(MAX_UPLOAD) in reply.json()["error"]
    assert models_dir_state(site) == before and not ran.exists()


def test_an_uploaded_script_runs_only_in_the_probe_child(site):
    """Code at the top of an uploaded script runs where the runner would load
    it — a child process — never in the server, whether the upload is refused
    (no MODEL) or saved; nor when the pages list it afterwards."""
    refused, saved = site.scratch / "pids-refused", site.scratch / "pids-saved"
    body = model_script(ran_marker(refused)).replace(b"MODEL = M(v)", b"NOT_A_MODEL = M(v)")
    assert not refused.exists()
    reply = _upload(site, "importer_nomodel.py", body)
    assert reply.status == 400 and "no MODEL" in reply.json()["error"]
    assert not (site.proj.models / "importer_nomodel.py").exists()
    assert not saved.exists()
    reply = _upload(site, "importer.py", model_script(ran_marker(saved)))
    assert reply.status == 200, reply.body
    assert reply.json()["versions"] == ["only"]
    try:
        assert (site.proj.models / "importer.py").read_bytes() == model_script(ran_marker(saved))
        assert not [p for p in os.listdir(site.proj.models) if p.startswith(".")]   # the staging folder is gone
        for path in ("/queue", "/api/status", "/", "/compare?script=importer.py", "/api/compare?script=importer.py"):
            call(site, "GET", path, bearer=None, cookie=TOKEN)
        pids = [int(p) for p in refused.read_text().split()] + [int(p) for p in saved.read_text().split()]
        assert len(pids) >= 2   # the probe did import it: the point of probing
        assert site.proc.pid not in pids, f"the server ({site.proc.pid}) ran an uploaded script"
        assert site.proc.poll() is None
    finally:
        (site.proj.models / "importer.py").unlink()


def test_a_plain_training_script_is_saved_without_running_and_says_where_its_versions_go(site):
    """An argparse script has no MODEL: its versions are argument lines in models.config. It is saved as it
    is — never imported, not even by the probe, since importing it would train."""
    ran = site.scratch / "pids-plain"
    body = (b"import argparse, os\n"
            b"open(%r, 'a').write(str(os.getpid()) + ' ')\n" % str(ran).encode()
            + b"parser = argparse.ArgumentParser()\nparser.add_argument('--lr', type=float)\nparser.parse_args()\n")
    reply = _upload(site, "train_plain.py", body)
    try:
        assert reply.status == 200, reply.body
        answer = reply.json()
        assert answer["plain"] is True and answer["versions"] == [] and "[train_plain.py]" in answer["hint"]
        assert (site.proj.models / "train_plain.py").read_bytes() == body and not ran.exists()
        assert _upload(site, "train_plain.py", body).status == 409  # it exists now: replacing is asked for
    finally:
        (site.proj.models / "train_plain.py").unlink(missing_ok=True)


def test_a_predict_input_name_cannot_place_the_input_elsewhere(site):
    """The input's name comes from the client: only its base name is used,
    inside the prediction's own folder."""
    name = f"escape-{os.getpid()}-{time.monotonic_ns()}.txt"
    reply = call(site, "POST", f"/api/runs/{site.curves}/predict?name=..%2f..%2f..%2f..%2f..%2f..%2f..%2ftmp%2f{name}",
                 origin=site.origin, body=b"1 2\n")
    assert reply.status == 200, reply.body
    for folder in (Path("/tmp"), site.proj.models, site.proj.outputs, *site.proj.models.parents):
        assert not (folder / name).exists(), folder
    run_dir = Path(call(site, "GET", f"/api/runs/{site.curves}").json()["run_dir"])
    inputs = [Path(p["input"]) for p in call(site, "GET", f"/api/runs/{site.curves}").json()["predictions"]]
    assert inputs and all(run_dir.resolve() in p.resolve().parents for p in inputs), inputs


# -- binding ----------------------------------------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("args, words", [
    (["--host", "0.0.0.0"], ["--host 0.0.0.0", "loopback", "--allow-remote"]),
    (["--host", "0.0.0.0", "--token", TOKEN], ["--host 0.0.0.0", "--allow-remote"]),
    (["--host", "::"], ["--host ::", "--allow-remote"]),
    (["--host", "localhost.evil.example"], ["--allow-remote"]),
    (["--host", "0.0.0.0", "--allow-remote"], ["--host 0.0.0.0 --allow-remote", "--token", "MLPIPELINE_TOKEN"]),
    (["--host", "0.0.0.0", "--allow-remote", "--token", "short"], ["--token", "16 characters"]),
    (["--token", "short"], ["--token", "16 characters"]),
])
def test_serve_refuses_to_expose_the_dashboard(project, args, words):
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k != "MLPIPELINE_TOKEN"}
    done = subprocess.run([sys.executable, "-m", "mlpipeline", "serve", "--port", str(port), *args],
                          cwd=project.root, capture_output=True, text=True, timeout=20, env=env)
    assert done.returncode == 2, done.stderr
    message = done.stderr.strip()
    assert message.startswith("mlpipeline: error: ") and "\n" not in message, message
    for word in words:
        assert word in message, message
    assert "http://" not in done.stdout and "token=" not in done.stdout
    with socket.socket() as sock:   # and the port was never taken
        sock.bind(("127.0.0.1", port))
