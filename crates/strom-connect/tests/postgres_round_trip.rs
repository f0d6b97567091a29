//! The round trip: 5,000 rows inserted into one PostgreSQL table, then updated and
//! deleted in part, go through Strom (CDC source → topic → sink) into another PostgreSQL
//! table, which ends up equal to the first, row for row and column for column.

mod common;
#[path = "common/postgres.rs"]
mod pg;

use std::time::{Duration, Instant};

use common::*;
use pg::{props, rows, worker_props, Postgres};
use strom_connect::standalone::Standalone;

const ROWS: i64 = 5_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_rows_with_updates_and_deletes_arrive_exactly() {
    let pg = Postgres::start();
    let db = pg.client().await;
    db.batch_execute(
        "CREATE TABLE src (id int PRIMARY KEY, name text NOT NULL, amount numeric(12,2), \
         at timestamp NOT NULL, note text, raw bytea, ok boolean)",
    )
    .await
    .unwrap();
    let broker = Broker::start();
    let b = broker.bootstrap();
    create_topic(&b, "rt.public.src", 3).await;
    let dir = tempfile::tempdir().unwrap();
    let url = pg.jdbc_url();
    let source = props(&[
        ("name", "rt-source"),
        ("connector.class", "PostgresConnector"),
        ("connection.url", &url),
        ("topic.prefix", "rt"),
        ("table.include.list", "public\\.src"),
        ("slot.name", "rt_slot"),
        ("publication.name", "rt_pub"),
        ("poll.interval.ms", "50"),
    ]);
    let sink = props(&[
        ("name", "rt-sink"),
        (
            "connector.class",
            "io.confluent.connect.jdbc.JdbcSinkConnector",
        ),
        ("topics", "rt.public.src"),
        ("connection.url", &url),
        ("insert.mode", "upsert"),
        ("pk.mode", "record_key"),
        ("delete.enabled", "true"),
        ("auto.create", "true"),
        ("table.name.format", "dst"),
        ("tasks.max", "2"),
    ]);
    let w = Standalone::start(worker_props(&b, dir.path()), vec![source, sink], None)
        .await
        .unwrap();
    wait_for(
        "the replication slot",
        Duration::from_secs(20),
        async || {
            let r = rows(&db, "SELECT slot_name::text FROM pg_replication_slots").await;
            (!r.is_empty()).then_some(())
        },
    )
    .await;
    let started = Instant::now();
    // Inserts in five transactions, then updates of every fifth row, then deletes.
    for chunk in 0..5 {
        db.execute(
            "INSERT INTO src SELECT i, 'name-' || i, CASE WHEN i % 7 = 0 THEN NULL ELSE i * 1.25 END, \
             timestamp '2026-01-01' + i * interval '1.001 second', \
             CASE WHEN i % 3 = 0 THEN NULL ELSE repeat('n', i % 50) END, \
             decode(lpad(to_hex(i), 8, '0'), 'hex'), i % 2 = 0 \
             FROM generate_series($1::int, $2::int) i",
            &[&(chunk * 1000 + 1), &(chunk * 1000 + 1000)],
        )
        .await
        .unwrap();
    }
    db.batch_execute(
        "UPDATE src SET name = name || '-updated', amount = -amount, note = 'changed' WHERE id % 5 = 0;
         DELETE FROM src WHERE id % 10 = 1;
         UPDATE src SET ok = NULL WHERE id % 10 = 2;",
    )
    .await
    .unwrap();
    let query = "SELECT id::text, name, amount::text, at::text, note, raw::text, ok::text \
                 FROM {} AS t ORDER BY t.id";
    let want = rows(&db, &query.replace("{}", "src")).await;
    assert_eq!(want.len(), (ROWS - ROWS / 10) as usize);
    let got = wait_for(
        "the copy to equal the source",
        Duration::from_secs(60),
        async || {
            let got = db
                .query(&query.replace("{}", "dst"), &[])
                .await
                .ok()?
                .iter()
                .map(|r| {
                    (0..7)
                        .map(|i| r.get::<_, Option<String>>(i))
                        .collect::<Vec<_>>()
                })
                .collect::<Vec<_>>();
            (got == want).then_some(got)
        },
    )
    .await;
    let elapsed = started.elapsed();
    assert_eq!(got.len(), 4_500);
    assert_eq!(
        got[3].iter().map(|c| c.as_deref()).collect::<Vec<_>>(),
        vec![
            Some("5"),
            Some("name-5-updated"),
            Some("-6.25"),
            Some("2026-01-01 00:00:05.005"),
            Some("changed"),
            Some("\\x00000005"),
            Some("false")
        ]
    );
    eprintln!(
        "round trip: {} changes (5,000 inserts, 1,000 updates, 500 deletes, 500 updates) in {elapsed:?}",
        7_000
    );
    w.stop().await;
}
