//! Several `log.dirs`: new partitions go to the directory holding the fewest (as Kafka places
//! them), a restart finds each partition where it is, and DescribeLogDirs reports each
//! directory with its partitions.

mod common;

use std::time::Duration;

use common::wire::Wire;
use kafka_protocol::messages::{ApiKey, DescribeLogDirsRequest, DescribeLogDirsResponse};
use rdkafka::producer::FutureRecord;

#[test]
fn partitions_spread_over_log_dirs_and_are_found_again_after_a_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("a");
    let b = tmp.path().join("b");
    let dirs = format!("{},{}", a.display(), b.display());
    let mut server = common::Server::start(&[("log.dirs", &dirs)]);
    common::groups::make_topic(&server.bootstrap(), "spread", 6);
    common::groups::make_topic(&server.bootstrap(), "more", 2);

    let count = |dir: &std::path::Path| {
        std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .filter(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                name.starts_with("spread-") || name.starts_with("more-")
            })
            .count()
    };
    assert_eq!((count(&a), count(&b)), (4, 4), "8 partitions split evenly");
    // The metadata log lives in the first directory (metadata.log.dir's default).
    assert!(a.join("__cluster_metadata-0").is_dir());

    let producer = common::producer(&server.bootstrap(), &[]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        for p in 0..6 {
            producer
                .send(
                    FutureRecord::to("spread")
                        .partition(p)
                        .key("k")
                        .payload("v"),
                    Duration::from_secs(10),
                )
                .await
                .unwrap();
        }
    });
    drop(producer);

    let describe = |server: &common::Server| {
        let mut wire = Wire::connect(&server.bootstrap());
        let r: DescribeLogDirsResponse = wire.call(
            ApiKey::DescribeLogDirs,
            4,
            &DescribeLogDirsRequest::default().with_topics(None),
        );
        r
    };
    let before = describe(&server);
    assert_eq!(before.results.len(), 2, "{before:?}");
    for result in &before.results {
        let partitions: usize = result.topics.iter().map(|t| t.partitions.len()).sum();
        assert_eq!(partitions, 4, "{result:?}");
    }

    assert!(server.stop());
    server.restart();
    assert_eq!((count(&a), count(&b)), (4, 4), "nothing moved or set aside");
    let after = describe(&server);
    assert_eq!(
        after
            .results
            .iter()
            .map(|r| r.topics.iter().map(|t| t.partitions.len()).sum::<usize>())
            .collect::<Vec<_>>(),
        [4, 4]
    );
    let records = common::consume(
        &server.bootstrap(),
        "spread",
        &[0, 1, 2, 3, 4, 5],
        rdkafka::Offset::Beginning,
        6,
        Duration::from_secs(30),
        &[],
    );
    assert_eq!(records.len(), 6, "every partition's record is still there");
}
