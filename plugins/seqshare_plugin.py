"""seqshare inside Airflow's API server: the ops views and the Data Sharing portal.

- `/seqshare-ops/`: the ops views, behind Airflow's own sign-in and authorization; the **Deliveries**
  tab of every `distribute_run` DAG run (the frozen plan, each group's files, the ledger);
- `/seqshare/`: the Data Sharing portal (its own sign-in), with a "Data Sharing" link in Airflow's
  navigation, when `seqshare.web.app` is installed.

Thin: everything is in `seqshare.ops` (include/). Importing it opens no database.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from seqshare.ops.registration import registration

_apps, _views = registration()


class SeqsharePlugin(AirflowPlugin):
    name = "seqshare"
    fastapi_apps = _apps
    external_views = _views
