"""`seqshare serve` as a real process on 127.0.0.1 for the web tests: started on a free port, waited for
until `/healthz` answers, stopped (SIGINT, then kill) when the test is done. Every server a test starts,
it stops."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
from sqlalchemy import Engine

from tests.e2e.test_cli import SEQSHARE
from tests.web.conftest import database_url

# Settings of the caller's environment that would change what the server does: the tests set their own.
_WEB_SETTINGS = ("SEQSHARE_SECRET_KEY", "SEQSHARE_SSO_HEADER", "SEQSHARE_SSO_PROXIES", "FORWARDED_ALLOW_IPS")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serving(engine: Engine, *args: str, **settings: str) -> Iterator[str]:
    """`seqshare serve --port <free> *args` on `engine`'s database with `settings` in its environment;
    yields its base URL once `/healthz` answers."""
    env = {k: v for k, v in os.environ.items() if k not in _WEB_SETTINGS}
    env.update({"SEQSHARE_DATABASE_URL": database_url(engine), **settings})
    for _ in range(3):  # a port found free can be taken before the server binds it: try another
        port = free_port()
        process = subprocess.Popen(
            [SEQSHARE, "serve", "--port", str(port), *args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            for _ in range(300):
                if process.poll() is not None:
                    break
                try:
                    if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                        yield base
                        return
                except httpx.TransportError:
                    time.sleep(0.05)
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            if process.stdout:
                process.stdout.close()
    raise AssertionError("seqshare serve did not start")
