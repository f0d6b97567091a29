#!/usr/bin/env python3
"""File connectors: Strom Connect against Kafka Connect, same machine, same run, alternating.

Three setups, each round in turn:
  kc-kafka     Kafka Connect 4.1 standalone (connect-standalone.sh) against an Apache Kafka broker
  kc-strom     Kafka Connect 4.1 standalone against a Strom broker
  strom-strom  `strom connect standalone` against the same Strom broker

For each setup and round:
  source   FileStreamSource of LINES lines (100 B each) into a new 1-partition topic.
           steady rec/s = LINES / (CreateTime of the last record - CreateTime of the first);
           wall = from starting the worker process until the topic holds LINES records.
  sink     FileStreamSink of that topic to a file.
           steady rec/s = LINES / (file complete - first bytes in the file), polled every 10 ms;
           wall = from starting the worker process until the file is complete.
  latency  a running FileStreamSink; RATE records/s for SECONDS seconds produced (confluent-kafka,
           acks=1, linger.ms=0) with the send time in the value, into a LogAppendTime topic; the
           file is tailed (1 ms polls) and each line's arrival time minus the broker's append
           time (from the delivery report) is its broker-to-file latency; minus its send time,
           its produce-to-file latency.

Both runtimes get the same worker settings (StringConverter, offset.flush.interval.ms=10000) and
their default producer/consumer settings. Kafka runs from $KAFKA_HOME on 127.0.0.1:29092 (own data
and run dirs, wiped), Strom from $STROM_BIN on 127.0.0.1:29192. Every process started here is
stopped at the end (also on failure).

Usage: bench/connect_file.py [--lines 1000000] [--rounds 2] [--rate 5000] [--seconds 10]
Needs: java 17, python3 with confluent-kafka.
"""

import argparse
import os
import signal
import statistics
import subprocess
import sys
import threading
import time

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

HERE = os.path.dirname(os.path.abspath(__file__))
KAFKA_HOME = os.environ.get(
    "KAFKA_HOME", os.path.expanduser("~/.cache/strom-peers/kafka/kafka_2.13-4.1.0")
)
STROM_BIN = os.environ.get("STROM_BIN", "/work/bin/strom")
PEERS = os.environ.get("PEERS", "/work/shared/peers")
WORK = os.environ.get("WORK", "/tmp/connect-file-bench")
KAFKA_PORT, STROM_PORT = 29092, 29192
KAFKA_ENV = {
    "KAFKA_PORT": str(KAFKA_PORT),
    "KAFKA_CONTROLLER_PORT": "29093",
    "KAFKA_DATA_DIR": f"{WORK}/kafka-data",
    "KAFKA_RUN_DIR": f"{WORK}/kafka-run",
    "KAFKA_FRESH": "1",
    "KAFKA_HEAP_OPTS": "-Xmx1g",
}
FILE_JAR = f"{KAFKA_HOME}/libs/connect-file-4.1.0.jar"

started = []  # Popen objects to stop at the end


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def spawn(cmd, logfile, env=None):
    out = open(logfile, "wb")
    p = subprocess.Popen(
        cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        env={**os.environ, **(env or {})},
    )
    started.append(p)
    return p


def stop(p, timeout=30):
    if p.poll() is None:
        os.killpg(p.pid, signal.SIGTERM)
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
    if p in started:
        started.remove(p)


def wait_port(port, timeout=120):
    import socket
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listening on {port}")


def create_topic(bootstrap, name, config=None):
    a = AdminClient({"bootstrap.servers": bootstrap})
    nt = NewTopic(name, num_partitions=1, replication_factor=1, config=config or {})
    a.create_topics([nt])[name].result(30)
    for _ in range(100):
        md = a.list_topics(topic=name, timeout=10).topics.get(name)
        if md and md.error is None and len(md.partitions) == 1:
            return
        time.sleep(0.1)


def end_offset(bootstrap, topic):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-probe"})
    try:
        return c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)[1]
    finally:
        c.close()


def record_ts(bootstrap, topic, offset):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-probe",
                  "enable.auto.commit": False})
    try:
        c.assign([TopicPartition(topic, 0, offset)])
        while True:
            m = c.poll(10)
            if m is not None and not m.error():
                return m.timestamp()[1]
    finally:
        c.close()


def worker_props(d, bootstrap, rest_port, runtime):
    lines = [
        f"bootstrap.servers={bootstrap}",
        "key.converter=org.apache.kafka.connect.storage.StringConverter",
        "value.converter=org.apache.kafka.connect.storage.StringConverter",
        f"offset.storage.file.filename={d}/offsets",
        "offset.flush.interval.ms=10000",
        f"listeners=http://127.0.0.1:{rest_port}",
        f"plugin.path={FILE_JAR}",
    ]
    path = f"{d}/worker-{runtime}.properties"
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


def connector_props(d, name, lines):
    path = f"{d}/{name}.properties"
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


