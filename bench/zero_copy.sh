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
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib.sh"
bench_help "$0" "$@"
warm_memory
ROUNDS=${1:-3}
: "${CARGO_TARGET_DIR:?set CARGO_TARGET_DIR}"
DATA=/tmp/zcopy-strom-bench

rm -rf "$DATA" && mkdir -p "$DATA"
strom_start 29510 "$DATA/zc" "$DATA/strom.out"
STROM_PID_ZC=$STROM_PID
STROM_FETCH_ZERO_COPY=off strom_start 29511 "$DATA/copy" "$DATA/strom-copy.out"
COPY_PID=$STROM_PID
STROM_PID=$STROM_PID_ZC
kafka_start 29520 29521 /tmp/zcopy-kafka-data /tmp/zcopy-kafka-run
strom_wait 29510
strom_wait 29511
load_average

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
load_average
