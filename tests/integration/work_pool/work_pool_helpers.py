"""Helpers of the prefect_work_pool tests: a recording proxy, the Prefect API read
directly, and runners for `ansible`/`ansible-playbook` (importable by the tests and the
conftest of this directory)."""

from __future__ import annotations

import http.client
import json
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parents[3]
# The checkout as the collection prefect_fleet.fleet (linked by scripts/bootstrap).
COLLECTIONS = REPO / ".cache" / "collections"
PLAYBOOK = REPO / "playbooks" / "work_pools.yml"
VENV_BIN = REPO / ".venv" / "bin"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- a recording proxy --------------------------------------------------------


@dataclass
class Request:
    method: str
    path: str
    status: int
    authorization: str | None
    t: float = 0.0  # when the proxy got it (time.time())

    @property
    def write(self) -> bool:
        """Whether it can change something: anything but GET and the read-only POST .../filter."""
        return self.method != "GET" and not self.path.endswith("/filter")


@dataclass
class Recorder:
    """An HTTP proxy on 127.0.0.1 in front of the Prefect server that logs every request."""

    upstream: str  # http://127.0.0.1:PORT
    requests: list[Request] = field(default_factory=list)
    inject: list[int] = field(default_factory=list)  # statuses to answer the next requests with
    answer_all: int | None = None  # answer every request with this status (a server that rejects keys)
    url: str = ""
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> Recorder:
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep pytest output clean
                pass

            def _handle(self):
                received = time.time()
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                with recorder._lock:
                    injected = recorder.answer_all or (recorder.inject.pop(0) if recorder.inject else None)
                if injected:
                    status, headers = injected, {"Content-Type": "application/json"}
                    data = json.dumps({"detail": http.client.responses.get(injected, "error")}).encode()
                else:
                    up = urlsplit(recorder.upstream)
                    conn = http.client.HTTPConnection(up.hostname, up.port, timeout=60)
                    fwd = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
                    conn.request(self.command, self.path, body=body, headers=fwd)
                    resp = conn.getresponse()
                    status, data = resp.status, resp.read()
                    headers = {k: v for k, v in resp.getheaders()
                               if k.lower() not in ("transfer-encoding", "connection", "content-length")}
                    conn.close()
                with recorder._lock:
                    recorder.requests.append(
                        Request(self.command, self.path, status, self.headers.get("Authorization"), received))
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = _handle

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        self.url = "http://127.0.0.1:%d/api" % self._server.server_address[1]
        return self

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()

    def clear(self) -> None:
        with self._lock:
            self.requests.clear()
            self.inject.clear()

    def writes(self) -> list[Request]:
        """Requests that can change something: anything but GET and the read-only POST .../filter."""
        return [r for r in self.requests if r.write]


# -- the Prefect API, read directly (not through the proxy) ------------------


VOLATILE = {"status", "last_polled", "active_slots", "denied_slots", "avg_slot_occupancy_seconds"}