def run_worker(setup, d, worker, connector, tag):
    if setup.startswith("kc-"):
        cmd = [f"{KAFKA_HOME}/bin/connect-standalone.sh", worker, connector]
        env = {"KAFKA_HEAP_OPTS": "-Xmx1g", "LOG_DIR": f"{d}/kc-logs"}
    else:
        cmd = [STROM_BIN, "connect", "standalone", worker, connector]
        env = {"STROM_LOG": "warn"}
    return spawn(cmd, f"{d}/{tag}.log", env)


def source_run(setup, bootstrap, d, infile, n, topic, port):
    create_topic(bootstrap, topic)
    w = worker_props(d, bootstrap, port, setup)
    c = connector_props(d, f"source-{topic}", [
        f"name=src-{topic}", "connector.class=FileStreamSource", "tasks.max=1",
        f"file={infile}", f"topic={topic}"])
    t0 = time.time()
    p = run_worker(setup, d, w, c, f"source-{topic}")
    while end_offset(bootstrap, topic) < n:
        if p.poll() is not None:
            raise RuntimeError(f"{setup} source worker exited; see {d}/source-{topic}.log")
        time.sleep(0.2)
    wall = time.time() - t0
    stop(p)
    first, last = record_ts(bootstrap, topic, 0), record_ts(bootstrap, topic, n - 1)
    steady = n / max((last - first) / 1000.0, 1e-3)
    return steady, wall


def sink_run(setup, bootstrap, d, n, size, topic, port):
    out = f"{d}/sink-{topic}.txt"
    w = worker_props(d, bootstrap, port, setup)
    c = connector_props(d, f"sink-{topic}", [
        f"name=sink-{topic}", "connector.class=FileStreamSink", "tasks.max=1",
        f"file={out}", f"topics={topic}"])
    t0 = time.time()
    p = run_worker(setup, d, w, c, f"sink-{topic}")
    first = None
    while True:
        s = os.path.getsize(out) if os.path.exists(out) else 0
        now = time.time()
        if s > 0 and first is None:
            first = now
        if s >= size:
            break
        if p.poll() is not None:
            raise RuntimeError(f"{setup} sink worker exited; see {d}/sink-{topic}.log")
        time.sleep(0.01)
    done = time.time()
    stop(p)
    with open(out, "rb") as f:
        got = sum(1 for _ in f)
    assert got == n, f"{setup}: {got} lines in the sink file, want {n}"
    return n / max(done - first, 1e-3), done - t0


