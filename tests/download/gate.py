"""A TCP relay on 127.0.0.1 between `seqshare download` and the real server, so a test acts at an exact
point of the conversation instead of sleeping and hoping: right before a request reaches the server
(`before`: revoke a share between two files), or once some bytes of an answer have gone to the client
(`hold`: the relay stops passing the server's bytes on until released, so a test can kill the client or
replace the file mid-transfer). It passes bytes through unchanged; the server is the real one.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from urllib.parse import urlsplit


@dataclass
class Hold:
    """Stop relaying the answer to the first request whose target contains `path`, after `after` bytes."""

    path: str
    after: int
    reached: threading.Event = field(default_factory=threading.Event)  # set once the bytes have gone
    release: threading.Event = field(default_factory=threading.Event)
    armed: bool = True


class Gate:
    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self._upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self.requests: list[str] = []  # request lines, in order ("GET /api/v1/... HTTP/1.1")
        self.before: Callable[[str], None] | None = None  # called with each request line, before it goes
        self.hold: Hold | None = None
        self._closing = threading.Event()
        self._sockets: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def _spawn(self, target: Callable[..., None], *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(thread)
        thread.start()

    def start(self) -> None:
        self._spawn(self._accept)

    def _accept(self) -> None:
        while not self._closing.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(self._upstream)
            with self._lock:
                self._sockets += [client, server]
            state: dict[str, Hold | None] = {"hold": None}
            self._spawn(self._requests, client, server, state)
            self._spawn(self._answers, server, client, state)

    def _requests(self, client: socket.socket, server: socket.socket, state: dict[str, Hold | None]) -> None:
        """Client to server: whole request heads (the client sends no bodies), each seen before it goes."""
        pending = b""
        while data := _recv(client):
            pending += data
            while b"\r\n\r\n" in pending:
                head, pending = pending.split(b"\r\n\r\n", 1)
                line = head.split(b"\r\n", 1)[0].decode("latin-1")
                self.requests.append(line)
                if self.before is not None:
                    self.before(line)
                hold = self.hold
                if hold is not None and hold.armed and hold.path in line:
                    hold.armed = False
                    state["hold"] = hold
                server.sendall(head + b"\r\n\r\n")
        _shut(server)

    def _answers(self, server: socket.socket, client: socket.socket, state: dict[str, Hold | None]) -> None:
        sent_since_hold = 0
        while data := _recv(server):
            hold = state["hold"]
            if hold is not None and not hold.release.is_set():
                room = max(0, hold.after - sent_since_hold)
                if len(data) > room:
                    if room:
                        client.sendall(data[:room])
                    sent_since_hold += room
                    data = data[room:]
                    hold.reached.set()
                    hold.release.wait()
                    if self._closing.is_set():
                        break
                sent_since_hold += len(data)
            try:
                client.sendall(data)
            except OSError:
                break
        _shut(client)

    def close(self) -> None:
        self._closing.set()
        if self.hold is not None:
            self.hold.release.set()
        self._listener.close()
        with self._lock:
            for s in self._sockets:
                _shut(s)
                s.close()
        for thread in self._threads:
            thread.join(timeout=10)


def _recv(sock: socket.socket) -> bytes:
    try:
        return sock.recv(1 << 16)
    except OSError:
        return b""


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


@contextmanager
def gate(upstream: str) -> Iterator[Gate]:
    """A started relay to `upstream` (a base URL), closed (every socket and thread) when the test is done."""
    relay = Gate(upstream)
    relay.start()
    try:
        yield relay
    finally:
        relay.close()
