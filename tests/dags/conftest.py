"""DAG tests: a temporary Airflow home and metadata database come from tests/airflow_env.py (a plugin)."""
