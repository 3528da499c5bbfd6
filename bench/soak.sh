#!/usr/bin/env bash
# Soak: minutes of many devices polling and people approving at /activate, first against one
# instance on SQLite, then against two instances sharing one PostgreSQL database; each run
# must end with zero errors and zero lost approvals, and reports p50/p99 per request, the
# servers' memory at 1 minute and at the end, and the load averages.
#
#   bench/soak.sh                                   # from the repo root; 3 minutes per backend
#   DURATION=10m DEVICES=5000 APPROVALS_PER_SEC=40 bench/soak.sh
#   BACKENDS=sqlite bench/soak.sh                   # or BACKENDS=postgres: one backend only
#
# What it does:
#  1. `cargo build --release --bin vestibule --example soak` (a no-op once built; NO_BUILD=1
#     uses the binaries in target/release as they are; CARGO_TARGET_DIR is honoured).
#  2. For each backend: provisions with the `vestibule` CLI a workspace `soak` (polling
#     interval POLL_INTERVAL, 5 s; device code lifetime DEVICE_CODE_TTL, 600 s), a public
#     client with the device_code grant and PEOPLE (30) users, then starts the instance(s) on
#     fresh temporary data dirs:
#     - sqlite: one instance, its database in its data dir;
#     - postgres: two instances on one fresh database `vestibule_soak_<pid>` on
#       SOAK_POSTGRES_URL (postgres://postgres@127.0.0.1:5432), created here and dropped on
#       exit; both get the same VESTIBULE__SECURITY__MASTER_KEY and the same public URL (the
#       first instance's, as behind a load balancer).
#  3. Runs target/release/examples/soak (server/examples/soak.rs) against them for DURATION
#     (3m): DEVICES (2000) devices run the device grant over and over, PEOPLE people approve
#     their codes at APPROVALS_PER_SEC (20) in all, every request to the next instance round
#     robin; then nobody approves and the approved devices have DRAIN (30s) to get their
#     tokens. It samples the instances' VmRSS every 5 s.
#  4. Prints each run's figures, the load averages and how many lines the instances logged.
#     The exit status is 1 when a run had errors or lost approvals; speed and memory figures
#     never fail it.
#
# Every device and person comes from 127.0.0.1, so the per-address budgets are lifted for the
# run: device authorization requests (VESTIBULE__SECURITY__DEVICE_AUTHORIZATION_LIMIT=0, off)
# and user codes entered (VESTIBULE__SECURITY__USER_CODE_MAX_FAILURES=1000000: each code counts
# before it is found, so many people entering codes at once would pass a budget of 10). Other
# VESTIBULE__… settings pass through (VESTIBULE__LOG__LEVEL defaults to warn). The soak and
# the servers share the machine: run it on an otherwise idle one (see `uptime`). Needs cargo,
# curl, and psql for the PostgreSQL run.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

DURATION=${DURATION:-3m}
DEVICES=${DEVICES:-2000}
APPROVALS_PER_SEC=${APPROVALS_PER_SEC:-20}
PEOPLE=${PEOPLE:-30}
DRAIN=${DRAIN:-30s}
POLL_INTERVAL=${POLL_INTERVAL:-5}
DEVICE_CODE_TTL=${DEVICE_CODE_TTL:-600}
BACKENDS=${BACKENDS:-sqlite postgres}
SOAK_POSTGRES_URL=${SOAK_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432}

log() { printf '== %s\n' "$*" >&2; }
die() { printf 'bench/soak.sh: %s\n' "$*" >&2; exit 1; }

command -v curl >/dev/null || die "curl is needed"
for backend in $BACKENDS; do
  case $backend in
    sqlite) ;;
    postgres) command -v psql >/dev/null || die "psql is needed for the PostgreSQL run" ;;
    *) die "unknown backend $backend in BACKENDS (sqlite, postgres)" ;;
  esac
done

if [[ ${NO_BUILD:-0} != 1 ]]; then
  log "cargo build --release --bin vestibule --example soak"
  cargo build --release --bin vestibule --example soak
