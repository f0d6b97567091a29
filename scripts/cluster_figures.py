#!/usr/bin/env python3
"""Control-plane figures of a 3-node cluster, for Strom and for Apache Kafka 4.1, from the
same server.properties files (only the binary changes):

- CreateTopics latency (RF 3, one partition each) through the active controller;
- time until a survivor names a new active controller after SIGKILL of the current one;
- time until the killed broker is fenced (gone from Metadata), with default heartbeat and
  session timeout settings (2 s / 9 s for both).

Usage:
  scripts/cluster_figures.py strom [--binary target/release/strom]
  scripts/cluster_figures.py kafka [--kafka-home ~/.cache/strom-peers/kafka/kafka_2.13-4.1.0]

Kafka comes from ../shared/peers (kafka-assemble.sh). Needs kafka-python. Prints one JSON line.
This is a measurement on a noisy 2-core machine, not a test.
"""

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import uuid

NODES = 3


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def metadata(port, timeout=2.0):
    """Metadata v4 (no topics): (controller_id, sorted broker ids), or None."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            client = b"figures"
            body = struct.pack(">hhih", 3, 4, 1, len(client)) + client
            body += struct.pack(">i", 0) + b"\x00"  # topics: empty array; allow_auto_create
            s.sendall(struct.pack(">i", len(body)) + body)
            size = struct.unpack(">i", recv_exact(s, 4))[0]
            data = recv_exact(s, size)
    except OSError:
        return None
    pos = 4 + 4  # correlation id, throttle
    (n,) = struct.unpack_from(">i", data, pos)
    pos += 4
    brokers = []
    for _ in range(n):
        (node,) = struct.unpack_from(">i", data, pos)
        pos += 4
        (hlen,) = struct.unpack_from(">h", data, pos)
        pos += 2 + hlen + 4
        (rlen,) = struct.unpack_from(">h", data, pos)
        pos += 2 + max(rlen, 0)
        brokers.append(node)
    (clen,) = struct.unpack_from(">h", data, pos)
    pos += 2 + max(clen, 0)
    (controller,) = struct.unpack_from(">i", data, pos)
    return controller, sorted(brokers)


def uvarint(n):
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def read_uvarint(data, pos):
    shift = value = 0
    while True:
        b = data[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, pos
        shift += 7


def quorum_leader(port, timeout=2.0):
    """DescribeQuorum v0 for __cluster_metadata-0: the Raft leader's id, or None. (Kafka's
    Metadata names a random broker as "controller"; only this names the active controller.)"""
    name = b"__cluster_metadata"
    client = b"figures"
    body = struct.pack(">hhih", 55, 0, 1, len(client)) + client + b"\x00"
    body += uvarint(2) + uvarint(len(name) + 1) + name + uvarint(2)
    body += struct.pack(">i", 0) + b"\x00" + b"\x00" + b"\x00"
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(struct.pack(">i", len(body)) + body)
            size = struct.unpack(">i", recv_exact(s, 4))[0]
            data = recv_exact(s, size)
    except OSError:
        return None
    pos = 4
    _, pos = read_uvarint(data, pos)  # header tagged fields
    (error,) = struct.unpack_from(">h", data, pos)
    pos += 2
    if error:
        return None
    _, pos = read_uvarint(data, pos)  # topics
    nlen, pos = read_uvarint(data, pos)
    pos += nlen - 1
    _, pos = read_uvarint(data, pos)  # partitions
    _, perr, leader = struct.unpack_from(">ihi", data, pos)
    return leader if perr == 0 and leader >= 0 else None


def recv_exact(s, n):
    out = b""
    while len(out) < n:
        chunk = s.recv(n - len(out))
        if not chunk:
            raise OSError("closed")
        out += chunk
    return out


def properties(node, nodes, data):
    voters = ",".join(f"{n['id']}@127.0.0.1:{n['cport']}" for n in nodes)
    return f"""process.roles=broker,controller
