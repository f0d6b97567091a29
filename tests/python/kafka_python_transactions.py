#!/usr/bin/env python3
"""Transactions with kafka-python (a client not built on librdkafka, modelled on the Java
one): a committed and an aborted transaction, read back under read_committed (only the
committed values) and read_uncommitted (both).

Usage: kafka_python_transactions.py BOOTSTRAP. Exits non-zero with a message on any mismatch.
"""
import sys
import time

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic


def check(cond, message):
    if not cond:
        print(f"FAIL: {message}", file=sys.stderr)
        sys.exit(1)


def read(bootstrap, isolation, want):
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, isolation_level=isolation,
                             enable_auto_commit=False, auto_offset_reset="earliest")
    consumer.assign([TopicPartition("py-txn", 0)])
    seen = []
    deadline = time.time() + 15
    quiet_until = None
    while time.time() < deadline:
        batch = consumer.poll(timeout_ms=200)
        fresh = [r.value.decode() for records in batch.values() for r in records]
        seen.extend(fresh)
        if len(seen) >= want:
            # Keep polling a little: nothing more may arrive.
            quiet_until = quiet_until or time.time() + 1.0
            if time.time() > quiet_until:
                break
    consumer.close()
    return seen


def main():
    bootstrap = sys.argv[1]
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000)
    admin.create_topics([NewTopic("py-txn", 1, 1)])
    producer = KafkaProducer(bootstrap_servers=bootstrap, transactional_id="py-tx")
    producer.init_transactions()
    producer.begin_transaction()
    for i in range(3):
        producer.send("py-txn", value=f"commit-{i}".encode(), partition=0)
    producer.commit_transaction()
    producer.begin_transaction()
    for i in range(3):
        producer.send("py-txn", value=f"abort-{i}".encode(), partition=0)
    producer.flush()
    producer.abort_transaction()
    producer.begin_transaction()
    producer.send("py-txn", value=b"commit-3", partition=0)
    producer.commit_transaction()
    producer.close()

    committed = read(bootstrap, "read_committed", 4)
    check(committed == ["commit-0", "commit-1", "commit-2", "commit-3"],
          f"read_committed sees only committed values, got {committed}")
    everything = read(bootstrap, "read_uncommitted", 7)
    check(sorted(everything) == sorted(committed + ["abort-0", "abort-1", "abort-2"]),
          f"read_uncommitted sees all values, got {everything}")
    print("kafka-python transactions OK")


if __name__ == "__main__":
    main()
