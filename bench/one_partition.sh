#!/usr/bin/env bash
# Many producers, one partition (bench/RESULTS.md, "Concurrent appends to one partition"):
# durable Strom against Kafka 4.1's defaults and against the same Kafka with an fsync per
# append (topics with flush.messages=1, "kafka-fsync"), acks=all, several independent
# librdkafka producers writing one single-partition topic, side by side.
#
# Usage: bench/one_partition.sh [ROUNDS]    (CARGO_TARGET_DIR must hold the release build:
#   cargo build --release -p strom-cli --locked --bin strom --example rdkafka-bench)
# Environment: PRODUCERS (default 8); ports STROM_PORT (29700, its HTTP listener on +1),
# KAFKA_PORT (29710), KAFKA_CONTROLLER_PORT (29711); STROM_BIN overrides the strom binary;
# STROM_BIN_B adds a second Strom, "strom-b" on STROM_PORT+2 (an older build, for
# before/after), to the same rounds.
#
# rdkafka-bench alternates the targets round by round (medians): 1,000,000 x 100 B and
# 200,000 x 1 KiB, acks=all, no compression, at linger.ms=5 and linger.ms=0, each from
# PRODUCERS producers to a fresh 1-partition topic. It prints each broker's CPU during the
# produce (/proc/PID/stat). Afterwards, the script prints Strom's
# strom_log_coalesced_appends_total: appends written with another append's write.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib.sh"
bench_help "$0" "$@"
warm_memory
ROUNDS=${1:-3}
: "${CARGO_TARGET_DIR:?set CARGO_TARGET_DIR}"
PRODUCERS=${PRODUCERS:-8}
STROM_PORT=${STROM_PORT:-29700}
KAFKA_PORT=${KAFKA_PORT:-29710}
KAFKA_CONTROLLER_PORT=${KAFKA_CONTROLLER_PORT:-29711}
DATA=/tmp/one-partition-bench

rm -rf "$DATA" && mkdir -p "$DATA"
BENCH_WIPE_DIRS+=("$DATA")
strom_start "$STROM_PORT" "$DATA/data" "$DATA/strom.out" \
  --set "http.listeners=http://127.0.0.1:$((STROM_PORT + 1))"
TARGETS=(--target "strom=127.0.0.1:$STROM_PORT@$STROM_PID")
STROM_A_PID=$STROM_PID
if [ -n "${STROM_BIN_B:-}" ]; then
  STROM_BIN=$STROM_BIN_B strom_start "$((STROM_PORT + 2))" "$DATA/data-b" "$DATA/strom-b.out"
  TARGETS+=(--target "strom-b=127.0.0.1:$((STROM_PORT + 2))@$STROM_PID")
  strom_wait "$((STROM_PORT + 2))"
fi
kafka_start "$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT" /tmp/one-partition-kafka-data /tmp/one-partition-kafka-run
TARGETS+=(--target "kafka=127.0.0.1:$KAFKA_PORT@$KAFKA_PID")
TARGETS+=(--target "kafka-fsync=127.0.0.1:$KAFKA_PORT@$KAFKA_PID" --topic-config kafka-fsync:flush.messages=1)
strom_wait "$STROM_PORT"

coalesced() {
  curl -s "http://127.0.0.1:$((STROM_PORT + 1))/metrics" |
    awk '$1 == "strom_log_coalesced_appends_total" { print $2 }'
}

for LINGER in 5 0; do
  echo "== $PRODUCERS producers, 1 partition, acks=all, linger.ms=$LINGER ($ROUNDS alternating rounds, medians)"
  before=$(coalesced)
  "$BIN/examples/rdkafka-bench" "${TARGETS[@]}" \
    --partitions 1 --producers "$PRODUCERS" --rounds "$ROUNDS" --linger-ms "$LINGER" \
    --produce 1000000,100,all,none --produce 200000,1024,all,none
  echo "strom (pid $STROM_A_PID): $(($(coalesced) - before)) appends written with another append's write"
  load_average
done
