#!/usr/bin/env bash
# Durable mode (group commit) against Kafka 4.1, side by side (bench/RESULTS.md, "Durable mode",
# and "Early writeback").
#
# Usage: bench/durable.sh [ROUNDS]      (CARGO_TARGET_DIR must hold the release build:
#   cargo build --release -p strom-cli --bin strom --example rdkafka-bench)
# Ports (environment): STROM_PORT (default 29192; STROM_PORT+1 for the second Strom),
# KAFKA_PORT (19392) and KAFKA_CONTROLLER_PORT (19393); STROM_BIN overrides the strom binary.
#
# Starts two Strom brokers with log.flush.before.ack.enable=true (every acknowledgement after a
# group-commit fsync), one with early writeback (STROM_EARLY_WRITEBACK=on, 1 MiB) and one
# without (the default), and a private Kafka 4.1 (defaults: no fsync), then, alternating
# targets round by round and taking medians:
#   1. rdkafka-bench, acks=all, 1,000,000 x 100 B and 200,000 x 1 KiB, no compression, at
#      linger.ms=5 and at linger.ms=0, against
#        strom            durable, early writeback;
#        strom-nowb       durable, no early writeback (the second broker);
#        strom-pagecache  the first broker, topics with flush.before.ack.enable=false;
#        kafka            Kafka's defaults (no fsync);
#        kafka-fsync      the same Kafka, topics with flush.messages=1 (Kafka's
#                         log.flush.interval.messages=1 for those topics: an fsync per append);
#      rdkafka-bench prints each target's broker CPU during the produce;
#   2. LATENCY_RATE=N (records/s) adds a fixed-rate pass: 1,000,000 x 100 B, acks=all,
#      linger.ms=5, strom, strom-nowb and kafka (p50/p99/p99.9 send-to-acknowledgement);
#   3. side_by_side.py (kcat on librdkafka 2.16, acks=1) with --pids: throughput and broker CPU
#      ms per million records, produce and consume, 100 B and 1 KiB (SKIP_KCAT=1 skips it).
# The brokers are stopped at the end.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib.sh"
bench_help "$0" "$@"
warm_memory
ROUNDS=${1:-3}
: "${CARGO_TARGET_DIR:?set CARGO_TARGET_DIR}"
STROM_PORT=${STROM_PORT:-29192}
NOWB_PORT=$((STROM_PORT + 1))
KAFKA_PORT=${KAFKA_PORT:-19392}
KAFKA_CONTROLLER_PORT=${KAFKA_CONTROLLER_PORT:-19393}
DATA=/tmp/durable-strom-$STROM_PORT

rm -rf "$DATA" && mkdir -p "$DATA"
strom_start "$NOWB_PORT" "$DATA/nowb" "$DATA/strom-nowb.out" \
  --set log.flush.before.ack.enable=true
NOWB_PID=$STROM_PID
STROM_EARLY_WRITEBACK=on strom_start "$STROM_PORT" "$DATA/data" "$DATA/strom.out" \
  --set log.flush.before.ack.enable=true
kafka_start "$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT" /tmp/durable-kafka-data-$KAFKA_PORT /tmp/durable-kafka-run-$KAFKA_PORT
strom_wait "$STROM_PORT"
strom_wait "$NOWB_PORT"
load_average

for LINGER in 5 0; do
  echo "== acks=all, linger.ms=$LINGER (rdkafka-bench, $ROUNDS alternating rounds, medians)"
  "$BIN/examples/rdkafka-bench" \
    --target "strom=127.0.0.1:$STROM_PORT@$STROM_PID" \
    --target "strom-nowb=127.0.0.1:$NOWB_PORT@$NOWB_PID" \
    --target "strom-pagecache=127.0.0.1:$STROM_PORT@$STROM_PID" \
    --target "kafka=127.0.0.1:$KAFKA_PORT@$KAFKA_PID" \
    --target "kafka-fsync=127.0.0.1:$KAFKA_PORT@$KAFKA_PID" \
    --topic-config strom-pagecache:flush.before.ack.enable=false \
    --topic-config kafka-fsync:flush.messages=1 \
    --rounds "$ROUNDS" --linger-ms "$LINGER" \
    --produce 1000000,100,all,none --produce 200000,1024,all,none
  load_average
done

if [ -n "${LATENCY_RATE:-}" ]; then
  echo "== fixed rate $LATENCY_RATE records/s, 100 B, acks=all, linger.ms=5"
  "$BIN/examples/rdkafka-bench" \
    --target "strom=127.0.0.1:$STROM_PORT@$STROM_PID" \
    --target "strom-nowb=127.0.0.1:$NOWB_PORT@$NOWB_PID" \
    --target "kafka=127.0.0.1:$KAFKA_PORT@$KAFKA_PID" \
    --rounds "$ROUNDS" --linger-ms 5 \
    --produce "1000000,100,all,none,$LATENCY_RATE"
  load_average
fi

if [ -z "${SKIP_KCAT:-}" ]; then
  echo "== kcat side by side, broker CPU per million records (side_by_side.py --pids)"
  python3 "$PEERS/side_by_side.py" "127.0.0.1:$STROM_PORT" "127.0.0.1:$KAFKA_PORT" \
    --reps "$ROUNDS" --labels strom,kafka --pids "$STROM_PID,$KAFKA_PID"
  load_average
fi
