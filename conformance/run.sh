#!/usr/bin/env bash
# Run the ETSI NGSI-LD conformance suite (Robot Framework) against Calanque, offline.
#
#   conformance/run.sh [FOLDER...] [-- ROBOT-OPTION...]
#
# FOLDERs are relative to the suite's root (default: the three folders below).
# Everything after `--` goes to robot as is (e.g. `-- --test '001_01*'` or `-- --dryrun`).
# See conformance/README.md for the environment variables and what gets patched.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)

conf_home=${CALANQUE_CONFORMANCE_HOME:-$HOME/.cache/calanque-conformance}
suite_src=${ETSI_SUITE_DIR:-/work/etsi}
suite_git=${ETSI_SUITE_GIT:-/work/.mirror/marek-mraz+ngsi-ld-test-suite/repo}
suite_ref=${ETSI_SUITE_REF:-HEAD}
port=${PORT:-1026}
calanque_bin=${CALANQUE_BIN:-$repo/target/release/calanque}
external_broker=${CALANQUE_EXTERNAL:-0}
results_dir=${CONFORMANCE_RESULTS_DIR:-$conf_home/results/$(date +%Y%m%d-%H%M%S)}
test_timeout=${CONFORMANCE_TEST_TIMEOUT:-120s}
request_timeout=${CONFORMANCE_REQUEST_TIMEOUT:-30}
startup_timeout=${CONFORMANCE_STARTUP_TIMEOUT:-60}
# Tags of features out of scope (context sources, distributed operations, MQTT).
# Set CONFORMANCE_EXCLUDE_TAGS="" to run everything in the chosen folders.
exclude_tags=${CONFORMANCE_EXCLUDE_TAGS-dist-ops csr-* csrsub-* sub-mqtt-notification}
keep_workdir=${CONFORMANCE_KEEP_WORKDIR:-0}
verbose=${CONFORMANCE_VERBOSE:-0}
core_context=https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.8.jsonld
default_folders=(
  TP/NGSI-LD/ContextInformation/Provision
  TP/NGSI-LD/jsonldContext
  TP/NGSI-LD/CommonBehaviours
)

log() { printf '[conformance] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 2; }

# ---- arguments -------------------------------------------------------------
folders=()
robot_extra=()
while [ $# -gt 0 ]; do
  case $1 in
    -h|--help) sed -n '2,8p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    --) shift; robot_extra=("$@"); break ;;
    *) folders+=("$1"); shift ;;
  esac