node.id={node['id']}
controller.quorum.voters={voters}
listeners=PLAINTEXT://127.0.0.1:{node['port']},CONTROLLER://127.0.0.1:{node['cport']}
advertised.listeners=PLAINTEXT://127.0.0.1:{node['port']}
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs={data}
offsets.topic.replication.factor=3
transaction.state.log.replication.factor=3
group.initial.rebalance.delay.ms=0
"""


def start(kind, args, root):
    nodes = [{"id": i, "port": free_port(), "cport": free_port()} for i in range(1, NODES + 1)]
    cluster_id = None
    for n in nodes:
        d = os.path.join(root, f"node-{n['id']}")
        os.makedirs(d)
        n["dir"] = d
        n["props"] = os.path.join(d, "server.properties")
        with open(n["props"], "w") as f:
            f.write(properties(n, nodes, os.path.join(d, "data")))
    if kind == "kafka":
        storage = os.path.join(args.kafka_home, "bin", "kafka-storage.sh")
        cluster_id = subprocess.check_output([storage, "random-uuid"], text=True).strip()
        for n in nodes:
            env = dict(os.environ, LOG_DIR=os.path.join(n["dir"], "logs"))
            subprocess.check_call([storage, "format", "-t", cluster_id, "-c", n["props"]],
                                  stdout=subprocess.DEVNULL, env=env)
    t0 = time.time()
    for n in nodes:
        log = open(os.path.join(n["dir"], "server.log"), "w")
        if kind == "strom":
            cmd = [args.binary, "server", "--config", n["props"]]
            env = dict(os.environ)
        else:
            cmd = [os.path.join(args.kafka_home, "bin", "kafka-server-start.sh"), n["props"]]
            env = dict(os.environ, KAFKA_HEAP_OPTS="-Xmx1g", LOG_DIR=os.path.join(n["dir"], "logs"),
                       KAFKA_JMX_OPTS="-Djava.rmi.server.hostname=127.0.0.1")
        n["proc"] = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env,
                                     start_new_session=True)
    wait(lambda: all((m := metadata(n["port"])) and m[1] == [1, 2, 3] and m[0] > 0 for n in nodes),
         180, "the cluster to form")
    return nodes, time.time() - t0


def wait(cond, timeout, what):
    start = time.time()
    while time.time() - start < timeout:
        if cond():
            return time.time() - start
        time.sleep(0.02)
    raise SystemExit(f"timed out waiting for {what}")


def stop(nodes):
    for n in nodes:
        if n["proc"].poll() is None:
            os.killpg(n["proc"].pid, signal.SIGKILL)
            n["proc"].wait()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("kind", choices=["strom", "kafka"])
    p.add_argument("--binary", default="target/release/strom")
    p.add_argument("--kafka-home",
                   default=os.path.expanduser("~/.cache/strom-peers/kafka/kafka_2.13-4.1.0"))
    p.add_argument("--topics", type=int, default=20)
    args = p.parse_args()
    from kafka.admin import KafkaAdminClient, NewTopic

    root = tempfile.mkdtemp(prefix=f"figures-{args.kind}-")
    nodes = []
    try:
        nodes, formed = start(args.kind, args, root)
        bootstrap = ",".join(f"127.0.0.1:{n['port']}" for n in nodes)
        admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30000)
        latencies = []
        for i in range(args.topics):
            t = time.time()
            admin.create_topics([NewTopic(f"fig-{i}-{uuid.uuid4().hex[:6]}", 1, 3)])
            latencies.append((time.time() - t) * 1000)
        admin.close()
        controller = quorum_leader(nodes[0]["port"])
        victim = next(n for n in nodes if n["id"] == controller)
        survivor = next(n for n in nodes if n["id"] != controller)
        t_kill = time.time()
        os.killpg(victim["proc"].pid, signal.SIGKILL)
        victim["proc"].wait()
        elected = wait(lambda: quorum_leader(survivor["port"]) not in (None, controller),
                       120, "a new controller")
        wait(lambda: (m := metadata(survivor["port"])) and controller not in m[1],
             120, "the dead broker fenced")
        fenced = time.time() - t_kill
        print(json.dumps({
            "kind": args.kind,
            "cluster_formed_s": round(formed, 2),
            "create_topic_ms_median": round(statistics.median(latencies), 1),
            "create_topic_ms_max": round(max(latencies), 1),
            "new_controller_after_sigkill_s": round(elected, 2),
            "dead_broker_fenced_after_sigkill_s": round(fenced, 2),
        }))
    finally:
        stop(nodes)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
