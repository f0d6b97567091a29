#!/usr/bin/env bash
# Cheaper produce (bench/RESULTS.md, "In-place produce appends and pooled frame buffers, issue
# 20"): broker CPU per million records before and after, beside Kafka 4.1, same client.
#
# Usage: bench/produce_path.sh [ROUNDS]
#   BASE_BIN  the strom binary before the change (release build of the parent commit)
#   NEW_BIN   the strom binary after it (default: $CARGO_TARGET_DIR/release/strom)
#   BENCH     rdkafka-bench (default: $CARGO_TARGET_DIR/release/examples/rdkafka-bench)
# Ports: BASE_PORT (29800), NEW_PORT (29801), KAFKA_PORT (29810), KAFKA_CONTROLLER_PORT (29811).
#
# Starts both Strom binaries in page-cache mode (log.flush.before.ack.enable=false) and a private Kafka 4.1
# (defaults, -Xmx2g), then:
#   1. rdkafka-bench alternating base / new / base-durable / new-durable / kafka round by
#      round (medians), 1,000,000 x 100 B and 200,000 x 1 KiB, acks=all, no compression, at
#      linger.ms=5 and 0 (LINGERS); "-durable" targets are the same brokers with topics
#      flush.before.ack.enable=true (group commit). It prints each target's broker CPU.
#   PERF=SECONDS also records `perf record -g` of both brokers for that long meanwhile
#   (/tmp/pool-strom-bench/{base,new}.perf).
#   2. ../shared/peers/side_by_side.py --pids (kcat, acks=1): new against kafka, then base
#      against new.
set -euo pipefail
ROUNDS=${1:-3}
PEERS=${PEERS:-/work/shared/peers}
BIN=${CARGO_TARGET_DIR:?set CARGO_TARGET_DIR}/release
BASE_BIN=${BASE_BIN:?set BASE_BIN to the strom binary before the change}
NEW_BIN=${NEW_BIN:-$BIN/strom}
BENCH=${BENCH:-$BIN/examples/rdkafka-bench}
BASE_PORT=${BASE_PORT:-29800}
NEW_PORT=${NEW_PORT:-29801}
KAFKA_PORT=${KAFKA_PORT:-29810}
KAFKA_CONTROLLER_PORT=${KAFKA_CONTROLLER_PORT:-29811}
DATA=/tmp/pool-strom-bench
KRUN=/tmp/pool-kafka-run
KAFKA_ENV=(KAFKA_PORT=$KAFKA_PORT KAFKA_CONTROLLER_PORT=$KAFKA_CONTROLLER_PORT
           KAFKA_DATA_DIR=/tmp/pool-kafka-data KAFKA_RUN_DIR=$KRUN)

rm -rf "$DATA" && mkdir -p "$DATA"
start_strom() { # BIN PORT NAME
  "$1" server --set "listeners=PLAINTEXT://127.0.0.1:$2" --set "log.dirs=$DATA/$3" \
    --set http.listeners= --set log.flush.before.ack.enable=false >"$DATA/$3.out" 2>&1 &
  echo $!
}
BASE_PID=$(start_strom "$BASE_BIN" "$BASE_PORT" base)
NEW_PID=$(start_strom "$NEW_BIN" "$NEW_PORT" new)
if [ ! -f $KRUN/kafka.pid ] || ! kill -0 "$(cat $KRUN/kafka.pid)" 2>/dev/null; then
  env "${KAFKA_ENV[@]}" KAFKA_FRESH=1 "$PEERS/kafka-start.sh"
fi
KAFKA_PID=$(cat $KRUN/kafka.pid)
cleanup() {
  kill "$BASE_PID" "$NEW_PID" 2>/dev/null || true
  rm -rf "$DATA/base" "$DATA/new"
  [ -n "${KEEP_KAFKA:-}" ] || env "${KAFKA_ENV[@]}" KAFKA_WIPE=1 "$PEERS/kafka-stop.sh" || true
}
trap cleanup EXIT
python3 "$PEERS/probe_metadata.py" "127.0.0.1:$BASE_PORT" --timeout 30
python3 "$PEERS/probe_metadata.py" "127.0.0.1:$NEW_PORT" --timeout 30
echo "pids: base $BASE_PID new $NEW_PID kafka $KAFKA_PID; load average: $(cut -d' ' -f1-3 /proc/loadavg)"

if [ -n "${PERF:-}" ]; then
  # PERF=SECONDS: profile both Strom brokers during the first rdkafka-bench pass.
  perf record -F 499 -g -p "$BASE_PID" -o "$DATA/base.perf" -- sleep "$PERF" >/dev/null 2>&1 &
  perf record -F 499 -g -p "$NEW_PID" -o "$DATA/new.perf" -- sleep "$PERF" >/dev/null 2>&1 &
fi
for LINGER in ${LINGERS:-5 0}; do
  echo "== rdkafka-bench acks=all linger.ms=$LINGER ($ROUNDS alternating rounds, medians) $(date -u +%H:%M:%S) load $(cut -d' ' -f1-3 /proc/loadavg)"
  "$BENCH" \
    --target "base=127.0.0.1:$BASE_PORT@$BASE_PID" \
    --target "new=127.0.0.1:$NEW_PORT@$NEW_PID" \
    --target "base-durable=127.0.0.1:$BASE_PORT@$BASE_PID" \
    --target "new-durable=127.0.0.1:$NEW_PORT@$NEW_PID" \
    --target "kafka=127.0.0.1:$KAFKA_PORT@$KAFKA_PID" \
    --topic-config base-durable:flush.before.ack.enable=true \
    --topic-config new-durable:flush.before.ack.enable=true \
    --rounds "$ROUNDS" --linger-ms "$LINGER" \
    --produce 1000000,100,all,none --produce 200000,1024,all,none
done

if [ -z "${SKIP_KCAT:-}" ]; then
  echo "== side_by_side.py new vs kafka $(date -u +%H:%M:%S) load $(cut -d' ' -f1-3 /proc/loadavg)"
  python3 "$PEERS/side_by_side.py" "127.0.0.1:$NEW_PORT" "127.0.0.1:$KAFKA_PORT" \
    --labels new,kafka --pids "$NEW_PID,$KAFKA_PID" --reps "$ROUNDS"
  [ -n "${SKIP_KCAT_BASE:-}" ] || { echo "== side_by_side.py base vs new $(date -u +%H:%M:%S) load $(cut -d' ' -f1-3 /proc/loadavg)"
  python3 "$PEERS/side_by_side.py" "127.0.0.1:$BASE_PORT" "127.0.0.1:$NEW_PORT" \
    --labels base,new --pids "$BASE_PID,$NEW_PID" --reps "$ROUNDS"; }
fi
echo "done $(date -u +%H:%M:%S) load $(cut -d' ' -f1-3 /proc/loadavg)"
