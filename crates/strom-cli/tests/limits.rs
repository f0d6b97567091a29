//! Bounded resources on the network path, against the real binary: fetch.max.bytes (KIP-74),
//! memory of a client pipelining huge fetches, max.connections.per.ip,
//! connections.max.idle.ms, running out of file descriptors, and queued.max.request.bytes.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::wire::{read_response, request_frame, Wire};
use common::{consume, create_topic, producer, Options, Server};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, FetchRequest, FetchResponse, ProduceRequest,
    ProduceResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use rdkafka::producer::FutureRecord;
use rdkafka::Offset;
use strom_protocol::record_batch::builder::BatchBuilder;
use strom_protocol::record_batch::RecordBatchHeader;

const FETCH_VERSION: i16 = 12;
const PRODUCE_VERSION: i16 = 9;

fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_owned()))
}

/// One batch of `records` values of `value_size` bytes, each filled with its record's index.
fn batch(records: usize, value_size: usize, first_index: usize) -> bytes::Bytes {
    let mut b = BatchBuilder::new(0);
    for i in 0..records {
        let value = vec![((first_index + i) % 251) as u8; value_size];
        b.push(None, Some(value.as_slice()), 1_700_000_000_000);
    }
    b.build().freeze()
}

fn produce_request(topic: &str, partition: i32, records: bytes::Bytes) -> ProduceRequest {
    let data = PartitionProduceData::default()
        .with_index(partition)
        .with_records(Some(records));
    ProduceRequest::default()
        .with_acks(1)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(topic_name(topic))
            .with_partition_data(vec![data])])
}

/// Produces `batches` batches of `records` records to `topic`/`partition`; asserts success.
fn produce_raw(
    wire: &mut Wire,
    topic: &str,
    partition: i32,
    batches: usize,
    records: usize,
    value_size: usize,
) {
    for i in 0..batches {
        let req = produce_request(topic, partition, batch(records, value_size, i * records));
        let r: ProduceResponse = wire.call(ApiKey::Produce, PRODUCE_VERSION, &req);
        let p = &r.responses[0].partition_responses[0];
        assert_eq!(p.error_code, 0, "produce to {topic}/{partition}");
    }
}

/// A fetch of `topics` (name, [(partition, offset)]) asking for everything: i32::MAX bytes.
fn greedy_fetch(topics: &[(&str, Vec<(i32, i64)>)]) -> FetchRequest {
    let topics = topics
        .iter()
        .map(|(name, partitions)| {
            FetchTopic::default()
                .with_topic(topic_name(name))
                .with_partitions(
                    partitions
                        .iter()
                        .map(|(p, offset)| {
                            FetchPartition::default()
                                .with_partition(*p)
                                .with_fetch_offset(*offset)
                                .with_partition_max_bytes(i32::MAX)
                        })
                        .collect(),
                )
        })
        .collect();
    FetchRequest::default()
        .with_replica_id(kafka_protocol::messages::BrokerId(-1))
        .with_max_wait_ms(0)
        .with_min_bytes(1)
        .with_max_bytes(i32::MAX)
        .with_session_id(0)
        .with_session_epoch(-1)
        .with_topics(topics)
}

/// The whole batches in `records`: (base offset, last offset, record count, size).
fn batches_in(records: &[u8]) -> Vec<(i64, i64, i32, usize)> {
    let mut out = Vec::new();
    let mut rest = records;
    while !rest.is_empty() {
        let h = RecordBatchHeader::parse(rest).expect("a whole record batch");
        let size = h.total_size();
        assert!(size <= rest.len(), "a partial batch in a fetch response");
        out.push((h.base_offset(), h.last_offset(), h.records_count(), size));
        rest = &rest[size..];
    }
    out
}

