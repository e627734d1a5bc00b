# seqshare's Airflow image: exactly the locked tree (requirements.txt), then seqshare without deps,
# with the DAGs and the plugin baked in. Used by every Airflow service of docker-compose.yaml.
#
# Why python:3.11-slim-bookworm and not apache/airflow:3.3.2-python3.11: the lock was resolved on
# Python 3.11 on Debian bookworm (the machines CI runs on), so this image holds the very tree the tests
# ran, and nothing else. The official image ships many other distributions (extra providers and their
# dependencies, pinned by Airflow's own constraints); installing our lock over it gives a mixed tree
# nobody tested. What its entrypoint adds (wait for the database, migrate, create users) the compose
# file does with healthchecks and the airflow-init service. See docs/deployment.md.
FROM python:3.11-slim-bookworm

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    AIRFLOW_HOME=/opt/airflow \
    AIRFLOW__CORE__DAGS_FOLDER=/opt/seqshare/dags \
    AIRFLOW__CORE__PLUGINS_FOLDER=/opt/seqshare/plugins \
    AIRFLOW__CORE__LOAD_EXAMPLES=False \
    HOME=/opt/airflow \
    USER=airflow

# curl for the healthchecks; tini reaps the Celery worker's children and forwards SIGTERM (warm shutdown).
RUN apt-get update \
    && apt-get install -y --no-install-recommends curl tini \
    && rm -rf /var/lib/apt/lists/*

# The lock first, in its own layer: a code change does not reinstall the locked tree.
COPY requirements.txt /opt/seqshare/requirements.txt
RUN pip install --no-cache-dir -r /opt/seqshare/requirements.txt \
    && pip check

COPY pyproject.toml README.md /opt/seqshare/src/
COPY include /opt/seqshare/src/include
RUN pip install --no-cache-dir --no-deps /opt/seqshare/src \
    && rm -rf /opt/seqshare/src \
    && seqshare --help >/dev/null

COPY dags /opt/seqshare/dags
COPY plugins /opt/seqshare/plugins

# Any UID in group 0 may write AIRFLOW_HOME (compose runs as ${AIRFLOW_UID}:0, as Airflow's own image).
RUN useradd --uid 50000 --gid 0 --home-dir /opt/airflow --no-create-home --shell /usr/sbin/nologin airflow \
    && mkdir -p /opt/airflow/logs /opt/airflow/auth \
    && chown -R 50000:0 /opt/airflow && chmod -R g+rwX /opt/airflow

USER 50000:0
WORKDIR /opt/airflow
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["airflow", "version"]
