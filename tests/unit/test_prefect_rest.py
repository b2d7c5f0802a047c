"""scripts/lib/prefect_rest: the tests' and benchmarks' client retries a busy server
(429/503) on its schedule, and gives up with the server's error after its attempts."""

from __future__ import annotations

import json
import threading
import urllib.error
from http.server import BaseHTTPRequestHandler, HTTPServer

import prefect_rest
import pytest
from prefect_rest import PrefectRest


class Busy:
    """A loopback HTTP server that answers 503 `busy` times, then 200 with a JSON body."""

    def __init__(self, busy: int) -> None:
        self.busy, self.calls = busy, 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's name)
                outer.calls += 1
                code = 503 if outer.calls <= outer.busy else 200
                body = json.dumps({"ok": True}).encode()
                self.send_response(code)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/api"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def waits(monkeypatch):
    slept: list[float] = []
    monkeypatch.setattr(prefect_rest.time, "sleep", slept.append)
    return slept


def test_default_schedule_retries_503_then_returns_the_answer(waits, capsys):
    server = Busy(busy=3)
    try:
        assert PrefectRest(server.url)("/health") == {"ok": True}
    finally:
        server.close()
    assert server.calls == 4
    assert waits == [0.5, 1.0, 2.0]
    assert capsys.readouterr().err == ""  # silent unless asked


def test_molecule_schedule_waits_like_the_kits_clients_with_jitter_and_says_so(waits, capsys):
    """molecule/prefect_api.py's client: 7 retries, 2 to 128 s plus up to 20%, then the 503."""
    server = Busy(busy=8)
    try:
        with pytest.raises(urllib.error.HTTPError) as failed:
            PrefectRest(server.url, attempts=8, base=2, jitter=0.2, say_retries=True)("/health")
    finally:
        server.close()
    assert failed.value.code == 503 and server.calls == 8
    assert len(waits) == 7
    for n, wait in enumerate(waits):
        assert 2 * 2**n <= wait <= 2 * 2**n * 1.2, waits
    said = capsys.readouterr().err.splitlines()
    assert said[0].startswith("prefect_rest: GET /health: HTTP 503; retry 1 of 7 in ")
    assert len(said) == 7 and said[-1].startswith("prefect_rest: GET /health: HTTP 503; retry 7 of 7 in ")
