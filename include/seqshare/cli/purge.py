"""`seqshare purge`: delete expired delivered files now, as the daily DAG does."""

from __future__ import annotations

from typing import Annotated

import typer

from seqshare.cli.common import (
    JsonOpt,
    emit,
    out,
    unit_of_work,
)
from seqshare.errors import InvalidInput, quote


def purge(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="List what would go, with sizes and ages.")
    ] = False,
    group: Annotated[list[str] | None, typer.Option("--group", help="Only this group (repeatable).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Purge expired files from the groups' FTP directories now (what the daily DAG does).

    The SFTP server is the Airflow Connection `seqshare_sftp` (e.g. AIRFLOW_CONN_SEQSHARE_SFTP).
    """
    import logging

    from seqshare.airflow_connection import sftp_config_from_connection
    from seqshare.services import purge as purge_ledger
    from seqshare.tasks import purge as tasks
    from seqshare.transfer import SftpRemote

    logging.getLogger("paramiko").setLevel(logging.WARNING)  # one line per group, not per connection

    with unit_of_work() as session:  # the same directories as the daily DAG: groups_to_purge
        targets = [
            {"group": t.group, "ftp_dir": t.directory}
            for t in purge_ledger.purge_targets(session)
            if not group or t.group in group
        ]
    unknown = sorted(set(group or []) - {t["group"] for t in targets})
    if unknown:
        raise InvalidInput(
            "no FTP directory to purge for "
            f"{', '.join(quote(g) for g in unknown)} (not an external group, and no delivered files)"
        )
    config = sftp_config_from_connection()
    lines: list[str] = []
    log = lines.append if as_json else out.print
    summaries = [
        tasks.purge(
            t["group"],
            t["ftp_dir"],
            connect=lambda guard: SftpRemote.connect(config, guard=guard),
            dry_run=dry_run,
            actor="cli",
            log=log,
        )
        for t in targets
    ]
    emit({"dry_run": dry_run, "groups": summaries}, as_json, lambda: None)
