#!/usr/bin/env bash
# Durable mode (group commit) against Kafka 4.1, side by side (bench/RESULTS.md, "Durable mode").
#
# Usage: bench/durable.sh [ROUNDS]      (CARGO_TARGET_DIR must hold the release build:
#   cargo build --release -p strom-cli --bin strom --example rdkafka-bench)
#
# Starts one Strom (log.flush.before.ack.enable=true: every acknowledgement after a group-commit
# fsync) on 127.0.0.1:29192 and a private Kafka 4.1 (defaults: no fsync) on 127.0.0.1:19392,
# then, alternating targets round by round and taking medians:
#   1. rdkafka-bench, acks=all, 1,000,000 x 100 B and 200,000 x 1 KiB, no compression, against
#      strom (durable), strom-pagecache (same broker, topics with flush.before.ack.enable=false),
#      kafka (defaults) and kafka-fsync (same Kafka, topics with flush.messages=1, i.e. Kafka's
#      log.flush.interval.messages=1 for those topics);
#   2. the same at linger.ms=0 (strom, kafka, kafka-fsync);
#   3. side_by_side.py (kcat on librdkafka 2.16, acks=1) with --pids: throughput and broker CPU
#      ms per million records, produce and consume, 100 B and 1 KiB.
# Both brokers are stopped at the end.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib.sh"
bench_help "$0" "$@"
ROUNDS=${1:-3}
: "${CARGO_TARGET_DIR:?set CARGO_TARGET_DIR}"
DATA=/tmp/perf-strom-bench

rm -rf "$DATA" && mkdir -p "$DATA"
strom_start 29192 "$DATA/data" "$DATA/strom.out" --set log.flush.before.ack.enable=true
kafka_start 19392 19393 /tmp/perf-kafka-data /tmp/perf-kafka-run
strom_wait 29192

echo "== acks=all throughput (rdkafka-bench, $ROUNDS alternating rounds, medians)"
"$BIN/examples/rdkafka-bench" \
  --target "strom=127.0.0.1:29192@$STROM_PID" \
  --target "strom-pagecache=127.0.0.1:29192@$STROM_PID" \
  --target "kafka=127.0.0.1:19392@$KAFKA_PID" \
  --target "kafka-fsync=127.0.0.1:19392@$KAFKA_PID" \
  --topic-config strom-pagecache:flush.before.ack.enable=false \
  --topic-config kafka-fsync:flush.messages=1 \
  --rounds "$ROUNDS" \
  --produce 1000000,100,all,none --produce 200000,1024,all,none

echo "== the same with linger.ms=0 (smaller batches: more appends, so more fsyncs for kafka-fsync)"
"$BIN/examples/rdkafka-bench" \
  --target "strom=127.0.0.1:29192@$STROM_PID" \
  --target "kafka=127.0.0.1:19392@$KAFKA_PID" \
  --target "kafka-fsync=127.0.0.1:19392@$KAFKA_PID" \
  --topic-config kafka-fsync:flush.messages=1 \
  --rounds "$ROUNDS" --linger-ms 0 \
  --produce 1000000,100,all,none --produce 200000,1024,all,none

echo "== kcat side by side, broker CPU per million records (side_by_side.py --pids)"
python3 "$PEERS/side_by_side.py" 127.0.0.1:29192 127.0.0.1:19392 --reps "$ROUNDS" \
  --labels strom,kafka --pids "$STROM_PID,$KAFKA_PID"