def latency_run(setup, bootstrap, d, topic, port, rate, seconds):
    # LogAppendTime: the delivery report carries the broker's append time of each record.
    create_topic(bootstrap, topic, {"message.timestamp.type": "LogAppendTime"})
    out = f"{d}/lat-{topic}.txt"
    open(out, "w").close()
    w = worker_props(d, bootstrap, port, setup)
    c = connector_props(d, f"lat-{topic}", [
        f"name=lat-{topic}", "connector.class=FileStreamSink", "tasks.max=1",
        f"file={out}", f"topics={topic}"])
    p = run_worker(setup, d, w, c, f"lat-{topic}")
    prod = Producer({"bootstrap.servers": bootstrap, "acks": "1", "linger.ms": 0})
    # Warm-up: wait until the sink has written a first record.
    deadline = time.time() + 90
    while os.path.getsize(out) == 0:
        prod.produce(topic, b"warmup")
        prod.flush()
        if time.time() > deadline or p.poll() is not None:
            raise RuntimeError(f"{setup} latency sink did not start; see {d}/lat-{topic}.log")
        time.sleep(0.5)
    time.sleep(1)
    arrived = {}
    appended = {}
    stop_tail = threading.Event()

    def on_delivery(err, msg):
        if err is None and msg.timestamp()[0] == 2:  # TIMESTAMP_LOG_APPEND_TIME
            appended[msg.value()] = msg.timestamp()[1]

    def tail():
        with open(out, "rb") as f:
            f.seek(0, 2)
            buf = b""
            while not stop_tail.is_set():
                chunk = f.read()
                now = time.time_ns()
                if not chunk:
                    time.sleep(0.001)
                    continue
                buf += chunk
                *lines, buf = buf.split(b"\n")
                for line in lines:
                    if line.startswith(b"t"):
                        arrived[line] = now

    th = threading.Thread(target=tail)
    th.start()
    total = rate * seconds
    start = time.time()
    for i in range(total):
        due = start + i / rate
        while True:
            delay = due - time.time()
            if delay <= 0:
                break
            time.sleep(min(delay, 0.001))
        prod.produce(topic, b"t%019d" % time.time_ns(), on_delivery=on_delivery)
        prod.poll(0)
    prod.flush()
    end = time.time() + 30
    while len(arrived) < total and time.time() < end:
        time.sleep(0.05)
    stop_tail.set()
    th.join()
    stop(p)
    lat = sorted((t - int(v[1:20])) / 1e6 for v, t in arrived.items())
    b2s = sorted(t / 1e6 - appended[v] for v, t in arrived.items() if v in appended)
    q = lambda l, x: l[min(len(l) - 1, int(x * len(l)))] if l else float("nan")
    return {"n": len(lat), "want": total, "p50": q(lat, 0.5), "p99": q(lat, 0.99),
            "max": lat[-1], "b2s_n": len(b2s), "b2s_p50": q(b2s, 0.5), "b2s_p99": q(b2s, 0.99)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--rate", type=int, default=5000)
    ap.add_argument("--seconds", type=int, default=10)
    args = ap.parse_args()
    subprocess.run(["rm", "-rf", WORK], check=True)
    os.makedirs(WORK)
    infile = f"{WORK}/input.txt"
    with open(infile, "wb") as f:
        for i in range(args.lines):
            f.write(b"%09d " % i + b"x" * 90 + b"\n")
    size = os.path.getsize(infile)

    env = {**os.environ, **KAFKA_ENV}
    r = subprocess.run([f"{PEERS}/kafka-start.sh"], env=env, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"kafka-start failed: {r.stderr}")
    strom = spawn([STROM_BIN, "server",
                   "--set", f"listeners=PLAINTEXT://127.0.0.1:{STROM_PORT}",
                   "--set", f"log.dirs={WORK}/strom-data",
                   "--set", "http.listeners=",
                   "--set", "group.initial.rebalance.delay.ms=0"],
                  f"{WORK}/strom-server.log", {"STROM_LOG": "warn"})
    wait_port(STROM_PORT)
    setups = [("kc-kafka", f"127.0.0.1:{KAFKA_PORT}"),
              ("kc-strom", f"127.0.0.1:{STROM_PORT}"),
              ("strom-strom", f"127.0.0.1:{STROM_PORT}")]
    results = {s: {"source": [], "sink": [], "lat": []} for s, _ in setups}
    port = 28083
    try:
        for rnd in range(1, args.rounds + 1):
            for setup, b in setups:
                d = f"{WORK}/{setup}-{rnd}"
                os.makedirs(d)
                topic = f"lines-{setup}-{rnd}"
                port += 1
                src = source_run(setup, b, d, infile, args.lines, topic, port)
                log(f"round {rnd} {setup} source: {src[0]:,.0f} rec/s steady, {src[1]:.1f} s wall")
                results[setup]["source"].append(src)
                port += 1
                snk = sink_run(setup, b, d, args.lines, size, topic, port)
                log(f"round {rnd} {setup} sink: {snk[0]:,.0f} rec/s steady, {snk[1]:.1f} s wall")
                results[setup]["sink"].append(snk)
                port += 1
                lat = latency_run(setup, b, d, f"lat-{setup}-{rnd}", port, args.rate, args.seconds)
                log(f"round {rnd} {setup} sink latency: {lat}")
                results[setup]["lat"].append(lat)
    finally:
        for p in list(started):
            stop(p)
        subprocess.run([f"{PEERS}/kafka-stop.sh"], env=env, capture_output=True)

    print(f"\n{args.lines:,} lines x 100 B, {args.rounds} rounds alternating; "
          f"latency at {args.rate:,} rec/s for {args.seconds} s\n")
    print("| setup | file source rec/s (steady) | source wall s | file sink rec/s (steady) "
          "| sink wall s | broker→file p50 | p99 | produce→file p50 | p99 | max |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    med = {}
    for s, _ in setups:
        r = results[s]
        so = statistics.median(x[0] for x in r["source"])
        si = statistics.median(x[0] for x in r["sink"])
        med[s] = (so, si)
        lat = r["lat"]
        print(f"| {s} | {so:,.0f} ({', '.join(f'{x[0]:,.0f}' for x in r['source'])}) "
              f"| {statistics.median(x[1] for x in r['source']):.1f} "
              f"| {si:,.0f} ({', '.join(f'{x[0]:,.0f}' for x in r['sink'])}) "
              f"| {statistics.median(x[1] for x in r['sink']):.1f} "
              f"| {statistics.median(l['b2s_p50'] for l in lat):.1f} ms "
              f"| {statistics.median(l['b2s_p99'] for l in lat):.1f} ms "
              f"| {statistics.median(l['p50'] for l in lat):.1f} ms "
              f"| {statistics.median(l['p99'] for l in lat):.1f} ms "
              f"| {statistics.median(l['max'] for l in lat):.1f} ms |")
    k, ks, st = med["kc-kafka"], med["kc-strom"], med["strom-strom"]
    print(f"\nratio strom-strom / kc-kafka: source {st[0] / k[0]:.2f}x, sink {st[1] / k[1]:.2f}x; "
          f"strom-strom / kc-strom: source {st[0] / ks[0]:.2f}x, sink {st[1] / ks[1]:.2f}x")


if __name__ == "__main__":
    main()
