#!/usr/bin/env bash
# Every figure of issue 20 (performance) in one run, Strom against Kafka 4.1 side by side
# (bench/RESULTS.md, "Issue 20 on a quiet machine").
#
# Usage: bench/issue20.sh [ROUNDS]      (CARGO_TARGET_DIR must hold the release build:
#   cargo build --release -p strom-cli --bin strom --example rdkafka-bench)
# Ports (environment): STROM_PORT (default 29600), KAFKA_PORT (29610) and
# KAFKA_CONTROLLER_PORT (29611); STROM_BIN overrides the strom binary. Fixed rates (records/s,
# about half of Kafka's peak at that linger.ms): RATE_LINGER5 (500000), RATE_LINGER1 (500000).
#
# Starts one Strom broker with its defaults (durable: every acknowledgement after a
# group-commit fsync) and a private Kafka 4.1 (defaults: no fsync), then, alternating targets
# round by round and taking medians:
#   1. rdkafka-bench, acks=all, 1,000,000 x 100 B and 200,000 x 1 KiB, no compression, at
#      linger.ms=5 and at linger.ms=0, against
#        strom            Strom's defaults (durable);
#        strom-pagecache  the same broker, topics with flush.before.ack.enable=false;
#        kafka            Kafka's defaults (no fsync);
#        kafka-fsync      the same Kafka, topics with flush.messages=1 (an fsync per append);
#   2. fixed-rate latency, 1,000,000 x 100 B, acks=all: strom, strom-pagecache and kafka at
#      linger.ms=5 (RATE_LINGER5) and linger.ms=1 (RATE_LINGER1), p50/p99/p99.9
#      send-to-acknowledgement;
#   3. ../shared/peers/side_by_side.py --pids (kcat on librdkafka 2.16, acks=1): throughput and
#      broker CPU ms per million records, produce and consume, 100 B and 1 KiB;
#   4. bench/consume.py: consume throughput and broker CPU with four clients (kcat, kcat with
#      fetch.queue.backoff.ms=10, strom perf consume, Kafka's Java kafka-consumer-perf-test).
# The brokers are stopped at the end.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib.sh"
bench_help "$0" "$@"
warm_memory
ROUNDS=${1:-3}
: "${CARGO_TARGET_DIR:?set CARGO_TARGET_DIR}"
STROM_PORT=${STROM_PORT:-29600}
KAFKA_PORT=${KAFKA_PORT:-29610}
KAFKA_CONTROLLER_PORT=${KAFKA_CONTROLLER_PORT:-29611}
RATE_LINGER5=${RATE_LINGER5:-500000}
RATE_LINGER1=${RATE_LINGER1:-500000}
DATA=/tmp/issue20-strom-$STROM_PORT

rm -rf "$DATA" && mkdir -p "$DATA"
strom_start "$STROM_PORT" "$DATA/data" "$DATA/strom.out"
kafka_start "$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT" /tmp/issue20-kafka-data-$KAFKA_PORT /tmp/issue20-kafka-run-$KAFKA_PORT
strom_wait "$STROM_PORT"
load_average
STROM="127.0.0.1:$STROM_PORT@$STROM_PID"
KAFKA="127.0.0.1:$KAFKA_PORT@$KAFKA_PID"

for LINGER in 5 0; do
  echo "== acks=all, linger.ms=$LINGER (rdkafka-bench, $ROUNDS alternating rounds, medians)"
  "$BIN/examples/rdkafka-bench" \
    --target "strom=$STROM" --target "strom-pagecache=$STROM" \
    --target "kafka=$KAFKA" --target "kafka-fsync=$KAFKA" \
    --topic-config strom-pagecache:flush.before.ack.enable=false \
    --topic-config kafka-fsync:flush.messages=1 \
    --rounds "$ROUNDS" --linger-ms "$LINGER" \
    --produce 1000000,100,all,none --produce 200000,1024,all,none
  load_average
done

for CASE in "5 $RATE_LINGER5" "1 $RATE_LINGER1"; do
  set -- $CASE
  echo "== fixed rate $2 records/s, 100 B, acks=all, linger.ms=$1"
  "$BIN/examples/rdkafka-bench" \
    --target "strom=$STROM" --target "strom-pagecache=$STROM" --target "kafka=$KAFKA" \
    --topic-config strom-pagecache:flush.before.ack.enable=false \
    --rounds "$ROUNDS" --linger-ms "$1" --produce "1000000,100,all,none,$2"
  load_average
done

echo "== kcat side by side, broker CPU per million records (side_by_side.py --pids)"
python3 "$PEERS/side_by_side.py" "127.0.0.1:$STROM_PORT" "127.0.0.1:$KAFKA_PORT" \
  --reps "$ROUNDS" --labels strom,kafka --pids "$STROM_PID,$KAFKA_PID"
load_average

echo "== consume with four clients (bench/consume.py)"
python3 "$HERE/consume.py" "strom=$STROM" "kafka=$KAFKA" --rounds "$ROUNDS" \
  --strom-bin "$STROM_BIN"
load_average
