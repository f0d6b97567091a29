//! File source → topic → file sink through a real broker with the standalone runtime,
//! thousands of lines, a clean restart that resumes from the committed offsets, and a crash
//! (the worker's runtime dropped without committing) after which nothing is lost.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;

fn lines(range: std::ops::Range<usize>) -> String {
    range.map(|i| format!("line-{i:06}\n")).collect()
}

fn append(path: &Path, text: &str) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

fn read_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

struct Files {
    dir: tempfile::TempDir,
}

impl Files {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes the worker and the two connector property files, as a user would.
    fn write_configs(
        &self,
        bootstrap: &str,
        rest_port: u16,
        batch_size: usize,
    ) -> (PathBuf, Vec<PathBuf>) {
        let worker = self.path("worker.properties");
        std::fs::write(
            &worker,
            format!(
                "bootstrap.servers={bootstrap}\n\
                 key.converter=org.apache.kafka.connect.storage.StringConverter\n\
                 value.converter=org.apache.kafka.connect.storage.StringConverter\n\
                 offset.storage.file.filename={}\n\
                 offset.flush.interval.ms=100\n\
                 listeners=http://127.0.0.1:{rest_port}\n\
                 plugin.path=/usr/share/java\n\
                 consumer.session.timeout.ms=6000\n\
                 consumer.heartbeat.interval.ms=500\n",
                self.path("connect.offsets").display()
            ),
        )
        .unwrap();
        let source = self.path("source.properties");
        std::fs::write(
            &source,
            format!(
                "name=local-file-source\nconnector.class=FileStreamSource\ntasks.max=1\n\
                 file={}\ntopic=lines\nbatch.size={batch_size}\n",
                self.path("in.txt").display()
            ),
        )
        .unwrap();
        let sink = self.path("sink.properties");
        std::fs::write(
            &sink,
            format!(
                "name=local-file-sink\nconnector.class=org.apache.kafka.connect.file.FileStreamSinkConnector\n\
                 tasks.max=1\nfile={}\ntopics=lines\n",
                self.path("out.txt").display()
            ),
        )
        .unwrap();
        (worker, vec![source, sink])
    }
}

/// Runs `standalone::run` until `done` is signalled; returns its result.
fn spawn_run(
    worker: PathBuf,
    connectors: Vec<PathBuf>,
) -> (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<strom_connect::Result<()>>,
) {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let h = tokio::spawn(async move {
        strom_connect::standalone::run(&worker, &connectors, async {
            let _ = rx.await;
        })
        .await
    });
    (tx, h)
}

async fn wait_lines(path: &Path, n: usize) -> Vec<String> {
    wait_for(
        &format!("{n} lines in {}", path.display()),
        Duration::from_secs(60),
        async || {
            let l = read_lines(path);
            (l.len() >= n).then_some(l)
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lines_round_trip_and_a_clean_restart_resumes_from_committed_offsets() {
    let broker = Broker::start();
    let b = broker.bootstrap();
    create_topic(&b, "lines", 3).await;
    let files = Files {
        dir: tempfile::tempdir().unwrap(),
    };
    let input = files.path("in.txt");
    let output = files.path("out.txt");
    append(&input, &lines(0..5000));
    let (worker, connectors) = files.write_configs(&b, free_port(), 500);

    let (stop, run) = spawn_run(worker.clone(), connectors.clone());
    wait_lines(&output, 5000).await;
    stop.send(()).unwrap();
    run.await.unwrap().unwrap();

    // Offsets were committed on the clean stop: the source resumes after line 4999.
    let offsets = std::fs::read_to_string(files.path("connect.offsets")).unwrap();
    let size = std::fs::metadata(&input).unwrap().len();
    assert!(
        offsets.contains(&format!("\"position\":{size}")),
        "{offsets}"
    );

    append(&input, &lines(5000..8000));
    let (stop, run) = spawn_run(worker, connectors);
    let out = wait_lines(&output, 8000).await;
    // Give a duplicate, if any, the time to show up.
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.send(()).unwrap();
    run.await.unwrap().unwrap();

    let out_final = read_lines(&output);
    assert_eq!(out_final.len(), 8000, "a clean restart repeats nothing");
    let want: BTreeSet<String> = (0..8000).map(|i| format!("line-{i:06}")).collect();
    let got: BTreeSet<String> = out.into_iter().collect();
    assert_eq!(got, want);

    // The topic holds each line once, keys null, values the lines.
    let records = read_topic(&b, "lines", 3, 8000, Duration::from_secs(30)).await;
    assert_eq!(records.len(), 8000);
    assert!(records.iter().all(|r| r.key.is_none()));
    let in_topic: BTreeSet<String> = records
        .iter()
        .map(|r| String::from_utf8(r.value.clone().unwrap().to_vec()).unwrap())
        .collect();
    assert_eq!(in_topic, want);
}

#[test]
fn a_crashed_worker_loses_nothing_on_restart() {
    let broker = Broker::start();
    let b = broker.bootstrap();
    let files = Files {
        dir: tempfile::tempdir().unwrap(),
    };
    let input = files.path("in.txt");
    let output = files.path("out.txt");
    append(&input, &lines(0..20_000));
    // Small source batches (each waits for its acknowledgements), so the crash comes mid-way.
    let (worker, connectors) = files.write_configs(&b, free_port(), 10);

    // First life: a runtime of its own, dropped mid-stream (no clean stop, no final commit).
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(create_topic(&b, "lines", 1));
    let (w, c, out) = (worker.clone(), connectors.clone(), output.clone());
    let _stop = rt.block_on(async move {
        let (stop, _run) = spawn_run(w, c);
        wait_for("some lines out", Duration::from_secs(60), async || {
            (read_lines(&out).len() >= 2000).then_some(())
        })
        .await;
        stop
    });
    rt.shutdown_background();
    let first_life = read_lines(&output).len();
    assert!(
        first_life < 20_000,
        "the crash must come before the end ({first_life} lines were out)"
    );

    // Second life: everything arrives, at least once. (On another REST port: the dropped
    // runtime may not have closed its listener yet.)
    drop((worker, connectors));
    let (worker, connectors) = files.write_configs(&b, free_port(), 10);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let (stop, run) = spawn_run(worker, connectors);
        let want: BTreeSet<String> = (0..20_000).map(|i| format!("line-{i:06}")).collect();
        let deadline = std::time::Instant::now() + Duration::from_secs(90);
        loop {
            let got: BTreeSet<String> = read_lines(&output).into_iter().collect();
            if got == want {
                break;
            }
            assert!(!run.is_finished(), "the worker stopped early");
            assert!(
                std::time::Instant::now() < deadline,
                "{} of {} distinct lines arrived; first missing: {:?}",
                got.len(),
                want.len(),
                want.difference(&got).next()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        stop.send(()).unwrap();
        run.await.unwrap().unwrap();
    });
    drop(files);
}