@dataclass
class Api:
    url: str

    def call(self, method: str, path: str, body: object = None) -> object:
        req = urllib.request.Request(
            self.url + path, method=method, data=None if body is None else json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return None
            raise
        return json.loads(raw) if raw else None

    def pool(self, name: str) -> dict | None:
        return self.call("GET", "/work_pools/" + urllib.parse.quote(name, safe=""))

    def pools(self) -> dict[str, dict]:
        return {p["name"]: p for p in self.call("POST", "/work_pools/filter", {})}

    def queues(self, pool: str) -> dict[str, dict]:
        return {q["name"]: q for q in self.call("POST", "/work_pools/%s/queues/filter" % pool, {})}

    def limit(self, name: str) -> dict | None:
        return self.call("GET", "/v2/concurrency_limits/" + name)

    def limits(self) -> dict[str, dict]:
        return {lim["name"]: lim for lim in self.call("POST", "/v2/concurrency_limits/filter", {})}

    def snapshot(self) -> dict:
        """Everything the modules manage, to compare before and after a run.

        Fields the server changes on its own (worker polls, slot counts) are left out.
        """
        def stable(objects: dict[str, dict]) -> dict[str, dict]:
            return {name: {k: v for k, v in obj.items() if k not in VOLATILE} for name, obj in objects.items()}

        pools = self.pools()
        return {
            "pools": stable(pools),
            "queues": {name: stable(self.queues(name)) for name in pools},
            "limits": stable(self.limits()),
        }

    def default_template(self, worker_type: str = "process") -> dict:
        view = self.call("GET", "/collections/views/aggregate-worker-metadata")
        for collection in view.values():
            for worker in collection.values():
                if worker.get("type") == worker_type:
                    return worker["default_base_job_configuration"]
        raise KeyError(worker_type)


# -- running Ansible ------------------------------------------------------------


@dataclass
class Run:
    """One ansible or ansible-playbook run: exit code, output and its parsed JSON."""

    rc: int
    stdout: str
    stderr: str
    data: dict | None

    @property
    def results(self) -> list[dict]:
        """Each task's result on localhost, loop items flattened, in order."""
        out = []
        for play in (self.data or {}).get("plays", []):
            for task in play["tasks"]:
                res = task["hosts"].get("localhost")
                if res is None:
                    continue
                res = dict(res, task=task["task"]["name"])
                if "results" in res and isinstance(res["results"], list):
                    out.extend(dict(r, task=res["task"]) for r in res["results"])
                else:
                    out.append(res)
        return out

    @property
    def result(self) -> dict:
        """The result of an ad-hoc module run."""
        return self.results[-1]

    @property
    def failures(self) -> list[dict]:
        return [r for r in self.results if r.get("failed")]

    @property
    def changed(self) -> int:
        return (self.data or {}).get("stats", {}).get("localhost", {}).get("changed", 0)


def _run(cmd: list[str], env: dict[str, str], timeout: float = 120) -> Run:
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout, cwd=REPO)
    data = None
    if env.get("ANSIBLE_STDOUT_CALLBACK", "ansible.posix.json") == "ansible.posix.json":
        try:
            data = json.loads(proc.stdout)
        except ValueError:
            pass
    return Run(proc.returncode, proc.stdout, proc.stderr, data)


@dataclass
class Step:
    """One task of a steps() playbook: its result and the requests made while it ran."""

    result: dict
    requests: list[Request]

    @property
    def writes(self) -> list[tuple[str, str]]:
        return [(r.method, r.path) for r in self.requests if r.write]

    @property
    def changed(self) -> bool:
        return bool(self.result.get("changed"))


def run_steps(ansible_env: dict[str, str], proxy: Recorder, directory: Path, *tasks: dict) -> list[Step]:
    """Run tasks one after the other in ONE ansible-playbook run (cheaper than one
    `ansible -m` each) and give each its result and the proxy requests made during it."""
    play = {"hosts": "localhost", "gather_facts": False, "tasks": [
        {"name": "step %d" % i, t["module"]: t["args"], "check_mode": t["check"], "diff": t["diff"],
         "ignore_errors": True}
        for i, t in enumerate(tasks)
    ]}
    path = directory / ("steps-%s.json" % uuid.uuid4().hex[:6])
    path.write_text(json.dumps([play]))
    proxy.clear()
    done = _run(["ansible-playbook", str(path)], ansible_env)
    assert done.data, done.stdout[-2000:] + done.stderr[-2000:]
    out = []
    for t in done.data["plays"][0]["tasks"]:
        start, end = (datetime.fromisoformat(t["task"]["duration"][k]).timestamp() for k in ("start", "end"))
        out.append(Step(t["hosts"]["localhost"], [r for r in proxy.requests if start <= r.t <= end]))
    assert len(out) == len(tasks), done.stdout[-2000:]
    return out


def task(module: str, check: bool = False, diff: bool = False, **args) -> dict:
    """A task for the steps() fixture: the collection's module with its args, in check mode
    and/or with --diff."""
    return {"module": f"prefect_fleet.fleet.{module}", "args": args, "check": check, "diff": diff}


def raw(value):
    """Protect Prefect's {{ placeholders }} from Ansible's templating of module args."""
    if isinstance(value, dict):
        return {k: raw(v) for k, v in value.items()}
    if isinstance(value, list):
        return [raw(v) for v in value]
    if isinstance(value, str) and "{{" in value:
        return "{%% raw %%}%s{%% endraw %%}" % value
    return value
