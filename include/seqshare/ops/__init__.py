"""seqshare's ops views inside Airflow's API server (mounted by `plugins/seqshare_plugin.py`).

An edge, like the CLI: it may import Airflow (for Airflow's own authentication and its DAG runs); the data
comes from `seqshare.services`, from seqshare's database, never from Airflow's metadata database.
"""
