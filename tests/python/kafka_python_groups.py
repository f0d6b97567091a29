#!/usr/bin/env python3
"""Consumer groups on a running Strom broker driven by kafka-python (not librdkafka):
three members of one group on a six-partition topic get two partitions each; when one leaves,
the other two take over all six; every record is consumed exactly once across the group;
committed offsets, ListGroups, DescribeGroups, OffsetFetch, OffsetDelete and DeleteGroups agree.

Usage: kafka_python_groups.py BOOTSTRAP. Exits non-zero with a message on any mismatch.
"""
import sys
import threading
import time

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic

TOPIC = "py-groups"
GROUP = "py-group"
PARTITIONS = 6


def check(cond, message):
    if not cond:
        print(f"FAIL: {message}", file=sys.stderr)
        sys.exit(1)


def produce(bootstrap, start, count):
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    for i in range(start, start + count):
        producer.send(TOPIC, value=str(i).encode(), partition=i % PARTITIONS)
    producer.flush()
    producer.close()


class Member(threading.Thread):
    """One group member polling in its own thread, committing synchronously after every
    poll (so a rebalance, which happens inside poll, never re-delivers a record)."""

    def __init__(self, bootstrap, name, consumed, lock):
        super().__init__(daemon=True)
        self.name = name
        self.consumed = consumed
        self.lock = lock
        self.stop = threading.Event()
        self.error = None
        self.assignment = set()
        self.consumer = KafkaConsumer(
            TOPIC, bootstrap_servers=bootstrap, group_id=GROUP, client_id=name,
            enable_auto_commit=False, auto_offset_reset="earliest",
            session_timeout_ms=6000, heartbeat_interval_ms=500, max_poll_interval_ms=20000,
            request_timeout_ms=30000)

    def run(self):
        try:
            while not self.stop.is_set():
                batches = self.consumer.poll(timeout_ms=100)
                got = [(r.partition, r.offset, r.value) for rs in batches.values() for r in rs]
                if got:
                    self.consumer.commit()
                    with self.lock:
                        self.consumed.extend((self.name,) + g for g in got)
                self.assignment = {tp.partition for tp in self.consumer.assignment()}
            self.consumer.close()  # sends LeaveGroup
        except Exception as e:  # reported by the main thread
            self.error = e


def wait_for(cond, timeout, message):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return
        time.sleep(0.1)
    check(False, message)


def main():
    bootstrap = sys.argv[1]
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30000)
    admin.create_topics([NewTopic(TOPIC, PARTITIONS, 1)])

    consumed, lock = [], threading.Lock()
    members = [Member(bootstrap, f"py-member-{i}", consumed, lock) for i in range(3)]
    for m in members:
        m.start()

    def spread(ms, sizes):
        owned = [m.assignment for m in ms]
        return (sorted(len(a) for a in owned) == sizes
                and set().union(*owned) == set(range(PARTITIONS)))

    wait_for(lambda: spread(members, [2, 2, 2]), 60,
             f"three members own two partitions each "
             f"(owned {[sorted(m.assignment) for m in members]})")
    # Produced once the group is stable: a clean run has no rebalance while reading.
    produce(bootstrap, 0, 600)
    wait_for(lambda: len(consumed) >= 600, 60, f"600 records read (read {len(consumed)})")

    info = admin.describe_groups([GROUP])[GROUP]
    check(info["group_state"] == "Stable", f"group is Stable: {info}")
    check(len(info["members"]) == 3, "DescribeGroups shows three members")
    check(info["protocol_type"] == "consumer", "protocol type is consumer")
    listed = {g["group_id"]: g for g in admin.list_groups()}
    check(GROUP in listed, f"ListGroups lists the group: {listed}")

    # One member leaves (LeaveGroup): the other two take over all six partitions.
    members[2].stop.set()
    members[2].join(20)
    wait_for(lambda: spread(members[:2], [3, 3]), 30,
             f"two members cover six partitions "
             f"(owned {[sorted(m.assignment) for m in members[:2]]})")
    produce(bootstrap, 600, 60)
    wait_for(lambda: len(consumed) >= 660, 30, f"660 records read (read {len(consumed)})")
    for m in members:
        check(m.error is None, f"{m.name} failed: {m.error}")

    values = sorted(int(v) for (_, _, _, v) in consumed)
    check(values == list(range(660)), f"every record once across the group ({len(values)} read)")

    offsets = admin.list_group_offsets({GROUP: None})[GROUP]
    committed = {tp.partition: om.offset for tp, om in offsets.items() if tp.topic == TOPIC}
    check(committed == {p: 110 for p in range(PARTITIONS)}, f"committed offsets: {committed}")

    # Live consumers keep their topic's offsets; an empty group can be deleted.
    tp0 = TopicPartition(TOPIC, 0)
    deleted = admin.delete_group_offsets(GROUP, [tp0])
    check(deleted[tp0].__name__ == "GroupSubscribedToTopicError", f"OffsetDelete: {deleted}")
    for m in members[:2]:
        m.stop.set()
        m.join(20)
    wait_for(lambda: admin.describe_groups([GROUP])[GROUP]["group_state"] == "Empty", 20,
             "the group is Empty once every member left")
    empty = [g["group_id"] for g in admin.list_groups(states_filter=["Empty"])]
    check(GROUP in empty, f"ListGroups filters by state: {empty}")
    result = admin.delete_groups([GROUP])
    check(result.get(GROUP) == "OK", f"DeleteGroups: {result}")
    check(GROUP not in [g["group_id"] for g in admin.list_groups()], "deleted group is gone")
    admin.close()
    print("kafka-python groups OK")


if __name__ == "__main__":
    main()
