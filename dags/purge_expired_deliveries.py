"""
### Purge expired deliveries from the groups' FTP directories

Daily. A delivered file expires after its group's time to live (default 30 days, `SEQSHARE_TTL_DAYS`;
per group: `ttl_days` in the LIMS export); files the ledger does not know go by their modification time,
with the same TTL. Nothing newer than the TTL is touched; nothing outside a group's directory is listed;
symlinks are never followed or deleted, nor anything behind one. One mapped task per directory to purge,
named after its group: every external group's FTP directory, and every directory a group's deliveries
are still under (or were, until one time to live after the last was purged), whatever its kind today (a
group made internal, or whose directory moved, is named with that former directory). An unreachable
directory fails only its own task. Re-running is harmless; an interrupted purge finishes on the next run.
Trigger with `{"dry_run": true}` to list what would go, with sizes and ages, and delete nothing.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.sdk import Param, dag, get_current_context, task
from airflow.sdk.exceptions import AirflowFailException

SFTP_POOL = "sftp_sessions"


@dag(
    dag_id="purge_expired_deliveries",
    schedule="@daily",
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["seqshare", "delivery"],
    params={
        "dry_run": Param(False, type="boolean", description="List what would be purged; delete nothing.")
    },
    default_args={
        "owner": "seqshare",
        "retries": 2,
        "retry_delay": timedelta(minutes=5),
        "retry_exponential_backoff": True,
    },
)
def purge_expired_deliveries() -> None:
    @task
    def directories_to_purge() -> list[dict[str, str]]:
        from seqshare.errors import SeqshareError
        from seqshare.tasks import purge as tasks

        try:
            return tasks.groups_to_purge()
        except SeqshareError as exc:  # bad settings or an old schema: retrying changes nothing
            raise AirflowFailException(str(exc)) from None

    @task(map_index_template="{{ label }}", pool=SFTP_POOL)
    def purge_group(target: dict[str, str]) -> dict[str, Any]:
        from seqshare.airflow_connection import sftp_config_from_connection
        from seqshare.tasks import purge as tasks
        from seqshare.transfer import SftpRemote, is_retryable

        context = get_current_context()
        context["label"] = target["label"]
        config = sftp_config_from_connection()
        try:
            summary = tasks.purge(
                target["group"],
                target["ftp_dir"],
                connect=lambda guard: SftpRemote.connect(config, guard=guard),
                dry_run=bool(context["params"]["dry_run"]),
                actor=f"airflow:{context['dag_run'].run_id}",
            )
        except Exception as exc:
            if not is_retryable(exc):
                raise AirflowFailException(str(exc)) from exc
            raise
        if summary["failed"]:
            raise AirflowFailException(
                f"{len(summary['failed'])} files could not be deleted: {summary['failed'][:3]}"
            )
        return summary

    @task(trigger_rule="all_done")  # summarise the groups that worked even when one failed
    def report(summaries: Any, targets: list[dict[str, str]] | None) -> dict[str, Any]:
        if targets is None:  # the listing failed: nothing was purged, and the run must not look green
            raise AirflowFailException(
                "the directories to purge were not listed: see directories_to_purge's log"
            )
        groups = [s for s in (summaries or []) if s]
        for s in groups:
            print(s["line"])
        done = {(s["group"], s["group_dir"]) for s in groups}
        missing = [t["label"] for t in targets if (t["group"], t["ftp_dir"]) not in done]
        if missing:  # fail the DAG run too: a group whose purge failed must be seen
            raise AirflowFailException(f"purge failed for {', '.join(missing)}; see their tasks' logs")
        return {
            "groups": groups,
            "files": sum(s["files"] for s in groups),
            "bytes_freed": sum(s["bytes_freed"] for s in groups),
        }

    targets = directories_to_purge()
    report(purge_group.expand(target=targets), targets)


purge_expired_deliveries()
