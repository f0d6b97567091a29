#!/usr/bin/env bash
# Zero-copy fetch and the consume gap against Kafka 4.1 (bench/RESULTS.md, "Zero-copy fetch and
# the consume gap, issue 20").
#
# Usage: bench/zero_copy.sh [ROUNDS]     (CARGO_TARGET_DIR must hold the release build:
#   cargo build --release -p strom-cli --bin strom --example rdkafka-bench)
#
# Starts two Strom brokers from the same binary and data layout, one sending fetched records
# with sendfile (the default) on 127.0.0.1:29510 and one with STROM_FETCH_ZERO_COPY=off (the
# buffered path: pread into 64 KiB, write) on 127.0.0.1:29511, and a private Kafka 4.1
# (defaults) on 127.0.0.1:29520; then, alternating targets round by round, medians:
#   1. side_by_side.py (kcat on librdkafka 2.16) strom vs kafka and strom-copy vs kafka, with
#      --pids: produce and consume throughput and broker CPU ms per million records;
#   2. rdkafka-bench --consume (librdkafka 2.12 through the rdkafka crate), the three targets.
# All brokers are stopped at the end.
set -euo pipefail
ROUNDS=${1:-3}
PEERS=${PEERS:-/work/shared/peers}
BIN=${CARGO_TARGET_DIR:?set CARGO_TARGET_DIR}/release
DATA=/tmp/zcopy-strom-bench
KAFKA_ENV=(KAFKA_PORT=29520 KAFKA_CONTROLLER_PORT=29521 KAFKA_DATA_DIR=/tmp/zcopy-kafka-data
           KAFKA_RUN_DIR=/tmp/zcopy-kafka-run)

rm -rf "$DATA" && mkdir -p "$DATA"
"$BIN/strom" server --set listeners=PLAINTEXT://127.0.0.1:29510 --set "log.dirs=$DATA/zc" \
  --set http.listeners= >"$DATA/strom.out" 2>&1 &
STROM_PID=$!
STROM_FETCH_ZERO_COPY=off "$BIN/strom" server --set listeners=PLAINTEXT://127.0.0.1:29511 \
  --set "log.dirs=$DATA/copy" --set http.listeners= >"$DATA/strom-copy.out" 2>&1 &
COPY_PID=$!
if [ ! -f /tmp/zcopy-kafka-run/kafka.pid ] || ! kill -0 "$(cat /tmp/zcopy-kafka-run/kafka.pid)" 2>/dev/null; then
  env "${KAFKA_ENV[@]}" KAFKA_FRESH=1 "$PEERS/kafka-start.sh"
fi
KAFKA_PID=$(cat /tmp/zcopy-kafka-run/kafka.pid)
cleanup() {
  kill "$STROM_PID" "$COPY_PID" 2>/dev/null || true
  env "${KAFKA_ENV[@]}" KAFKA_WIPE=1 "$PEERS/kafka-stop.sh" || true
}
trap cleanup EXIT
python3 "$PEERS/probe_metadata.py" 127.0.0.1:29510 --timeout 30
python3 "$PEERS/probe_metadata.py" 127.0.0.1:29511 --timeout 30
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"

echo "== kcat: strom (sendfile) vs kafka"
python3 "$PEERS/side_by_side.py" 127.0.0.1:29510 127.0.0.1:29520 --reps "$ROUNDS" \
  --labels strom,kafka --pids "$STROM_PID,$KAFKA_PID"
echo "== kcat: strom-copy (STROM_FETCH_ZERO_COPY=off) vs kafka"
python3 "$PEERS/side_by_side.py" 127.0.0.1:29511 127.0.0.1:29520 --reps "$ROUNDS" \
  --labels strom-copy,kafka --pids "$COPY_PID,$KAFKA_PID"

echo "== rdkafka-bench --consume"
"$BIN/examples/rdkafka-bench" \
  --target "strom=127.0.0.1:29510@$STROM_PID" \
  --target "strom-copy=127.0.0.1:29511@$COPY_PID" \
  --target "kafka=127.0.0.1:29520@$KAFKA_PID" \
  --rounds "$ROUNDS" --consume \
  --produce 1000000,100,1,none --produce 200000,1024,1,none
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
