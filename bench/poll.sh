#!/usr/bin/env bash
# Polling benchmark: how fast Vestibule answers a pending device-code poll (RFC 8628 §3.5
# `authorization_pending`), compared with a floor, in one run.
#
#   bench/poll.sh                                   # from the repo root
#   DURATION=30s CONNECTIONS=128 THREADS=2 bench/poll.sh
#
# What it does:
#  1. `cargo build --release --bin vestibule --example poll_floor` (a no-op once built; set
#     NO_BUILD=1 to use the binaries already in target/release as they are; CARGO_TARGET_DIR
#     is honoured).
#  2. Starts target/release/vestibule on a fresh temporary data dir (SQLite), after
#     provisioning with its CLI a workspace `bench` with a polling interval of 1 s and a public
#     device client.
#  3. Starts CODES device authorizations (default 150000, `curl --parallel`). Vestibule answers
#     `slow_down` to a poll that comes less than the interval after the previous one, and wrk
#     polls as fast as it can, so one code would measure the slow_down path. Instead
#     bench/poll.lua spreads the polls round robin over the pool: each code is polled once every
#     CODES / rate seconds, which stays above the 1 s interval while Vestibule answers fewer
#     than CODES polls a second. 150000 covers twice the rates measured on the 2-core
#     development machine (60-70k polls/s) and takes about two minutes to start there (about
#     1300 a second). The answers are counted by kind (pending / slow_down / other) and
#     printed: if slow_down is more than a few %, raise CODES.
#  4. Checks that pending polls write nothing: CHECK_CODES (300) other fresh codes, each polled
#     once more than 1 s after its creation, must leave {data_dir}/vestibule.db-wal and
#     vestibule.db byte for byte unchanged.
#  5. Measures with wrk (THREADS threads, CONNECTIONS connections, DURATION): Vestibule's
#     `POST /w/bench/token`, then the floor, target/release/examples/poll_floor
#     (server/examples/poll_floor.rs: actix-web alone, the same form parsing and the same 400
#     JSON answer, no database, no middleware, the same global allocator), with the same
#     requests.
#  6. Prints req/s and p99 of both and their ratio. Target: Vestibule at >= 50 % of the floor's
#     req/s with p99 < 10 ms. The figures never fail the script; only something that cannot
#     run does. SLOW_DOWN_RUN=1 adds a run hammering one code (every poll a slow_down).
#
# Both servers and wrk share the machine: run it on an otherwise idle one (see `uptime`).
# Needs cargo, curl and wrk (installed with apt-get when missing). Ports: VESTIBULE_PORT and
# FLOOR_PORT (default: free ones picked at random). Other VESTIBULE__… settings pass through
# (e.g. VESTIBULE__DATABASE__MAX_CONNECTIONS; VESTIBULE__LOG__LEVEL defaults to warn), and
# the table says how many lines Vestibule logged during its runs.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-2}
CODES=${CODES:-150000}
CHECK_CODES=${CHECK_CODES:-300}
SLOW_DOWN_RUN=${SLOW_DOWN_RUN:-0}

log() { printf '== %s\n' "$*" >&2; }
die() { printf 'bench/poll.sh: %s\n' "$*" >&2; exit 1; }

if ! command -v wrk >/dev/null; then
  log "installing wrk"
  apt-get install -y wrk >/dev/null || die "cannot install wrk (apt-get install -y wrk)"
fi
command -v curl >/dev/null || die "curl is needed"

if [[ ${NO_BUILD:-0} != 1 ]]; then
  log "cargo build --release --bin vestibule --example poll_floor"
  cargo build --release --bin vestibule --example poll_floor
fi
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
VESTIBULE=$TARGET/release/vestibule
FLOOR=$TARGET/release/examples/poll_floor
[[ -x $VESTIBULE && -x $FLOOR ]] || die "missing $VESTIBULE or $FLOOR"
load() { uptime | sed 's/.*load average: *//'; }
LOAD_START=$(load)

TMP=$(mktemp -d "${TMPDIR:-/tmp}/vestibule-poll.XXXXXX")
PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
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
VPORT=${VESTIBULE_PORT:-$(free_port)}
FPORT=${FLOOR_PORT:-$(free_port)}
[[ $VPORT != "$FPORT" ]] || die "VESTIBULE_PORT and FLOOR_PORT are the same"
BASE=http://127.0.0.1:$VPORT