done
[ ${#folders[@]} -gt 0 ] || folders=("${default_folders[@]}")

# ---- the broker binary (checked first: no point preparing a run without it)
if [ "$external_broker" != 1 ] && [ ! -x "$calanque_bin" ]; then
  if [ -z "${CALANQUE_BIN:-}" ]; then
    log "$calanque_bin is missing; running cargo build --release"
    (cd "$repo" && cargo build --release) || die "cargo build --release failed"
  fi
  [ -x "$calanque_bin" ] || die "broker binary $calanque_bin not found (set CALANQUE_BIN)"
fi

# ---- cleanup: stop whatever this script started ---------------------------
broker_pid=
ctx_pid=
viewer_pid=
workdir=
stop_pid() {
  local pid=$1 name=$2
  [ -n "$pid" ] || return 0
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 50); do
    kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
    sleep 0.1
  done
  log "$name (pid $pid) ignored SIGTERM; killing it"
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  [ -z "$viewer_pid" ] || kill "$viewer_pid" 2>/dev/null || true
  stop_pid "$broker_pid" broker
  stop_pid "$ctx_pid" "context server"
  if [ -n "$workdir" ] && [ -d "$workdir" ]; then
    if [ "$keep_workdir" = 1 ]; then
      log "kept work dir $workdir"
    else
      rm -rf "$workdir"
    fi
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT
trap 'log "terminated"; exit 143' TERM

# ---- (a) Python venv with the suite's requirements ------------------------
pick_python() {
  local p
  for p in ${CALANQUE_PYTHON:-} python3.12 python3.11 python3; do
    if command -v "$p" >/dev/null 2>&1 && "$p" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
      echo "$p"; return 0
    fi
  done
  return 1
}

mkdir -p "$conf_home" "$results_dir"
workdir=$(mktemp -d "${TMPDIR:-/tmp}/calanque-conformance.XXXXXX")
suite="$workdir/suite"

# ---- (b) a throw-away copy of the suite ------------------------------------
if [ -f "$suite_src/resources/variables.py" ] && [ -d "$suite_src/TP" ]; then
  log "copying suite from $suite_src"
  mkdir -p "$suite"
  tar -C "$suite_src" --exclude=./.git -cf - . | tar -C "$suite" -xf -
  suite_desc="$suite_src"
  if git -C "$suite_src" rev-parse --short HEAD >/dev/null 2>&1; then
    suite_desc="$suite_src @ $(git -C "$suite_src" rev-parse --short HEAD)"
  fi
elif git --git-dir="$suite_git" rev-parse --verify -q "$suite_ref^{commit}" >/dev/null 2>&1; then
  log "exporting suite from $suite_git ($suite_ref)"
  mkdir -p "$suite"
  git --git-dir="$suite_git" archive "$suite_ref" | tar -C "$suite" -xf -
  suite_desc="$suite_git @ $(git --git-dir="$suite_git" rev-parse --short "$suite_ref")"
else
  die "no suite found: set ETSI_SUITE_DIR to a checkout or ETSI_SUITE_GIT to its git dir"
fi
for f in "${folders[@]}"; do
  [ -e "$suite/$f" ] || die "folder '$f' does not exist in the suite"
done

python=$(pick_python) || die "no usable python3 (>= 3.10) found; set CALANQUE_PYTHON"
venv="$conf_home/venv"
req_filtered="$workdir/requirements.txt"
# The editable httpctrl line points inside the copy we are about to delete:
# install that library from the copy, not as editable.
grep -v -E '^\s*-e\s' "$suite/requirements.txt" > "$req_filtered"
stamp_want=$( { "$python" -c 'import sys; print(sys.version)'; cat "$suite/requirements.txt"; \
  cat "$suite/libraries/robotframework-httpctrl/VERSION" 2>/dev/null; } | sha256sum | cut -d' ' -f1)
if [ ! -x "$venv/bin/robot" ] || [ "$(cat "$venv/.calanque-stamp" 2>/dev/null)" != "$stamp_want" ]; then
  log "creating venv $venv with $python (first run takes a minute)"
  rm -rf "$venv"
  "$python" -m venv "$venv"
  "$venv/bin/pip" install -r "$req_filtered" "$suite/libraries/robotframework-httpctrl" \
    >"$conf_home/pip.log" 2>&1 || { tail -n 30 "$conf_home/pip.log" >&2; rm -rf "$venv"; die "pip install failed; see $conf_home/pip.log"; }
  echo "$stamp_want" > "$venv/.calanque-stamp"
fi
vpy="$venv/bin/python"

# ---- free ports for the suite's own mock servers ----------------------------
read -r notif_port csource_port ctxsrv_port mqtt_port < <("$vpy" - <<'EOF'
import socket
socks = []
for _ in range(4):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
)

# ---- (d) static server for the suite's remote @contexts -------------------
log "starting @context server"
"$vpy" "$here/context_server.py" --suite-contexts "$suite/resources/jsonld-contexts" \
  --port 0 --port-file "$workdir/ctx.port" 2>"$results_dir/context-server.log" &
ctx_pid=$!
for _ in $(seq 100); do
  [ -s "$workdir/ctx.port" ] && break
  kill -0 "$ctx_pid" 2>/dev/null || die "context server exited; see $results_dir/context-server.log"
  sleep 0.1
done
[ -s "$workdir/ctx.port" ] || die "context server did not start"
ctx_base="http://127.0.0.1:$(cat "$workdir/ctx.port")"

# ---- (c) patch the copy ---------------------------------------------------
broker_url="http://127.0.0.1:$port/ngsi-ld/v1"
"$vpy" "$here/patch_suite.py" --suite "$suite" --broker-url "$broker_url" \
  --context-base "$ctx_base" --notification-port "$notif_port" \
  --context-source-port "$csource_port" --context-server-port "$ctxsrv_port" \
  --mqtt-port "$mqtt_port" --core-context "$core_context" > "$results_dir/patch.log"
sed 's/^/[conformance]   /' "$results_dir/patch.log" >&2

# ---- (e) the broker -------------------------------------------------------
health() { curl -fsS -o /dev/null --max-time 2 "http://127.0.0.1:$port/health"; }
if [ "$external_broker" = 1 ]; then
  log "using the broker already listening on 127.0.0.1:$port"
  health || die "no broker answers GET http://127.0.0.1:$port/health"
else
  if health 2>/dev/null || (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    die "port $port is already in use; stop that process, pick another PORT, or set CALANQUE_EXTERNAL=1"
  fi
  data_dir="$workdir/data"
  mkdir -p "$data_dir"
  help_text=$(timeout 5 "$calanque_bin" --help 2>&1 || true)
  broker_args=()
  grep -q -- '--port' <<<"$help_text" && broker_args+=(--port "$port")
  grep -q -- '--data-dir' <<<"$help_text" && broker_args+=(--data-dir "$data_dir")
  grep -q -- '--host' <<<"$help_text" && broker_args+=(--host 127.0.0.1)
  grep -q -- '--bind' <<<"$help_text" && broker_args+=(--bind "127.0.0.1:$port")
  # The suite's temporal pagination tests (020_13, 020_14, 021_15, 021_16) expect a
  # page limit that 20 instances of an attribute exceed and 5 do not (suite README,
  # "Specific test requirements"); the broker's default (10000) is for production.
  grep -q -- '--temporal-max-instances' <<<"$help_text" && broker_args+=(--temporal-max-instances "${CALANQUE_TEMPORAL_MAX_INSTANCES:-10}")
  log "starting $calanque_bin ${broker_args[*]}"
  CALANQUE_PORT=$port CALANQUE_DATA_DIR=$data_dir CALANQUE_HOST=127.0.0.1 \
    CALANQUE_PUBLIC_URL=${CALANQUE_PUBLIC_URL:-http://127.0.0.1:$port} \
    "$calanque_bin" "${broker_args[@]}" >"$results_dir/broker.log" 2>&1 &
  broker_pid=$!
  deadline=$((SECONDS + startup_timeout))
  until health 2>/dev/null; do
    if ! kill -0 "$broker_pid" 2>/dev/null; then
      wait "$broker_pid" 2>/dev/null && brc=0 || brc=$?
      broker_pid=
      tail -n 20 "$results_dir/broker.log" >&2 || true
      die "the broker exited (status $brc) before answering GET /health; log: $results_dir/broker.log"
    fi
    [ $SECONDS -lt $deadline ] || die "no answer on GET http://127.0.0.1:$port/health after ${startup_timeout}s"
    sleep 0.2
  done
  log "broker is up (pid $broker_pid)"
fi

# ---- (f) robot -------------------------------------------------------------
robot_args=(
  --outputdir "$results_dir"
  --listener "$here/robot_timeouts.py:$test_timeout:$request_timeout"
  --name "NGSI-LD"
  --metadata "Suite:$suite_desc"
  --consolecolors off
)
for tag in $exclude_tags; do robot_args+=(--exclude "$tag"); done
robot_args+=("${robot_extra[@]}")

log "running robot on: ${folders[*]}"
log "results: $results_dir (full console log: console.log)"
# Robot runs in the foreground (so Ctrl-C reaches it and it stops gracefully);
# its very verbose console goes to console.log and a filtered view to the terminal.
: > "$results_dir/console.log"
if [ "$verbose" = 1 ]; then
  tail -n +1 -f --pid=$$ "$results_dir/console.log" &
else
  tail -n +1 -f --pid=$$ "$results_dir/console.log" > >(awk '
    show_next { print; show_next = 0; fflush() }
    /\| (PASS|FAIL|SKIP) \|$/ { print; if ($0 ~ /\| FAIL \|$/) show_next = 1; fflush(); next }
    /^[0-9]+ tests?, |^(Output|Log|Report): / { print; fflush() }') &
fi
viewer_pid=$!
set +e
(cd "$suite" && exec "$venv/bin/robot" "${robot_args[@]}" "${folders[@]}") >>"$results_dir/console.log" 2>&1
robot_rc=$?
set -e
sleep 0.5  # let the viewer catch up
kill "$viewer_pid" 2>/dev/null || true
wait "$viewer_pid" 2>/dev/null || true
viewer_pid=

if [ -f "$results_dir/output.xml" ]; then
  "$vpy" "$here/summarize.py" "$results_dir/output.xml" --markdown "$results_dir/summary.md" || true
  log "summary: $results_dir/summary.md"
fi
# Robot's status: 0-250 is the number of failed tests (250 = 250 or more);
# 251 and above mean help, invalid options, an interruption or an internal error.
if [ "$robot_rc" -gt 250 ]; then
  log "robot ended with status $robot_rc (error or interruption)"
  exit "$robot_rc"
fi
[ "$robot_rc" -eq 0 ] || exit 1
