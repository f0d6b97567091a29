# Shared start-up and shutdown of the brokers the side-by-side scripts compare (durable.sh,
# zero_copy.sh, pipelined.sh). Sourced, not run. After sourcing:
#
#   bench_help "$0" "$@"          prints the script's header comment and exits on -h/--help;
#   strom_start PORT LOGDIR OUT [--set k=v ...]
#                                 starts `$STROM_BIN server` (default $BIN/strom) listening on
#                                 127.0.0.1:PORT with log.dirs=LOGDIR, no HTTP listener, output
#                                 to OUT; sets STROM_PID and remembers it for the clean-up.
#                                 Environment given on the call (VAR=x strom_start ...) reaches
#                                 the broker;
#   kafka_start PORT CONTROLLER_PORT DATADIR RUNDIR
#                                 starts a private Kafka 4.1 from $PEERS (fresh data) unless
#                                 one already runs from RUNDIR; sets KAFKA_PID;
#   strom_wait PORT               waits (30 s at most) for a Metadata answer;
#   load_average                  prints the load average line;
#   warm_memory                   once per boot: touches the free memory once (see below).
# An EXIT trap stops every Strom started here and the Kafka (its data wiped), unless
# KEEP_KAFKA is set (then Kafka keeps running for the next script), and removes the
# directories a script added to BENCH_WIPE_DIRS (its brokers' data: gigabytes per run).
# Needs: CARGO_TARGET_DIR (BIN=$CARGO_TARGET_DIR/release), optional PEERS and STROM_BIN.

PEERS=${PEERS:-/work/shared/peers}
BIN=${CARGO_TARGET_DIR:+$CARGO_TARGET_DIR/release}
STROM_BIN=${STROM_BIN:-${BIN:+$BIN/strom}}
BENCH_STROM_PIDS=()
BENCH_WIPE_DIRS=()
KAFKA_ENV=()

bench_help() {
  local script=$1
  shift
  case "${1:-}" in
  -h | --help)
    sed -n '2,/^set -euo/{/^#/s/^# \{0,1\}//p}' "$script"
    exit 0
    ;;
  esac
}

strom_start() {
  : "${STROM_BIN:?set CARGO_TARGET_DIR (the release build) or STROM_BIN}"
  local port=$1 logdir=$2 out=$3
  shift 3
  "$STROM_BIN" server --set "listeners=PLAINTEXT://127.0.0.1:$port" --set "log.dirs=$logdir" \
    --set http.listeners= "$@" >"$out" 2>&1 &
  STROM_PID=$!
  BENCH_STROM_PIDS+=("$STROM_PID")
}

kafka_start() {
  KAFKA_ENV=(KAFKA_PORT=$1 KAFKA_CONTROLLER_PORT=$2 KAFKA_DATA_DIR=$3 KAFKA_RUN_DIR=$4)
  local pidfile=$4/kafka.pid
  if [ ! -f "$pidfile" ] || ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    env "${KAFKA_ENV[@]}" KAFKA_FRESH=1 "$PEERS/kafka-start.sh"
  fi
  KAFKA_PID=$(cat "$pidfile")
}

strom_wait() {
  python3 "$PEERS/probe_metadata.py" "127.0.0.1:$1" --timeout 30
}

load_average() {
  echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
}

# On a freshly booted virtual machine the first write to each page of guest memory faults in
# the host: the page cache's first use of a page then costs ~2 s per GiB of CPU in whichever
# process writes the file (seen here: `copy_folio_from_iter_atomic` at 78 % of a broker's
# produce profile, 5.7x the CPU per record of the same workload after this step). It falls on
# whichever broker happens to get fresh pages, so the scripts touch the free memory once per
# boot before measuring (MemFree less 1 GiB, then freed).
warm_memory() {
  local mark=/tmp/strom-bench-warm-$(cat /proc/sys/kernel/random/boot_id)
  [ -e "$mark" ] && return 0
  echo "warming memory (once per boot)"
  python3 -c '
import re
free_kib = int(re.search(r"MemFree:\s+(\d+)", open("/proc/meminfo").read()).group(1))
b = bytearray(max(0, free_kib - (1 << 20)) * 1024)
for i in range(0, len(b), 4096):
    b[i] = 1
'
  touch "$mark"
}

bench_cleanup() {
  if [ ${#BENCH_STROM_PIDS[@]} -gt 0 ]; then
    kill "${BENCH_STROM_PIDS[@]}" 2>/dev/null || true
    wait "${BENCH_STROM_PIDS[@]}" 2>/dev/null || true
  fi
  if [ ${#BENCH_WIPE_DIRS[@]} -gt 0 ]; then
    rm -rf "${BENCH_WIPE_DIRS[@]}"
  fi
  if [ ${#KAFKA_ENV[@]} -gt 0 ] && [ -z "${KEEP_KAFKA:-}" ]; then
    env "${KAFKA_ENV[@]}" KAFKA_WIPE=1 "$PEERS/kafka-stop.sh" || true
  fi
}
trap bench_cleanup EXIT