# Same configuration for the server and the CLI. The server and CLI run from $TMP so that no
# ./vestibule.toml is picked up.
DATA=$TMP/data
mkdir -p "$DATA"
unset VESTIBULE_CONFIG RUST_LOG
export VESTIBULE__SERVER__DATA_DIR=$DATA
export VESTIBULE__DATABASE__URL="sqlite://$DATA/vestibule.db?mode=rwc"
export VESTIBULE__SERVER__BIND=127.0.0.1:$VPORT
export VESTIBULE__SERVER__PUBLIC_URL=$BASE
export VESTIBULE__LOG__LEVEL=${VESTIBULE__LOG__LEVEL:-warn}
export VESTIBULE__BOOTSTRAP__ADMIN_EMAIL=bench@localhost
export VESTIBULE__BOOTSTRAP__ADMIN_PASSWORD=bench-password-not-secret
export VESTIBULE__SECURITY__DEVICE_AUTHORIZATION_LIMIT=0 # the pool is made from one address
cli() { (cd "$TMP" && "$VESTIBULE" "$@"); }

log "provisioning (data dir $DATA)"
cli workspace create bench --name Bench --polling-interval 1 --device-code-ttl 3600 >/dev/null
CLIENT_ID=$(cli client create --workspace bench --name Bench --public --grant device_code |
  grep -o '"client_id": *"[^"]*"' | head -1 | cut -d'"' -f4)
[[ -n $CLIENT_ID ]] || die "client create printed no client_id"

log "starting vestibule on $BASE"
(cd "$TMP" && exec "$VESTIBULE" serve) 2>"$TMP/vestibule.log" &
PIDS+=($!)
for _ in $(seq 100); do
  curl -fs "$BASE/readyz" >/dev/null && break
  kill -0 "${PIDS[0]}" 2>/dev/null || die "vestibule exited: $(cat "$TMP/vestibule.log")"
  sleep 0.1
done
curl -fs "$BASE/readyz" >/dev/null || die "vestibule not ready after 10 s"

# start_codes N FILE: N device authorizations, their device codes into FILE.
start_codes() {
  local n=$1 file=$2
  for _ in $(seq "$n"); do printf 'url = "%s/w/bench/device_authorization"\n' "$BASE"; done >"$TMP/urls"
  curl -s --no-progress-meter --parallel --parallel-max 32 -K "$TMP/urls" -d "client_id=$CLIENT_ID" >"$TMP/started" || true
  grep -o '"device_code":"[^"]*"' "$TMP/started" | cut -d'"' -f4 >"$file" || true
  local got
  got=$(wc -l <"$file")
  [[ $got == "$n" ]] || die "asked for $n device codes, got $got: $(head -c 300 "$TMP/started")"
}

log "starting $CHECK_CODES + $CODES device authorizations"
SECONDS=0
start_codes "$CHECK_CODES" "$TMP/check-codes"
start_codes "$CODES" "$TMP/codes"
CREATE_SECS=$SECONDS
sleep 1.5 # the authorization response counts as the first poll: let the interval pass

# A pending poll must not write. Poll every check code once and compare the database files.
fingerprint() {
  local f
  for f in "$DATA/vestibule.db" "$DATA/vestibule.db-wal"; do
    if [[ -e $f ]]; then printf '%s %s\n' "$(stat -c '%s %Y' "$f")" "$(cksum <"$f")"; else echo absent; fi
  done
}
log "checking that pending polls do not write"
BODY_PREFIX="grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Adevice_code&client_id=$CLIENT_ID"
SEP=""
while read -r code; do # one request per code; `next` separates them (a trailing one is an error)
  printf '%surl = "%s/w/bench/token"\ndata = "%s&device_code=%s"\n' "$SEP" "$BASE" "$BODY_PREFIX" "$code"
  SEP=$'next\n'
done <"$TMP/check-codes" >"$TMP/check-urls"
BEFORE=$(fingerprint)
curl -s --no-progress-meter --parallel --parallel-max 16 -K "$TMP/check-urls" >"$TMP/check-answers" || true
sleep 1
AFTER=$(fingerprint)
CHECK_PENDING=$(grep -o '"error":"authorization_pending"' "$TMP/check-answers" | wc -l)
if [[ $CHECK_PENDING != "$CHECK_CODES" ]]; then
  WROTE="unknown: only $CHECK_PENDING of $CHECK_CODES check polls were authorization_pending ($(
    grep -o '"error":"[a-z_]*"' "$TMP/check-answers" | cut -d'"' -f4 | sort | uniq -c | xargs))"
elif [[ $BEFORE == "$AFTER" ]]; then
  WROTE="no ($CHECK_CODES pending polls left vestibule.db and vestibule.db-wal unchanged)"