fi
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
VESTIBULE=$TARGET/release/vestibule
SOAK=$TARGET/release/examples/soak
[[ -x $VESTIBULE && -x $SOAK ]] || die "missing $VESTIBULE or $SOAK"
load() { uptime | sed 's/.*load average: *//'; }

TMP=$(mktemp -d "${TMPDIR:-/tmp}/vestibule-soak.XXXXXX")
PIDS=()
DATABASE=""
stop_instances() {
  local pid
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  PIDS=()
}
cleanup() {
  stop_instances
  if [[ -n $DATABASE ]]; then
    psql -q "$SOAK_POSTGRES_URL/postgres" -c "DROP DATABASE IF EXISTS $DATABASE WITH (FORCE)" >/dev/null ||
      printf 'bench/soak.sh: could not drop the database %s\n' "$DATABASE" >&2
  fi
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
free_port() {
  local p
  for _ in $(seq 50); do
    p=$((20000 + RANDOM % 30000))
    port_free "$p" && { echo "$p"; return; }
  done
  die "no free port found"
}

# The same for every instance and the CLI. Everything runs from a data dir of $TMP, so that no
# ./vestibule.toml is picked up.
unset VESTIBULE_CONFIG RUST_LOG
export VESTIBULE__LOG__LEVEL=${VESTIBULE__LOG__LEVEL:-warn}
export VESTIBULE__BOOTSTRAP__ADMIN_EMAIL=bench@localhost
export VESTIBULE__BOOTSTRAP__ADMIN_PASSWORD=bench-password-not-secret
export VESTIBULE__SECURITY__DEVICE_AUTHORIZATION_LIMIT=0
export VESTIBULE__SECURITY__USER_CODE_MAX_FAILURES=${VESTIBULE__SECURITY__USER_CODE_MAX_FAILURES:-1000000}
export SOAK_PASSWORD=soak-password-not-secret

# instance_env NAME PORT: the settings of instance NAME (its data dir under $TMP).
instance_env() {
  export VESTIBULE__SERVER__DATA_DIR=$TMP/$1
  export VESTIBULE__SERVER__BIND=127.0.0.1:$2
  mkdir -p "$TMP/$1"
}
cli() { (cd "$VESTIBULE__SERVER__DATA_DIR" && "$VESTIBULE" "$@"); }

# provision: the workspace, the client (its id into $CLIENT_ID) and the people.
provision() {
  cli workspace create soak --name Soak --polling-interval "$POLL_INTERVAL" \
    --device-code-ttl "$DEVICE_CODE_TTL" >/dev/null
  CLIENT_ID=$(cli client create --workspace soak --name "Soak TV" --public --grant device_code |
    grep -o '"client_id": *"[^"]*"' | head -1 | cut -d'"' -f4)
  [[ -n $CLIENT_ID ]] || die "client create printed no client_id"
  local i
  for i in $(seq "$PEOPLE"); do
    printf '%s' "$SOAK_PASSWORD" |
      cli user create --workspace soak --username "soak-person-$i" --password-stdin >/dev/null
  done
}

# start NAME PORT: starts instance NAME (its settings already exported) and waits until ready.
start() {
  local name=$1 base=http://127.0.0.1:$2 pid
  (cd "$VESTIBULE__SERVER__DATA_DIR" && exec "$VESTIBULE" serve) 2>"$TMP/$name.log" &
  pid=$!
  PIDS+=("$pid")
  for _ in $(seq 100); do
    curl -fs "$base/readyz" >/dev/null && return
    kill -0 "$pid" 2>/dev/null || die "$name exited: $(cat "$TMP/$name.log")"
    sleep 0.1
  done
  die "$name not ready after 10 s"
}

FAILED=()
# soak LABEL INSTANCE...: runs the driver against the running instances (named INSTANCE, on
# the ports in $PORT_<INSTANCE>), its figures into $TMP/LABEL.out.
soak() {
  local label=$1 name port args=() pid_i=0 lines=0 status=0
  shift
  for name in "$@"; do
    port=PORT_$name
    args+=(--base "http://127.0.0.1:${!port}" --pid "${PIDS[pid_i]}")
    pid_i=$((pid_i + 1))
  done
  local before=()
  for name in "$@"; do before+=("$(wc -l <"$TMP/$name.log")"); done
  local load_start
  load_start=$(load)
  log "soak $label: $DURATION, $DEVICES devices, $PEOPLE people, $APPROVALS_PER_SEC approvals/s"
  "$SOAK" "${args[@]}" --label "$label" --workspace soak --client-id "$CLIENT_ID" \
    --user-prefix soak-person- --people "$PEOPLE" --devices "$DEVICES" \
    --approvals-per-sec "$APPROVALS_PER_SEC" --duration "$DURATION" --drain "$DRAIN" \
    >"$TMP/$label.out" || status=$?
  {
    printf 'load average (1, 5, 15 min): %s at the start, %s at the end; %s cores\n' \
      "$load_start" "$(load)" "$(nproc)"
    local i=0
    for name in "$@"; do
      lines=$(($(wc -l <"$TMP/$name.log") - before[i]))
      printf 'instance %s logged %s lines (level %s) during the run\n' "$name" "$lines" "$VESTIBULE__LOG__LEVEL"
      if ((status != 0 && lines > 0)); then
        printf '  its last lines:\n'
        tail -n 20 "$TMP/$name.log" | sed 's/^/    /'
      fi
      i=$((i + 1))
    done
  } >>"$TMP/$label.out"
  cat "$TMP/$label.out"
  ((status == 0)) || FAILED+=("$label (exit status $status)")
}

master_key() { head -c 32 /dev/urandom | base64 | tr -d '\n'; }

for backend in $BACKENDS; do
  case $backend in
    sqlite)
      PORT_sqlite=$(free_port)
      instance_env sqlite "$PORT_sqlite"
      export VESTIBULE__SERVER__PUBLIC_URL=http://127.0.0.1:$PORT_sqlite
      export VESTIBULE__DATABASE__URL="sqlite://$TMP/sqlite/vestibule.db?mode=rwc"
      export VESTIBULE__SECURITY__MASTER_KEY
      VESTIBULE__SECURITY__MASTER_KEY=$(master_key)
      log "sqlite: provisioning and starting one instance on port $PORT_sqlite"
      provision
      start sqlite "$PORT_sqlite"
      soak sqlite sqlite
      stop_instances
      ;;
    postgres)
      DATABASE=vestibule_soak_$$
      psql -q "$SOAK_POSTGRES_URL/postgres" -c "CREATE DATABASE $DATABASE" >/dev/null ||
        die "cannot create the database $DATABASE on $SOAK_POSTGRES_URL"
      PORT_pg1=$(free_port)
      PORT_pg2=$(free_port)
      [[ $PORT_pg1 != "$PORT_pg2" ]] || PORT_pg2=$(free_port)
      export VESTIBULE__SERVER__PUBLIC_URL=http://127.0.0.1:$PORT_pg1
      export VESTIBULE__DATABASE__URL=$SOAK_POSTGRES_URL/$DATABASE
      export VESTIBULE__SECURITY__MASTER_KEY
      VESTIBULE__SECURITY__MASTER_KEY=$(master_key)
      log "postgres: provisioning $DATABASE and starting two instances on ports $PORT_pg1 and $PORT_pg2"
      instance_env pg1 "$PORT_pg1"
      provision
      start pg1 "$PORT_pg1"
      instance_env pg2 "$PORT_pg2"
      start pg2 "$PORT_pg2"
      soak postgres pg1 pg2
      stop_instances
      ;;
  esac
done

if ((${#FAILED[@]} > 0)); then
  printf '\nbench/soak.sh: errors or lost approvals in: %s\n' "${FAILED[*]}" >&2
  exit 1
fi
