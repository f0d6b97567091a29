#!/usr/bin/env python3
"""Drives a running Strom broker with kafka-python, a Kafka client that is not built on
librdkafka: admin (create/list/describe/delete), produce with acks=all (none and gzip),
keys and headers, and consume by assign() checking every record once, in order.

Usage: kafka_python_interop.py BOOTSTRAP. Exits non-zero with a message on any mismatch.
"""
import sys
import time

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType, NewTopic


def check(cond, message):
    if not cond:
        print(f"FAIL: {message}", file=sys.stderr)
        sys.exit(1)


def main():
    bootstrap = sys.argv[1]
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000)
    admin.create_topics([NewTopic("py-topic", 2, 1, topic_configs={"retention.ms": "86400000"})])
    check("py-topic" in admin.list_topics(), "created topic is listed")
    configs = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, "py-topic")])
    text = str(configs)
    check("retention.ms" in text and "86400000" in text, "describe_configs shows the override")

    sent = []
    for codec in (None, "gzip"):
        producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", compression_type=codec)
        for i in range(500):
            key = f"k{i}".encode()
            value = f"{codec}-{i}".encode()
            meta = producer.send("py-topic", key=key, value=value, partition=i % 2,
                                 headers=[("n", str(i).encode())]).get(timeout=20)
            check(meta.offset >= 0, "acks=all returns an offset")
            sent.append((i % 2, key, value, str(i).encode()))
        producer.flush()
        producer.close()

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                             auto_offset_reset="earliest", consumer_timeout_ms=10000)
    consumer.assign([TopicPartition("py-topic", 0), TopicPartition("py-topic", 1)])
    consumer.seek_to_beginning()
    got = []
    deadline = time.time() + 30
    while len(got) < len(sent) and time.time() < deadline:
        for records in consumer.poll(timeout_ms=500).values():
            for r in records:
                got.append((r.partition, r.key, r.value, dict(r.headers)["n"]))
    consumer.close()
    for p in (0, 1):
        check([g for g in got if g[0] == p] == [s for s in sent if s[0] == p],
              f"partition {p}: every record once, in order ({len(got)} of {len(sent)} read)")

    admin.delete_topics(["py-topic"])
    time.sleep(0.2)
    check("py-topic" not in admin.list_topics(), "deleted topic is gone")
    admin.close()
    print(f"kafka-python interop OK: {len(got)} records")


if __name__ == "__main__":
    main()
