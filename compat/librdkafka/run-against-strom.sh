#!/usr/bin/env bash
# Run librdkafka's own integration tests (the subset in ../shared/compat/librdkafka/tests.txt,
# run by its run.sh) against a fresh `strom server`, then stop the server.
#
#   compat/librdkafka/run-against-strom.sh [OUTDIR]
#   LRK_ONLY=0011,0082 compat/librdkafka/run-against-strom.sh      # a few tests only
#
# The broker gets the settings librdkafka's CI gives its brokers (as kafka-start.sh does for
# Apache Kafka): num.partitions=4, auto-created topics, no initial rebalance delay, internal
# topics with replication factor 1, and an ACL authorizer that allows everything no ACL
# covers (0081_admin creates, lists and deletes ACLs).
#
# Knobs:
#   STROM_BIN      the strom binary (default: $CARGO_TARGET_DIR or target/, release then debug)
#   STROM_PORT     client port (default: a free one)
#   STROM_LOG      the server's log filter (default warn); its log is OUTDIR/strom.log
#   LRK_RUN        run.sh to use (default ../shared/compat/librdkafka/run.sh from the repo root)
#   KEEP_DATA=1    keep the server's data directory (OUTDIR/strom-data) after the run
# Every other LRK_* / TEST_* knob is passed to run.sh (see its header).
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
LRK_RUN="${LRK_RUN:-$ROOT/../shared/compat/librdkafka/run.sh}"
OUTDIR="${1:-/tmp/lrk-strom-$(date +%Y%m%d-%H%M%S)}"

if [ -z "${STROM_BIN:-}" ]; then
  tgt="${CARGO_TARGET_DIR:-$ROOT/target}"
  for b in "$tgt/release/strom" "$tgt/debug/strom"; do
    if [ -x "$b" ]; then STROM_BIN="$b"; break; fi
  done
fi
if [ -z "${STROM_BIN:-}" ] || [ ! -x "$STROM_BIN" ]; then
  echo "run-against-strom: no strom binary; build it (cargo build --release -p strom-cli) or set STROM_BIN" >&2
  exit 2
fi
if [ ! -x "$LRK_RUN" ]; then
  echo "run-against-strom: no $LRK_RUN (set LRK_RUN)" >&2
  exit 2
fi

PORT="${STROM_PORT:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')}"
mkdir -p "$OUTDIR" || exit 2
OUTDIR="$(cd "$OUTDIR" && pwd)"
DATA="$OUTDIR/strom-data"
rm -rf "$DATA"

settings=(
  "listeners=PLAINTEXT://127.0.0.1:$PORT"
  "log.dirs=$DATA"
  "http.listeners="
  "num.partitions=4"
  "default.replication.factor=1"
  "min.insync.replicas=1"
  "auto.create.topics.enable=true"
  "group.initial.rebalance.delay.ms=0"
  "offsets.topic.replication.factor=1"
  "offsets.topic.num.partitions=50"
  "transaction.state.log.replication.factor=1"
  "transaction.state.log.min.isr=1"
  "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer"
  "allow.everyone.if.no.acl.found=true"
  "super.users=User:admin"
)
args=(server)
for s in "${settings[@]}"; do args+=(--set "$s"); done

echo "run-against-strom: $STROM_BIN on 127.0.0.1:$PORT, data $DATA, log $OUTDIR/strom.log"
STROM_LOG="${STROM_LOG:-warn}" "$STROM_BIN" "${args[@]}" > "$OUTDIR/strom.log" 2>&1 < /dev/null &
pid=$!

stop() {
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    for _ in $(seq 1 200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
  fi
  wait "$pid" 2>/dev/null
  if [ "${KEEP_DATA:-0}" != "1" ]; then rm -rf "$DATA"; fi
}
trap stop EXIT
trap 'exit 130' INT TERM

for _ in $(seq 1 300); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then break; fi
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "run-against-strom: strom exited before listening:" >&2
    tail -20 "$OUTDIR/strom.log" >&2
    exit 2
  fi
  sleep 0.1
done

"$LRK_RUN" "127.0.0.1:$PORT" "$OUTDIR"
rc=$?
if ! kill -0 "$pid" 2>/dev/null; then
  echo "run-against-strom: strom died during the run; tail of $OUTDIR/strom.log:" >&2
  tail -20 "$OUTDIR/strom.log" >&2
  rc=1
fi
exit "$rc"
