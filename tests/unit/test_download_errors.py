"""Every failure the download client meets maps to one line and one documented exit code, in one place."""

from __future__ import annotations

import errno
from pathlib import Path

import httpx
import pytest

from seqshare.cli.download import HELP, run_alone
from seqshare.download.errors import (
    EXIT_HELP,
    BadAnswer,
    BadInput,
    DiskFull,
    Exit,
    NotVisible,
    TokenRefused,
    from_os_error,
    from_response,
    from_transport,
)
from seqshare.download.progress import JsonLines
from seqshare.download.runner import download
from seqshare.download.settings import ClientSettings


def answer(status: int, **kwargs: object) -> httpx.Response:
    return httpx.Response(status, request=httpx.Request("GET", "http://s.test/x"), **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("status", "body", "error", "line"),
    [
        (401, {"detail": "token revoked"}, TokenRefused, "the server refused the token: token revoked"),
        (404, {"detail": "no such pool or project: 'SLX-9'"}, NotVisible, "no such pool or project: 'SLX-9'"),
        (422, {"detail": "target: too long"}, BadInput, "SLX-9: target: too long"),
        (500, None, BadAnswer, "SLX-9: the server answered HTTP 500 Internal Server Error"),
        (502, "<html>bad gateway\n</html>", BadAnswer, "SLX-9: the server answered HTTP 502 Bad Gateway"),
    ],
)
def test_each_answer_is_one_line_with_its_exit_code(
    status: int, body: object, error: type, line: str
) -> None:
    kwargs = {"json": body} if isinstance(body, dict) else {"text": body or ""}
    mapped = from_response(answer(status, **kwargs), "SLX-9")
    assert type(mapped) is error and str(mapped) == line


def test_a_long_or_multiline_detail_stays_one_short_line() -> None:
    mapped = from_response(answer(404, json={"detail": "a\nb" + "x" * 1000}), "t")
    assert "\n" not in str(mapped) and len(str(mapped)) < 300


def test_transport_and_disk_errors() -> None:
    refused = from_transport(httpx.ConnectError("[Errno 111] Connection refused"), "http://127.0.0.1:1")
    assert refused.exit == Exit.UNREACHABLE
    assert (
        str(refused)
        == "cannot reach the seqshare server at http://127.0.0.1:1: [Errno 111] Connection refused"
    )
    full = from_os_error(OSError(errno.ENOSPC, "No space left on device"), "/d/f")
    assert type(full) is DiskFull and full.exit == Exit.DISK_FULL and "run again to resume" in str(full)
    denied = from_os_error(OSError(errno.EACCES, "Permission denied"), "/d/f")
    assert type(denied) is BadInput and str(denied) == "cannot write '/d/f': Permission denied"


def test_the_exit_codes_are_distinct_and_all_in_the_help() -> None:
    codes = [int(code) for code in Exit]
    assert len(set(codes)) == len(codes) and 2 not in codes  # 2 stays the CLI's "a bug"
    for code in codes:
        assert f"{code} " in EXIT_HELP
    assert EXIT_HELP in HELP


def test_a_dest_that_is_a_file_is_bad_input_before_any_request(tmp_path: Path) -> None:
    dest = tmp_path / "file"
    dest.write_text("x")
    with pytest.raises(BadInput, match="is not a folder"):
        download(
            ClientSettings("http://127.0.0.1:1", "t", "test"),
            target="SLX-1",
            run=None,
            pattern=None,
            dest=dest,
            parallel=1,
            events=JsonLines(),
        )


def test_the_fast_entry_point_answers_usage_errors_as_the_admin_cli_does(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert run_alone(["SLX-1", "--token", "x"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: seqshare download: No such option: --token")
    assert err.endswith("(see `seqshare download --help`)\n") and err.count("\n") == 1
    assert run_alone([]) == 1
    assert "Missing argument 'POOL_OR_PROJECT'" in capsys.readouterr().err
    assert run_alone(["--help"]) == 0
    assert "Exit codes: 0 all files present and verified" in " ".join(capsys.readouterr().out.split())


def test_the_runner_keeps_the_jobs_order_and_raises_a_bug_from_a_thread(tmp_path: Path) -> None:
    import threading

    from seqshare.download.fetch import Outcome, Status
    from seqshare.download.plan import make_plan, parse_listing
    from seqshare.download.runner import _on_threads

    entries = [
        {"run_id": "R", "pool": "P", "path": f"R/P/f{i}", "size": 1, "md5": None, "url": f"/u/{i}"}
        for i in range(9)
    ]
    jobs = make_plan(parse_listing({"project": "X", "files": entries}), tmp_path, None, "P")
    done = _on_threads(lambda job: Outcome(job, Status.DONE), jobs, 4, threading.Event())
    assert [o.job for o in done] == jobs

    def buggy(job: object) -> Outcome:
        raise ZeroDivisionError("a bug")

    with pytest.raises(ZeroDivisionError):
        _on_threads(buggy, jobs, 3, threading.Event())
