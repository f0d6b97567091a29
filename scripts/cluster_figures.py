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
  scripts/cluster_figures.py bench [--binary ...] [--bench target/release/examples/rdkafka-bench]
                                   [--kafka-home ...] [--rounds 3] [--latency-rate auto]

`bench` runs both clusters at once (3 Strom nodes and 3 Kafka nodes, every node a combined
broker+controller, same properties) and drives them with the release `rdkafka-bench`
(librdkafka), rounds alternating Strom and Kafka, RF 3 topics of 3 partitions, after one
discarded warm-up round each (Kafka's JIT):

- produce throughput with acks=all, 1,000,000 x 100 B and 200,000 x 1 KiB: records/s, MB/s
  and the three brokers' summed user+system CPU per record;
- latency percentiles with acks=all at a fixed rate below both peaks (by default half of the
  lower of the two 100 B peaks just measured, rounded down to 10,000 records/s, for 15 s);
- failover: a 3-partition RF 3 topic; the leader of a partition that is not the active
  controller is SIGKILLed, then one acks=all record is sent to that partition through an
  already-connected librdkafka producer (`rdkafka-bench --failover-probe`); the figure is
  the time from the kill to that record's acknowledgement, i.e. the new leader's.

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


def run_bench(args, targets, *workloads):
    """rdkafka-bench --json over `targets` (name -> nodes) for `workloads` (its --produce
    values); returns {(workload name, target): result}."""
    cmd = [args.bench, "--json", "--rounds", str(args.rounds), "--replication-factor", "3"]
    for name, nodes in targets.items():
        bootstrap = ",".join(f"127.0.0.1:{n['port']}" for n in nodes)
        pids = "+".join(str(n["proc"].pid) for n in nodes)
        cmd += ["--target", f"{name}={bootstrap}@{pids}"]
    for w in workloads:
        cmd += ["--produce", w]
    print("+", " ".join(cmd), file=sys.stderr, flush=True)
    out = subprocess.check_output(cmd, text=True)
    results = {}
    for line in out.splitlines():
        if line.startswith("{"):
            r = json.loads(line)
            results[(r["workload"], r["target"])] = r
    return results


def partitions_of(admin, topic):
    """partition -> (leader, isr) as the cluster describes `topic`."""
    def field(d, *names):  # kafka-python's key names changed across versions
        return next(d[n] for n in names if n in d)
    for t in admin.describe_topics([topic]):
        if field(t, "topic", "name") == topic:
            return {field(p, "partition", "partition_index"):
                    (field(p, "leader", "leader_id"), sorted(field(p, "isr", "isr_nodes")))
                    for p in t["partitions"]}
    return {}


def failover(args, nodes):
    """Seconds from SIGKILL of a partition leader (not the active controller) to the
    acknowledgement of an acks=all record sent to that partition after the kill."""
    from kafka.admin import KafkaAdminClient, NewTopic

    bootstrap = ",".join(f"127.0.0.1:{n['port']}" for n in nodes)
    topic = f"failover-{uuid.uuid4().hex[:6]}"
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30000)
    admin.create_topics([NewTopic(topic, 3, 3)])
    wait(lambda: (ps := partitions_of(admin, topic)) and len(ps) == 3
         and all(l >= 0 and len(isr) == 3 for l, isr in ps.values()), 60, "full ISRs")
    controller = quorum_leader(nodes[0]["port"])
    parts = partitions_of(admin, topic)
    admin.close()
    # Prefer a partition whose leader is not the active controller (a data-plane failover
    # only); if the controller leads all three, take partition 0 and say so in the output.
    partition, (leader, _) = next(((p, v) for p, v in sorted(parts.items()) if v[0] != controller),
                                  (0, parts[0]))
    probe = subprocess.Popen([args.bench, "--failover-probe", bootstrap, topic, str(partition)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        def send():
            probe.stdin.write("send\n")
            probe.stdin.flush()
            return probe.stdout.readline().split(maxsplit=2)
        for _ in range(20):  # warm: connections and metadata in place, all acknowledged
            r = send()
            assert r and r[0] == "ok", f"warm-up produce failed: {r}"
        victim = next(n for n in nodes if n["id"] == leader)
        killed_ns = time.time_ns()
        os.killpg(victim["proc"].pid, signal.SIGKILL)
        victim["proc"].wait()
        r = send()
        assert r and r[0] == "ok", f"produce after the kill failed: {r}"
        return {"partition": partition, "killed_leader": leader, "active_controller": controller,
                "failover_s": round((int(r[1]) - killed_ns) / 1e9, 3)}
    finally:
        probe.stdin.close()
        probe.wait()


def bench(args):
    root = tempfile.mkdtemp(prefix="figures-bench-")
    clusters = {}
    load_before = open("/proc/loadavg").read().split()[:3]
    try:
        for kind in ("strom", "kafka"):
            os.makedirs(os.path.join(root, kind))
            clusters[kind], _ = start(kind, args, os.path.join(root, kind))
        time.sleep(5)  # let both settle (the internal topics)
        # One discarded round each, so Kafka's JVM is past its JIT warm-up when measured.
        run_bench(argparse.Namespace(**{**vars(args), "rounds": 1}), clusters,
                  "300000,100,all,none", "50000,1024,all,none")
        throughput = ["1000000,100,all,none", "200000,1024,all,none"]
        res = run_bench(args, clusters, *throughput)
        peak = {}
        rows = []
        for (workload, target), r in sorted(res.items()):
            records, size = (int(x) for x in workload.split()[1:4:2])
            cpu_us = r["broker_cpu_ms"] * 1000 / records if r["broker_cpu_ms"] is not None else None
            rows.append({"workload": workload, "target": target, "records_per_s": r["produce_rps"],
                         "mb_per_s": r["produce_mbps"], "broker_cpu_ms": r["broker_cpu_ms"],
                         "broker_cpu_us_per_record": cpu_us and round(cpu_us, 3),
                         "p50_ms": r["p50_ms"], "p99_ms": r["p99_ms"]})
            peak.setdefault(size, {})[target] = r["produce_rps"]
        if args.latency_rate == "auto":
            rate = max(10000, int(min(peak[100].values()) / 2) // 10000 * 10000)
        else:
            rate = int(args.latency_rate)
        below = all(rate < v for v in peak[100].values())
        lat = run_bench(args, clusters, f"{rate * args.latency_seconds},100,all,none,{rate}")
        latency = [{"workload": w, "target": t, "rate": rate, "below_both_peaks": below,
                    "achieved_records_per_s": r["produce_rps"], "p50_ms": r["p50_ms"],
                    "p99_ms": r["p99_ms"], "p999_ms": r["p999_ms"], "max_ms": r["max_ms"]}
                   for (w, t), r in sorted(lat.items())]
        fail = {kind: failover(args, nodes) for kind, nodes in clusters.items()}
        load_after = open("/proc/loadavg").read().split()[:3]
        print(json.dumps({"throughput": rows, "latency": latency, "failover": fail,
                          "loadavg_before": load_before, "loadavg_after": load_after},
                         indent=1))
    finally:
        for nodes in clusters.values():
            stop(nodes)
        shutil.rmtree(root, ignore_errors=True)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("kind", choices=["strom", "kafka", "bench"])
    p.add_argument("--binary", default="target/release/strom")
    p.add_argument("--kafka-home",
                   default=os.path.expanduser("~/.cache/strom-peers/kafka/kafka_2.13-4.1.0"))
    p.add_argument("--topics", type=int, default=20)
    p.add_argument("--bench", default="target/release/examples/rdkafka-bench")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--latency-rate", default="auto",
                   help="records/s for the latency run, or auto (half the lower 100 B peak)")
    p.add_argument("--latency-seconds", type=int, default=15)
    args = p.parse_args()
    if args.kind == "bench":
        return bench(args)
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