else
  WROTE="yes ($CHECK_CODES pending polls changed vestibule.db or vestibule.db-wal)"
fi

# run_wrk NAME URL CODES_FILE: one wrk run, its POLL line kept in $TMP/NAME.poll.
run_wrk() {
  local name=$1 url=$2 codes=$3
  log "wrk $name: -t$THREADS -c$CONNECTIONS -d$DURATION $url"
  wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --timeout 5s -s "$ROOT/bench/poll.lua" \
    "$url" -- "$codes" "$THREADS" "$CLIENT_ID" | tee "$TMP/$name.out" >&2
  grep '^POLL ' "$TMP/$name.out" >"$TMP/$name.poll" || die "wrk $name printed no result"
}
field() { grep -o "$2=[0-9.]*" "$TMP/$1.poll" | cut -d= -f2; }

LOG_BEFORE=$(wc -l <"$TMP/vestibule.log")
run_wrk vestibule "$BASE/w/bench/token" "$TMP/codes"
LOG_LINES=$(($(wc -l <"$TMP/vestibule.log") - LOG_BEFORE))

if [[ $SLOW_DOWN_RUN == 1 ]]; then
  head -1 "$TMP/codes" >"$TMP/one-code"
  sleep 1
  run_wrk slowdown "$BASE/w/bench/token" "$TMP/one-code"
fi

log "starting the floor on 127.0.0.1:$FPORT"
"$FLOOR" "127.0.0.1:$FPORT" 2>"$TMP/floor.log" &
PIDS+=($!)
for _ in $(seq 100); do
  curl -s -o /dev/null "http://127.0.0.1:$FPORT/token" -d x=1 && break
  sleep 0.1
done
curl -s -o /dev/null "http://127.0.0.1:$FPORT/token" -d x=1 || die "poll_floor did not start: $(cat "$TMP/floor.log")"
run_wrk floor "http://127.0.0.1:$FPORT/token" "$TMP/codes"

# The table.
ms() { awk -v us="$1" 'BEGIN { printf "%.2f ms", us / 1000 }'; }
row() { printf '%-26s %9s %10s %10s %9s %10s %7s\n' "$@"; }
result() { # NAME LABEL
  row "$2" "$(printf '%.0f' "$(field "$1" rps)")" "$(ms "$(field "$1" p50_us)")" "$(ms "$(field "$1" p99_us)")" \
    "$(field "$1" pending)" "$(field "$1" slow_down)" "$(field "$1" other)"
}
V_RPS=$(field vestibule rps)
F_RPS=$(field floor rps)
echo
printf 'polling benchmark: wrk -t%s -c%s -d%s; %s device codes (started in %s s), interval 1 s,\n' \
  "$THREADS" "$CONNECTIONS" "$DURATION" "$CODES" "$CREATE_SECS"
awk -v n="$CODES" -v r="$V_RPS" 'BEGIN { printf "so each code was polled every %.1f s by Vestibule'"'"'s run\n", n / r }'
printf 'load average (1, 5, 15 min): %s at the start, %s at the end; %s cores\n\n' \
  "$LOAD_START" "$(load)" "$(nproc)"
row "" "req/s" "p50" "p99" "pending" "slow_down" "other"
result floor "floor (poll_floor)"
result vestibule "vestibule, pending polls"
if [[ $SLOW_DOWN_RUN == 1 ]]; then result slowdown "vestibule, one code"; fi
echo
awk -v v="$V_RPS" -v f="$F_RPS" -v vp="$(field vestibule p99_us)" -v fp="$(field floor p99_us)" 'BEGIN {
  printf "vestibule / floor: %.1f %% of the floor'"'"'s req/s (target >= 50 %%); p99 %.2f ms vs %.2f ms (target < 10 ms)\n",
    100 * v / f, vp / 1000, fp / 1000 }'
echo "pending polls wrote to the database: $WROTE"
echo "vestibule logged $LOG_LINES lines (level $VESTIBULE__LOG__LEVEL) during its $(field vestibule requests) pending polls"
SLOW=$(field vestibule slow_down)
OTHER=$(field vestibule other)
ERRS=$(($(field vestibule socket_errors) + $(field floor socket_errors)))
if ((SLOW + OTHER + ERRS > 0)); then
  echo "note: Vestibule's run had $SLOW slow_down and $OTHER other answers, and the runs $ERRS socket errors" \
    "(raise CODES if slow_down is more than a few %)"
fi
