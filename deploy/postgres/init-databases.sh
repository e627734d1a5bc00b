#!/usr/bin/env bash
# Runs once, when the postgres service starts on an empty data volume (/docker-entrypoint-initdb.d).
# Two databases, two owners: Airflow's metadata and seqshare's own never share a database or a role,
# and neither role may connect to the other's database (a task cannot reach Airflow's metadata through
# seqshare's URL, nor the reverse). Passwords come from .env through the service's environment.
set -euo pipefail

: "${AIRFLOW_DB:=airflow}" "${AIRFLOW_DB_USER:=airflow}" "${SEQSHARE_DB:=seqshare}" "${SEQSHARE_DB_USER:=seqshare}"
: "${PG_AIRFLOW_PASSWORD:?set PG_AIRFLOW_PASSWORD in .env}"
: "${PG_SEQSHARE_PASSWORD:?set PG_SEQSHARE_PASSWORD in .env}"

psql -v ON_ERROR_STOP=1 --no-psqlrc --username "${POSTGRES_USER:-postgres}" --dbname "${POSTGRES_DB:-postgres}" \
  -v airflow_db="$AIRFLOW_DB" -v airflow_user="$AIRFLOW_DB_USER" -v airflow_pw="$PG_AIRFLOW_PASSWORD" \
  -v seqshare_db="$SEQSHARE_DB" -v seqshare_user="$SEQSHARE_DB_USER" -v seqshare_pw="$PG_SEQSHARE_PASSWORD" \
  <<'SQL'
CREATE ROLE :"airflow_user" LOGIN PASSWORD :'airflow_pw';
CREATE ROLE :"seqshare_user" LOGIN PASSWORD :'seqshare_pw';
CREATE DATABASE :"airflow_db" OWNER :"airflow_user";
CREATE DATABASE :"seqshare_db" OWNER :"seqshare_user";
REVOKE ALL ON DATABASE :"airflow_db" FROM PUBLIC;
REVOKE ALL ON DATABASE :"seqshare_db" FROM PUBLIC;
SQL
echo "init-databases: created $AIRFLOW_DB (owner $AIRFLOW_DB_USER) and $SEQSHARE_DB (owner $SEQSHARE_DB_USER)"
