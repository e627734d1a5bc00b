"""Fixtures for the transfer layer: a `remote` parametrized over every backend, and SFTP connections to
the throwaway sshd from tests/sshd.py."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from seqshare.transfer import Guard, LocalRemote
from seqshare.transfer.remote import BaseRemote
from seqshare.transfer.sftp import SftpConfig, SftpRemote
from tests.sshd import SshdServer

BACKENDS = ["local", "sftp"]


@pytest.fixture
def sftp_config(sshd_server: SshdServer, sftp_root: Path) -> SftpConfig:
    return replace(sshd_server.sftp_config(sftp_root), io_timeout=30)


@pytest.fixture
def connect_sftp(sftp_config: SftpConfig) -> Iterator[Callable[..., SftpRemote]]:
    """connect_sftp(guard=None, **config_changes) → an open SftpRemote, closed after the test."""
    opened: list[SftpRemote] = []

    def connect(guard: Guard | None = None, **changes: object) -> SftpRemote:
        remote = SftpRemote.connect(replace(sftp_config, **changes), guard=guard)
        opened.append(remote)
        return remote

    yield connect
    for remote in opened:
        remote.close()


@pytest.fixture(params=BACKENDS)
def make_remote(request: pytest.FixtureRequest, sftp_root: Path) -> Callable[..., BaseRemote]:
    """make_remote(guard=None) → a remote of the parametrized backend over `sftp_root`."""
    if request.param == "local":
        return lambda guard=None: LocalRemote(sftp_root, guard=guard)
    connect = request.getfixturevalue("connect_sftp")
    return lambda guard=None: connect(guard=guard)


@pytest.fixture
def remote(make_remote: Callable[..., BaseRemote]) -> Iterator[BaseRemote]:
    with make_remote() as opened:
        yield opened