fn records_of(response: &FetchResponse) -> Vec<(i32, bytes::Bytes)> {
    let mut out = Vec::new();
    for topic in &response.responses {
        for p in &topic.partitions {
            assert_eq!(p.error_code, 0, "partition {}", p.partition_index);
            out.push((p.partition_index, p.records.clone().unwrap_or_default()));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_max_bytes_caps_a_greedy_fetch_and_the_next_one_continues() {
    const CAP: usize = 64 * 1024;
    const PARTITIONS: i32 = 4;
    const BATCHES: usize = 50;
    const RECORDS: usize = 4;
    let server = Server::start(&[("fetch.max.bytes", "65536")]);
    create_topic(&server.bootstrap(), "capped", PARTITIONS, &[]).await;
    create_topic(&server.bootstrap(), "onebig", 1, &[]).await;
    let mut wire = Wire::connect(&server.bootstrap());
    for p in 0..PARTITIONS {
        produce_raw(&mut wire, "capped", p, BATCHES, RECORDS, 4000); // ~16 KB batches
    }
    produce_raw(&mut wire, "onebig", 0, 1, 2, 100_000); // one ~200 KB batch

    // Read everything back, from where each response stopped; every response within the cap.
    let end = (BATCHES * RECORDS) as i64;
    let mut offsets: Vec<i64> = vec![0; PARTITIONS as usize];
    let (mut rounds, mut records, mut bytes) = (0usize, 0i64, 0usize);
    while offsets.iter().any(|o| *o < end) {
        let wanted = (0..PARTITIONS).map(|p| (p, offsets[p as usize])).collect();
        let r: FetchResponse = wire.call(
            ApiKey::Fetch,
            FETCH_VERSION,
            &greedy_fetch(&[("capped", wanted)]),
        );
        let got = records_of(&r);
        let size: usize = got.iter().map(|(_, r)| r.len()).sum();
        assert!(size > 0, "a fetch below the high watermark returns data");
        assert!(
            size <= CAP,
            "response of {size} record bytes over fetch.max.bytes"
        );
        for (p, recs) in got {
            for (base, last, count, _) in batches_in(&recs) {
                assert_eq!(
                    base, offsets[p as usize],
                    "partition {p} continues in order"
                );
                assert_eq!(last - base + 1, i64::from(count));
                offsets[p as usize] = last + 1;
                records += i64::from(count);
            }
        }
        bytes += size;
        rounds += 1;
    }
    assert_eq!(records, end * i64::from(PARTITIONS), "every record once");
    assert!(
        rounds >= bytes.div_ceil(CAP),
        "{bytes} bytes in {rounds} responses"
    );

    // KIP-74: a first batch larger than the cap is still returned, alone.
    let both = [("onebig", vec![(0, 0)]), ("capped", vec![(0, 0), (1, 0)])];
    let r: FetchResponse = wire.call(ApiKey::Fetch, FETCH_VERSION, &greedy_fetch(&both));
    let got = records_of(&r);
    let big = batches_in(&got[0].1);
    assert_eq!(big.len(), 1, "exactly the one batch");
    assert!(big[0].3 > CAP, "the batch is larger than the cap");
    assert!(
        got[1].1.is_empty() && got[2].1.is_empty(),
        "nothing after it"
    );
}

fn vm_kb(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with(field))
        .unwrap_or_else(|| panic!("{field} in /proc/{pid}/status"));
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Peak resident memory the broker may reach in the test below. Measured (debug build,
/// 64 MB stored, default fetch.max.bytes of 55 MB): 38 MB peak with fetched records sent
/// from the segment files; 148 MB when each response was copied into one buffer, 3.77 GB
/// when a connection could also queue 64 such responses. Three times the measured figure
/// leaves room for allocator and scheduling noise.
const RSS_BOUND_KB: u64 = 120 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_pipelining_huge_fetches_and_idle_connections_use_bounded_memory() {
    const PARTITIONS: i32 = 8;
    const PIPELINED: i32 = 200;
    const IDLE: usize = 2000;
    rlimit::increase_nofile_limit(u64::MAX).expect("raise the test's open files limit");
    let server = Server::start(&[("max.connections.per.ip", "5000")]);
    let bootstrap = server.bootstrap();
    create_topic(&bootstrap, "mem", PARTITIONS, &[]).await;
    let mut wire = Wire::connect(&bootstrap);
    for p in 0..PARTITIONS {
        produce_raw(&mut wire, "mem", p, 8, 10, 100_000); // 8 x 1 MB per partition
    }
    drop(wire);
    let pid = server.pid();
    let after_produce = vm_kb(pid, "VmHWM:");

    // One connection sends 200 fetches of everything and reads none of the answers.
    let mut greedy = TcpStream::connect(&bootstrap).unwrap();
    greedy
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let wanted: Vec<(i32, i64)> = (0..PARTITIONS).map(|p| (p, 0)).collect();
    let fetch = greedy_fetch(&[("mem", wanted)]);
    let mut pipeline = Vec::new();
    for correlation in 1..=PIPELINED {
        pipeline.extend(request_frame(
            ApiKey::Fetch,
            FETCH_VERSION,
            correlation,
            &fetch,
        ));
    }
    greedy.write_all(&pipeline).unwrap();
    let idle: Vec<TcpStream> = (0..IDLE)
        .map(|_| TcpStream::connect(&bootstrap).expect("an idle connection"))
        .collect();
    // Read a few answers (in order, each capped by the default fetch.max.bytes), then stop
    // reading again while the broker still holds 197 requests of this connection.
    for correlation in 1..=3 {
        let (id, r): (i32, FetchResponse) =
            read_response(&mut greedy, ApiKey::Fetch, FETCH_VERSION);
        assert_eq!(id, correlation);
        let size: usize = records_of(&r).iter().map(|(_, r)| r.len()).sum();
        assert!(size > 0 && size <= 57_671_680, "{size} record bytes");
    }
    std::thread::sleep(Duration::from_secs(3));
    let peak = vm_kb(pid, "VmHWM:");
    let now = vm_kb(pid, "VmRSS:");
    eprintln!(
        "broker memory: VmHWM after produce {after_produce} kB, peak {peak} kB, now {now} kB"
    );
    assert!(
        peak < RSS_BOUND_KB,
        "broker peak RSS {peak} kB over {RSS_BOUND_KB} kB"
    );
    drop(greedy);
    drop(idle);

    // Still a working broker.
    let p = producer(&bootstrap, &[]);
    for i in 0..10 {
        let value = format!("after-{i}");
        p.send(
            FutureRecord::<(), _>::to("mem")
                .partition(0)
                .payload(&value),
            Duration::from_secs(10),
        )
        .await
        .map_err(|(e, _)| e)
        .expect("produce after the flood");
    }
    let got = consume(
        &bootstrap,
        "mem",
        &[0],
        Offset::Offset(80),
        10,
        Duration::from_secs(30),
        &[],
    );
    let values: Vec<_> = got.iter().map(|r| r.value.clone().unwrap()).collect();
    let expected: Vec<_> = (0..10).map(|i| format!("after-{i}").into_bytes()).collect();
    assert_eq!(values, expected);
}

/// Sends ApiVersions v2 and returns its error code, or `None` if the broker closed the
/// connection (EOF or reset) instead of answering.
fn api_versions(stream: &mut TcpStream) -> Option<i16> {
    let frame = request_frame(ApiKey::ApiVersions, 2, 1, &ApiVersionsRequest::default());
    if stream.write_all(&frame).is_err() {
        return None;
    }
    let mut len = [0u8; 4];
    match stream.read_exact(&mut len) {
        Ok(()) => {}
        Err(e)
            if matches!(
                e.kind(),
                ErrorKind::UnexpectedEof | ErrorKind::ConnectionReset
            ) =>
        {
            return None
        }
        Err(e) => panic!("no answer and no close: {e}"),
    }
    let mut body = vec![0u8; i32::from_be_bytes(len) as usize];
    stream.read_exact(&mut body).unwrap();
    let mut body = bytes::Bytes::from(body).split_off(4);
    let r =
        <ApiVersionsResponse as kafka_protocol::protocol::Decodable>::decode(&mut body, 2).unwrap();
    Some(r.error_code)
}

fn connect(server: &Server) -> TcpStream {
    let s = TcpStream::connect(server.bootstrap()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// Whether the broker closed `stream` (read gives EOF or a reset) without a request from us.
fn closed_by_broker(stream: &mut TcpStream) -> bool {
    let mut byte = [0u8; 1];
    match stream.read(&mut byte) {
        Ok(0) => true,
        Err(e) if e.kind() == ErrorKind::ConnectionReset => true,
        Ok(_) => panic!("unexpected bytes from the broker"),
        Err(e) => panic!("the broker neither closed nor answered: {e}"),
    }
}

/// A connection the broker answers, retrying while the slot of a connection closed just
/// before (such as the harness's readiness probe) is not yet given back.
fn admitted_connection(server: &Server) -> TcpStream {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut s = connect(server);
        if api_versions(&mut s) == Some(0) {
            return s;
        }
        assert!(Instant::now() < deadline, "no connection admitted");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn max_connections_per_ip_closes_the_connection_over_the_limit() {
    let server = Server::start(&[("max.connections.per.ip", "3")]);
    let mut admitted: Vec<TcpStream> = (0..3).map(|_| admitted_connection(&server)).collect();
    let mut over = connect(&server);
    assert!(closed_by_broker(&mut over), "the 4th connection is closed");
    for s in &mut admitted {
        assert_eq!(api_versions(s), Some(0), "the first 3 still work");
    }
    // Closing one frees its slot (once the broker has seen the close).
    drop(admitted.pop());
    let mut again = admitted_connection(&server);
    assert_eq!(api_versions(&mut again), Some(0));
}

#[test]
fn connections_max_idle_ms_closes_idle_connections_only() {
    let server = Server::start(&[("connections.max.idle.ms", "1000")]);
    let mut idle = connect(&server);
    let mut active = connect(&server);
    assert_eq!(api_versions(&mut idle), Some(0));
    // The active one sends a request every 100 ms for 3 s, three times the idle limit.
    for _ in 0..30 {
        assert_eq!(api_versions(&mut active), Some(0), "active stays open");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        closed_by_broker(&mut idle),
        "the idle connection was closed"
    );
    assert_eq!(api_versions(&mut active), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_out_of_file_descriptors_refuses_connections_then_recovers() {
    // 64 descriptors: about 14 for the broker itself, the rest for clients.
    let options = Options {
        nofile: Some(64),
        capture_log: true,
        ..Options::default()
    };
    let mut server = Server::start_with(&[], options);
    let bootstrap = server.bootstrap();
    // The kernel completes these handshakes into the listen backlog; the broker accepts
    // until it runs out of descriptors.
    let flood: Vec<TcpStream> = (0..100)
        .map(|_| TcpStream::connect(&bootstrap).expect("connect"))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !server.log().contains("accept failed") {
        assert!(
            Instant::now() < deadline,
            "no accept failure logged:\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = server.log();
    assert!(log.contains("Too many open files"), "{log}");
    assert!(
        log.contains("exceeds the open files limit"),
        "start-up warns that max.connections does not fit: {log}"
    );
    let status = server.child.as_mut().unwrap().try_wait().unwrap();
    assert!(status.is_none(), "the broker is alive: {status:?}");
    drop(flood);

    // Once the clients are gone, the broker serves normally again.
    create_topic(&bootstrap, "after-emfile", 1, &[]).await;
    let p = producer(&bootstrap, &[]);
    for i in 0..5 {
        let value = format!("v{i}");
        p.send(
            FutureRecord::<(), _>::to("after-emfile").payload(&value),
            Duration::from_secs(20),
        )
        .await
        .map_err(|(e, _)| e)
        .expect("produce after running out of descriptors");
    }
    let got = consume(
        &bootstrap,
        "after-emfile",
        &[0],
        Offset::Beginning,
        5,
        Duration::from_secs(30),
        &[],
    );
    assert_eq!(got.len(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_max_request_bytes_makes_large_produces_wait_not_fail() {
    const CLIENTS: usize = 8;
    const RECORDS: usize = 9;
    const VALUE: usize = 100_000; // ~900 KB requests against a 1 MiB budget
    let options = Options {
        capture_log: true,
        log_filter: Some("warn,strom_broker::connection=debug".into()),
        ..Options::default()
    };
    let server = Server::start_with(&[("queued.max.request.bytes", "1048576")], options);
    let bootstrap = server.bootstrap();
    create_topic(&bootstrap, "budget", 1, &[]).await;

    // The first client sends half a request and holds the budget it was granted.
    let frames: Vec<Vec<u8>> = (0..=CLIENTS)
        .map(|c| {
            let req = produce_request("budget", 0, batch(RECORDS, VALUE, c * RECORDS));
            request_frame(ApiKey::Produce, PRODUCE_VERSION, 1, &req)
        })
        .collect();
    let mut holder = connect(&server);
    let half = frames[0].len() / 2;
    holder.write_all(&frames[0][..half]).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    // The others send whole requests at once, each on its own connection.
    let senders: Vec<_> = frames[1..]
        .iter()
        .cloned()
        .map(|frame| {
            let bootstrap = bootstrap.clone();
            std::thread::spawn(move || {
                let mut s = TcpStream::connect(&bootstrap).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
                s.write_all(&frame).unwrap();
                let (_, r): (i32, ProduceResponse) =
                    read_response(&mut s, ApiKey::Produce, PRODUCE_VERSION);
                r.responses[0].partition_responses[0].error_code
            })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !server
        .log()
        .contains("waiting for queued.max.request.bytes budget")
    {
        assert!(Instant::now() < deadline, "no client waited for budget");
        std::thread::sleep(Duration::from_millis(50));
    }
    holder.write_all(&frames[0][half..]).unwrap();
    holder
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let (_, r): (i32, ProduceResponse) =
        read_response(&mut holder, ApiKey::Produce, PRODUCE_VERSION);
    assert_eq!(r.responses[0].partition_responses[0].error_code, 0);
    for s in senders {
        assert_eq!(s.join().unwrap(), 0, "every produce succeeds");
    }

    // Nothing lost: every client's records are there once.
    let total = (CLIENTS + 1) * RECORDS;
    let got = consume(
        &bootstrap,
        "budget",
        &[0],
        Offset::Beginning,
        total,
        Duration::from_secs(60),
        &[("fetch.message.max.bytes", "2000000")],
    );
    let mut firsts: Vec<u8> = got.iter().map(|r| r.value.as_ref().unwrap()[0]).collect();
    firsts.sort_unstable();
    let expected: Vec<u8> = (0..total).map(|i| (i % 251) as u8).collect();
    assert_eq!(firsts, expected);
    assert!(got.iter().all(|r| r.value.as_ref().unwrap().len() == VALUE));
}
