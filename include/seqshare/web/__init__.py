"""The web app: the internal API (and later the Data Sharing page), served alone or inside Airflow."""
