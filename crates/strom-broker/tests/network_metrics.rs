//! The network limits show in `broker.metrics()`: a broker served in-process by
//! `strom_broker::run`, driven over raw TCP. (tests in strom-cli check the same limits
//! against the real binary, where the metrics cannot be read.)

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use strom_broker::config::BrokerConfig;
use strom_broker::{Broker, BrokerMetrics};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

struct Running {
    broker: Arc<Broker>,
    addr: std::net::SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    server: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

async fn start(settings: &[(&str, &str)]) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let mut overrides = vec![(
        "log.dirs".to_string(),
        dir.path().join("data").display().to_string(),
    )];
    overrides.extend(settings.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let (config, _) = BrokerConfig::parse("", &overrides).unwrap();
    let broker = tokio::task::block_in_place(|| Broker::open(config)).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(strom_broker::run(broker.clone(), listener, async {
        let _ = stopped.await;
    }));
    let server = tokio::spawn(async move {
        server.await.unwrap().unwrap();
    });
    Running {
        broker,
        addr,
        stop: Some(stop),
        server,
        _dir: dir,
    }
}

impl Running {
    fn metrics(&self) -> &BrokerMetrics {
        self.broker.metrics()
    }

    async fn shutdown(mut self) {
        let _ = self.stop.take().unwrap().send(());
        (&mut self.server).await.unwrap();
    }
}

/// Waits (up to 10 s) until `condition` holds; panics with `what` otherwise.
async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !condition() {
        assert!(Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Reads until the broker closes the connection; panics if it answers instead.
async fn closed_by_broker(stream: &mut TcpStream) {
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf))
        .await
        .expect("the broker closes the connection");
    assert!(
        matches!(read, Ok(0)) || read.is_err(),
        "closed, not answered: {read:?}"
    );
}

fn with_timeout<F: Future>(f: F) -> tokio::time::Timeout<F> {
    tokio::time::timeout(Duration::from_secs(10), f)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_limits_and_idle_closes_are_counted() {
    let running = start(&[
        ("max.connections.per.ip", "2"),
        ("connections.max.idle.ms", "300"),
    ])
    .await;
    let m = running.metrics();
    let _a = TcpStream::connect(running.addr).await.unwrap();
    let _b = TcpStream::connect(running.addr).await.unwrap();
    eventually("two connections open", || m.connection_count.get() == 2).await;
    let mut over = TcpStream::connect(running.addr).await.unwrap();
    closed_by_broker(&mut over).await;
    assert_eq!(m.connections_rejected_max_connections_per_ip.get(), 1);
    assert_eq!(m.connections_rejected_max_connections.get(), 0);
    assert_eq!(m.connection_creation_total.get(), 2);
    // Both admitted connections stay silent and are closed as idle.
    eventually("idle connections closed", || {
        m.idle_connections_closed_total.get() == 2
    })
    .await;
    eventually("no connection open", || m.connection_count.get() == 0).await;
    assert_eq!(m.accept_errors_total.get(), 0);
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frame_over_the_request_budget_waits_and_is_accounted() {
    const BUDGET: usize = 200_000;
    const FRAME: usize = 150_000; // larger than the 64 KiB read buffer: needs budget
    let running = start(&[("queued.max.request.bytes", "200000")]).await;
    let m = running.metrics();
    let frame = |fill: u8| {
        let mut f = (FRAME as i32).to_be_bytes().to_vec();
        f.extend(std::iter::repeat_n(fill, FRAME));
        f
    };
    // A sends the start of a frame: the broker reserves its whole size and waits for more.
    let mut a = TcpStream::connect(running.addr).await.unwrap();
    let first = frame(0xff);
    a.write_all(&first[..1000]).await.unwrap();
    eventually("A's frame reserved", || {
        m.request_bytes_in_flight.get() == (4 + FRAME) as i64
    })
    .await;
    // B's frame does not fit what is left of the budget: B stops reading and waits.
    let mut b = TcpStream::connect(running.addr).await.unwrap();
    with_timeout(b.write_all(&frame(0xff)[..1000]))
        .await
        .unwrap()
        .unwrap();
    eventually("B waits for budget", || {
        m.request_budget_waits_total.get() == 1
    })
    .await;
    assert!(m.request_bytes_in_flight.get() <= BUDGET as i64);
    // A completes its frame (a malformed request, so A is closed), which frees the budget.
    with_timeout(a.write_all(&first[1000..]))
        .await
        .unwrap()
        .unwrap();
    closed_by_broker(&mut a).await;
    eventually("B's frame reserved after A's", || {
        m.request_bytes_in_flight.get() == (4 + FRAME) as i64
    })
    .await;
    drop(b);
    eventually("no request bytes in flight", || {
        m.request_bytes_in_flight.get() == 0
    })
    .await;
    assert_eq!(m.response_bytes_queued.get(), 0);
    running.shutdown().await;
}

/// Produce appends refused on a full disk are counted in `produce_storage_errors_total`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_refused_on_a_full_disk_are_counted() {
    use bytes::{Buf, BytesMut};
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    use kafka_protocol::messages::{ApiKey, ProduceRequest, ProduceResponse, RequestHeader};
    use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

    let mount = tempfile::tempdir().unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=3m", "tmpfs"])
        .arg(mount.path())
        .status()
        .unwrap();
    assert!(
        mounted.success(),
        "mounting a tmpfs needs root (CI runs as root)"
    );
    struct Unmount<'a>(&'a std::path::Path);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(self.0)
                .status();
        }
    }
    let _unmount = Unmount(mount.path());
    let data = mount.path().join("data").display().to_string();
    let running = start(&[("log.dirs", &data)]).await;
    let created = tokio::task::block_in_place(|| {
        running.broker.with_controller(|c| {
            c.create_topics(
                vec![strom_metadata::CreateTopicRequest::with_defaults("full")],
                false,
            )
        })
    });
    assert!(created[0].is_ok(), "{created:?}");

    let mut stream = TcpStream::connect(running.addr).await.unwrap();
    let mut last_code = 0;
    for correlation in 0..200 {
        let mut batch = strom_protocol::record_batch::builder::BatchBuilder::new(0);
        batch.push(None, Some(&vec![7u8; 64 * 1024]), 1_700_000_000_000);
        let request = ProduceRequest::default()
            .with_acks(1)
            .with_timeout_ms(5_000)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(StrBytes::from_static_str("full").into())
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(0)
                    .with_records(Some(batch.build().freeze()))])]);
        let mut frame = BytesMut::new();
        RequestHeader::default()
            .with_request_api_key(ApiKey::Produce as i16)
            .with_request_api_version(9)
            .with_correlation_id(correlation)
            .encode(&mut frame, ApiKey::Produce.request_header_version(9))
            .unwrap();
        request.encode(&mut frame, 9).unwrap();
        stream
            .write_all(&(frame.len() as i32).to_be_bytes())
            .await
            .unwrap();
        stream.write_all(&frame).await.unwrap();
        let len = with_timeout(stream.read_i32()).await.unwrap().unwrap();
        let mut body = vec![0u8; len as usize];
        stream.read_exact(&mut body).await.unwrap();
        let mut body = bytes::Bytes::from(body);
        body.advance(5); // correlation id and the empty tagged fields of header v1
        let response = ProduceResponse::decode(&mut body, 9).unwrap();
        last_code = response.responses[0].partition_responses[0].error_code;
        if last_code != 0 {
            break;
        }
    }
    assert_eq!(last_code, 56, "KAFKA_STORAGE_ERROR once 3 MiB are full");
    assert!(running.metrics().produce_storage_errors_total.get() >= 1);
    drop(stream);
    running.shutdown().await;
}
