#!/usr/bin/env python3
"""Many partitions on one broker (issue 20): creation time, idle RSS, open files, threads,
start-up after a clean stop and after kill -9, produce to a random subset.

Usage: bench/partitions.py [--binary PATH] [--topics 100] [--per-topic 100] [--port 29600]
                           [--batch 20] [--subset 1000] [--records 10] [--kafka]

Starts a release `strom server` (own port, own data dir, no HTTP listener), or with --kafka a
Kafka 4.1 broker already started by hand on --port (then start-up is not measured: restart it
by hand). Creates TOPICS x PER_TOPIC partitions with CreateTopics requests of BATCH topics
(kafka-python's admin client), produces RECORDS records to each of SUBSET random partitions
(kafka-python, acks=1), then measures idle RSS, /proc/PID/fd, /proc/PID/task; stops the
broker (SIGTERM), restarts it and times "ready" = first Metadata answer AND a produce to a
random partition acknowledged; then the same after kill -9 (ROUNDS times each, alternating).
Finally checks every partition of the subset holds exactly what was produced (end offsets).

With --kafka-run-dir DIR (and --kafka-pid) the Kafka broker started by
../shared/peers/kafka-start.sh with KAFKA_RUN_DIR=DIR (KAFKA_PORT, KAFKA_DATA_DIR, ... in the
environment, as for the start) is stopped with kafka-stop.sh / kill -9 and started again with
kafka-start.sh, timed the same way.
"""
import argparse, os, random, shutil, signal, subprocess, sys, tempfile, time

sys.path.insert(0, "/work/shared/peers")
from probe_metadata import metadata_v4  # noqa: E402

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition  # noqa: E402
from kafka.admin import NewTopic  # noqa: E402


def proc_figures(pid):
    rss = 0.0
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS"):
            rss = int(line.split()[1]) / 1024
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    threads = len(os.listdir(f"/proc/{pid}/task"))
    return rss, fds, threads


def start(binary, port, data, extra):
    args = [binary, "server", "--set", f"listeners=PLAINTEXT://127.0.0.1:{port}",
            "--set", f"log.dirs={data}", "--set", "http.listeners="]
    for kv in extra:
        args += ["--set", kv]
    log = open(os.path.join(os.path.dirname(data), "server.log"), "ab")
    return subprocess.Popen(args, stdout=log, stderr=log)


def wait_ready(port, topic_parts, t0, timeout=120):
    """Seconds from t0 until Metadata answers and a produce to a random partition is acked."""
    while True:
        try:
            metadata_v4("127.0.0.1", port, timeout=0.5)
            break
        except (OSError, ValueError):
            if time.monotonic() - t0 > timeout:
                raise SystemExit("no Metadata answer")
            time.sleep(0.005)
    meta = time.monotonic() - t0
    topic, part = random.choice(topic_parts)
    while True:
        try:
            p = KafkaProducer(bootstrap_servers=f"127.0.0.1:{port}", acks=1,
                              reconnect_backoff_ms=10, retry_backoff_ms=10, retries=100)
            p.send(topic, value=b"probe", partition=part).get(timeout=30)
            p.close()
            return meta, time.monotonic() - t0
        except Exception as e:  # noqa: BLE001 - the broker may still be loading
            if time.monotonic() - t0 > timeout:
                raise SystemExit(f"no produce: {e}")
            time.sleep(0.01)


