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
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib.sh"
bench_help "$0" "$@"
warm_memory
ROUNDS=${1:-3}
: "${CARGO_TARGET_DIR:?set CARGO_TARGET_DIR}"
STROM_PORT=${STROM_PORT:-29400}
KAFKA_PORT=${KAFKA_PORT:-29410}
KAFKA_CONTROLLER_PORT=${KAFKA_CONTROLLER_PORT:-29411}
DATA=/tmp/pipe-strom-bench

rm -rf "$DATA" && mkdir -p "$DATA"
strom_start "$STROM_PORT" "$DATA/data" "$DATA/strom.out" --set log.flush.before.ack.enable=true
kafka_start "$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT" /tmp/pipe-kafka-data /tmp/pipe-kafka-run
strom_wait "$STROM_PORT"

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
