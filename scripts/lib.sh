# Shell functions shared by scripts/bootstrap, scripts/test and scripts/demo (sourced, not run).
# shellcheck shell=bash
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${SEQSHARE_VENV:-$ROOT/.venv}

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    echo "need root to run: $* (install sudo or run as root)" >&2; return 1; fi
}

apt_updated=""
need_apt() {  # install the Debian packages among "$@" that are not installed yet
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  say "installing Debian packages: ${missing[*]}"
  if [ -z "$apt_updated" ]; then as_root apt-get update -qq; apt_updated=1; fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}


setup_venv() {  # Python >= 3.11, a venv with the locked requirements, seqshare installed (editable)
  local PY=${PYTHON:-python3}
  if ! command -v "$PY" >/dev/null; then need_apt python3; fi
  "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
    echo "seqshare needs Python 3.11 or newer; $PY is $("$PY" --version)" >&2; return 1; }
  # Debian's python3 needs python3-venv for `-m venv`; a self-built Python (pyenv) has it already.
  if ! "$PY" -c 'import ensurepip, venv' 2>/dev/null; then need_apt python3-venv; fi
  local stamp="$VENV/.seqshare-installed" want
  want=$(cat "$ROOT/requirements.txt" "$ROOT/pyproject.toml" | sha256sum | cut -d' ' -f1)
  if [ ! -x "$VENV/bin/python" ]; then
    say "creating the virtual environment $VENV"
    "$PY" -m venv "$VENV"
  fi
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    say "installing the locked Python requirements (requirements.txt)"
    "$VENV/bin/python" -m pip install -q --upgrade pip
    "$VENV/bin/python" -m pip install -q -r "$ROOT/requirements.txt"
    "$VENV/bin/python" -m pip install -q --no-deps -e "$ROOT"
    echo "$want" > "$stamp"
  fi
}

# ensure_postgres: make sure a PostgreSQL server answers at 127.0.0.1:5432 for user postgres
# without a password (trust), as the tests expect. Uses a running server as it is; starts an installed
# cluster that is down; installs Debian's postgresql when there is none (and then allows trust for
# postgres on 127.0.0.1 only, in the cluster it just created).
PG_HOST=127.0.0.1
PG_PORT=${PG_PORT:-5432}

pg_answers() { psql -h "$PG_HOST" -p "$PG_PORT" -U postgres -d postgres -tAc 'select 1' >/dev/null 2>&1; }

ensure_postgres() {
  command -v psql >/dev/null || need_apt postgresql-client
  pg_answers && return 0
  local fresh=""
  if ! command -v pg_lsclusters >/dev/null || [ -z "$(pg_lsclusters -h 2>/dev/null)" ]; then
    need_apt postgresql
    fresh=1
  fi
  local ver cluster
  read -r ver cluster _ < <(pg_lsclusters -h | head -n1)
  if [ -n "$fresh" ]; then
    local hba="/etc/postgresql/$ver/$cluster/pg_hba.conf"
    grep -q '^host all postgres 127.0.0.1/32 trust' "$hba" ||
      as_root sed -i '1i host all postgres 127.0.0.1/32 trust' "$hba"
  fi
  say "starting PostgreSQL cluster $ver/$cluster"
  as_root pg_ctlcluster --skip-systemctl-redirect "$ver" "$cluster" start 2>/dev/null ||
    as_root pg_ctlcluster --skip-systemctl-redirect "$ver" "$cluster" reload || true
  for _ in $(seq 1 30); do pg_answers && return 0; sleep 1; done
  echo "PostgreSQL does not answer at $PG_HOST:$PG_PORT as user postgres without a password." >&2
  echo "Allow it (pg_hba.conf: 'host all postgres 127.0.0.1/32 trust') or set SEQSHARE_TEST_PG_ADMIN_URL." >&2
  return 1
}