def main():
    ap = argparse.ArgumentParser()
    target = os.environ.get("CARGO_TARGET_DIR") or os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "target")
    ap.add_argument("--binary", default=os.path.join(target, "release", "strom"),
                    help="default: $CARGO_TARGET_DIR/release/strom, else target/release/strom")
    ap.add_argument("--topics", type=int, default=100)
    ap.add_argument("--per-topic", type=int, default=100)
    ap.add_argument("--port", type=int, default=29600)
    ap.add_argument("--batch", type=int, default=20, help="topics per CreateTopics request")
    ap.add_argument("--subset", type=int, default=1000)
    ap.add_argument("--records", type=int, default=10)
    ap.add_argument("--set", action="append", default=[], help="extra broker setting k=v")
    ap.add_argument("--kafka-pid", type=int, help="measure a running Kafka broker instead")
    ap.add_argument("--kafka-run-dir", help="restart that Kafka with the peers scripts")
    ap.add_argument("--rounds", type=int, default=1, help="clean and kill -9 restarts each")
    ap.add_argument("--keep", action="store_true", help="keep the data directory")
    args = ap.parse_args()
    boot = f"127.0.0.1:{args.port}"
    work = tempfile.mkdtemp(prefix="strom-parts-", dir="/work")
    data = os.path.join(work, "data")
    print(f"load average {os.getloadavg()}, data {data}", flush=True)
    proc = None
    try:
        if args.kafka_pid is None:
            proc = start(args.binary, args.port, data, args.set)
            pid = proc.pid
            t0 = time.monotonic()
            while True:
                try:
                    metadata_v4("127.0.0.1", args.port, timeout=0.5)
                    break
                except OSError:
                    time.sleep(0.01)
        else:
            pid = args.kafka_pid
        admin = KafkaAdminClient(bootstrap_servers=boot, request_timeout_ms=600_000)
        names = [f"t{i:05d}" for i in range(args.topics)]
        t0 = time.monotonic()
        for i in range(0, len(names), args.batch):
            chunk = [NewTopic(n, args.per_topic, 1) for n in names[i:i + args.batch]]
            admin.create_topics(chunk, timeout_ms=600_000)
        created = time.monotonic() - t0
        total = args.topics * args.per_topic
        print(f"created {total} partitions in {created:.2f} s "
              f"({total / created:.0f} partitions/s)", flush=True)
        admin.close()
        all_parts = [(n, p) for n in names for p in range(args.per_topic)]
        subset = random.sample(all_parts, min(args.subset, len(all_parts)))
        producer = KafkaProducer(bootstrap_servers=boot, acks=1, linger_ms=5)
        t0 = time.monotonic()
        for t, p in subset:
            for r in range(args.records):
                producer.send(t, value=b"r%d" % r, partition=p)
        producer.flush(timeout=600)
        took = time.monotonic() - t0
        n = len(subset) * args.records
        print(f"produced {n} records to {len(subset)} random partitions in {took:.2f} s "
              f"({n / took:.0f} records/s)", flush=True)
        producer.close()
        time.sleep(5)
        rss, fds, threads = proc_figures(pid)
        print(f"idle: RSS {rss:.0f} MiB, open fds {fds}, threads {threads}", flush=True)
        if proc is None and args.kafka_run_dir is None:
            return
        probes = 0
        peers = "/work/shared/peers"
        env = dict(os.environ, KAFKA_RUN_DIR=args.kafka_run_dir or "",
                   KAFKA_STOP_TIMEOUT="900", KAFKA_READY_TIMEOUT="900")
        for how in ("clean", "kill -9") * args.rounds:
            t0 = time.monotonic()
            if how == "clean" and proc is not None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=600)
            elif how == "clean":
                subprocess.run([f"{peers}/kafka-stop.sh"], env=env, check=True,
                               stdout=subprocess.DEVNULL)
            elif proc is not None:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
            else:
                os.kill(pid, signal.SIGKILL)
                while os.path.exists(f"/proc/{pid}"):
                    time.sleep(0.01)
                os.remove(os.path.join(args.kafka_run_dir, "kafka.pid"))
            if how == "clean":
                print(f"clean stop took {time.monotonic() - t0:.2f} s", flush=True)
            t0 = time.monotonic()
            if proc is not None:
                proc = start(args.binary, args.port, data, args.set)
                pid = proc.pid
                meta, ready = wait_ready(args.port, subset, t0)
            else:
                starter = subprocess.Popen([f"{peers}/kafka-start.sh"], env=env,
                                           stdout=subprocess.DEVNULL)
                meta, ready = wait_ready(args.port, subset, t0, timeout=900)
                starter.wait()
                pid = int(open(os.path.join(args.kafka_run_dir, "kafka.pid")).read())
            probes += 1
            print(f"start-up after {how}: Metadata {meta:.2f} s, produce acked {ready:.2f} s",
                  flush=True)
            time.sleep(3)
            rss, fds, threads = proc_figures(pid)
            print(f"  after start-up: RSS {rss:.0f} MiB, open fds {fds}, threads {threads}",
                  flush=True)
        consumer = KafkaConsumer(bootstrap_servers=boot)
        tps = [TopicPartition(t, p) for t, p in subset]
        for attempt in range(60):  # Kafka may still be loading its logs
            try:
                ends = consumer.end_offsets(tps)
                break
            except Exception as e:  # noqa: BLE001
                if attempt == 59:
                    raise
                print(f"end offsets not answered yet ({e}); retrying", flush=True)
        got = sum(ends.values())
        consumer.close()
        want = len(subset) * args.records + probes
        print(f"end offsets of the subset sum to {got} (expected {want}): "
              f"{'OK' if got == want else 'MISMATCH'}", flush=True)
    finally:
        if proc is not None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=600)
            except subprocess.TimeoutExpired:
                proc.kill()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
