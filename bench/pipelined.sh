#!/usr/bin/env bash
# Pipelined produce acknowledgements (bench/RESULTS.md, "Pipelined acknowledgements and cheaper
# produce, issue 20"): durable Strom against Kafka 4.1, acks=all, side by side.
#
# Usage: bench/pipelined.sh [ROUNDS]    (CARGO_TARGET_DIR must hold the release build:
#   cargo build --release -p strom-cli --locked --bin strom --example rdkafka-bench)
# Ports (environment): STROM_PORT (default 29400), KAFKA_PORT (29410) and KAFKA_CONTROLLER_PORT
# (29411); STROM_BIN overrides the strom binary (e.g. an older build, for before/after).
#
# Starts one Strom with log.flush.before.ack.enable=true and a private Kafka 4.1 (defaults),
# then rdkafka-bench alternating targets round by round (medians), 1,000,000 x 100 B and
# 200,000 x 1 KiB, acks=all, no compression, at linger.ms=5 and at linger.ms=0:
#   strom           durable: every acknowledgement after a group-commit fsync;
#   strom-pagecache the same broker, topics with flush.before.ack.enable=false;
#   kafka           Kafka's defaults (no fsync);
#   kafka-fsync     the same Kafka, topics with flush.messages=1 (an fsync per append).
# rdkafka-bench prints each target's broker CPU during the produce (from /proc/PID/stat).
# LATENCY_RATE=N (records/s) adds a fixed-rate pass: 1,000,000 x 100 B, acks=all, linger.ms=5,
# against strom, strom-pagecache and kafka (p50/p99/p99.9 of send-to-acknowledgement).
set -euo pipefail
ROUNDS=${1:-3}
PEERS=${PEERS:-/work/shared/peers}
BIN=${CARGO_TARGET_DIR:?set CARGO_TARGET_DIR}/release
STROM_BIN=${STROM_BIN:-$BIN/strom}
STROM_PORT=${STROM_PORT:-29400}
KAFKA_PORT=${KAFKA_PORT:-29410}
KAFKA_CONTROLLER_PORT=${KAFKA_CONTROLLER_PORT:-29411}
DATA=/tmp/pipe-strom-bench
KRUN=/tmp/pipe-kafka-run
KAFKA_ENV=(KAFKA_PORT=$KAFKA_PORT KAFKA_CONTROLLER_PORT=$KAFKA_CONTROLLER_PORT
           KAFKA_DATA_DIR=/tmp/pipe-kafka-data KAFKA_RUN_DIR=$KRUN)

rm -rf "$DATA" && mkdir -p "$DATA"
"$STROM_BIN" server --set "listeners=PLAINTEXT://127.0.0.1:$STROM_PORT" --set "log.dirs=$DATA/data" \
  --set http.listeners= --set log.flush.before.ack.enable=true >"$DATA/strom.out" 2>&1 &
STROM_PID=$!
if [ ! -f $KRUN/kafka.pid ] || ! kill -0 "$(cat $KRUN/kafka.pid)" 2>/dev/null; then
  env "${KAFKA_ENV[@]}" KAFKA_FRESH=1 "$PEERS/kafka-start.sh"
fi
KAFKA_PID=$(cat $KRUN/kafka.pid)
cleanup() {
  kill "$STROM_PID" 2>/dev/null || true
  [ -n "${KEEP_KAFKA:-}" ] || env "${KAFKA_ENV[@]}" KAFKA_WIPE=1 "$PEERS/kafka-stop.sh" || true
}
trap cleanup EXIT
python3 "$PEERS/probe_metadata.py" "127.0.0.1:$STROM_PORT" --timeout 30

for LINGER in 5 0; do
  echo "== acks=all, linger.ms=$LINGER (rdkafka-bench, $ROUNDS alternating rounds, medians)"
  "$BIN/examples/rdkafka-bench" \
    --target "strom=127.0.0.1:$STROM_PORT@$STROM_PID" \
    --target "strom-pagecache=127.0.0.1:$STROM_PORT@$STROM_PID" \
    --target "kafka=127.0.0.1:$KAFKA_PORT@$KAFKA_PID" \
    --target "kafka-fsync=127.0.0.1:$KAFKA_PORT@$KAFKA_PID" \
    --topic-config strom-pagecache:flush.before.ack.enable=false \
    --topic-config kafka-fsync:flush.messages=1 \
    --rounds "$ROUNDS" --linger-ms "$LINGER" \
    --produce 1000000,100,all,none --produce 200000,1024,all,none
done

if [ -n "${LATENCY_RATE:-}" ]; then
  echo "== fixed rate $LATENCY_RATE records/s, 100 B, acks=all, linger.ms=5"
  "$BIN/examples/rdkafka-bench" \
    --target "strom=127.0.0.1:$STROM_PORT@$STROM_PID" \
    --target "strom-pagecache=127.0.0.1:$STROM_PORT@$STROM_PID" \
    --target "kafka=127.0.0.1:$KAFKA_PORT@$KAFKA_PID" \
    --topic-config strom-pagecache:flush.before.ack.enable=false \
    --rounds "$ROUNDS" --linger-ms 5 \
    --produce "1000000,100,all,none,$LATENCY_RATE"
fi
