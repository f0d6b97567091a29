//! Helpers for distributed-mode tests: a broker that accepts short group session timeouts,
//! `strom connect distributed` worker processes (the `strom` binary of `strom_bin`), and a
//! topic reader with a choice of isolation level.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use strom_client::ConsumerRecord;

use super::{free_port, strom_bin, Broker, Read};

/// A broker whose groups accept session timeouts down to 500 ms, so that a killed worker
/// leaves its group in a test-friendly time.
pub fn fast_groups_broker() -> Broker {
    Broker::start_with(&[
        ("group.min.session.timeout.ms", "500"),
        ("http.listeners", ""),
    ])
}

/// One `strom connect distributed` process.
pub struct WorkerProc {
    child: Child,
    pub addr: SocketAddr,
    props: PathBuf,
}

impl WorkerProc {
    /// Writes `props` (plus `listeners` on a free port) to `dir` and starts the worker; waits
    /// until its REST API answers.
    pub fn start(dir: &std::path::Path, name: &str, props: &[(&str, String)]) -> WorkerProc {
        let port = free_port();
        let mut text = format!("listeners=http://127.0.0.1:{port}\n");
        for (k, v) in props {
            text.push_str(&format!("{k}={v}\n"));
        }
        let path = dir.join(format!("{name}.properties"));
        std::fs::write(&path, text).unwrap();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let w = WorkerProc {
            child: Self::spawn(&path),
            addr,
            props: path,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !strom_testkit::accepts(addr, Duration::from_millis(100)) {
            assert!(
                Instant::now() < deadline,
                "worker {name} did not start listening"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        w
    }

    fn spawn(props: &std::path::Path) -> Child {
        Command::new(strom_bin())
            .args(["connect", "distributed"])
            .arg(props)
            .env(
                "STROM_LOG",
                std::env::var("STROM_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start strom connect distributed")
    }

    /// `host:port`, the worker id its statuses carry.
    pub fn id(&self) -> String {
        self.addr.to_string()
    }

    /// SIGKILL: the worker dies without leaving its group or committing anything.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM and wait: a clean shutdown (tasks commit, the worker leaves its group).
    pub fn terminate(&mut self) {
        // The shell's own `kill`: no procps needed.
        let _ = Command::new("sh")
            .arg("-c")
            .arg(format!("kill -TERM {}", self.child.id()))
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.kill9();
    }

    pub fn props_path(&self) -> &std::path::Path {
        &self.props
    }
}

impl Drop for WorkerProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads `topic` from the start (read_committed if asked) until `done` says so or `timeout`,
/// then a little longer, to see records beyond the expected ones (duplicates).
pub async fn read_until(
    b: &str,
    topic: &str,
    partitions: i32,
    read_committed: bool,
    timeout: Duration,
    done: impl FnMut(&[ConsumerRecord]) -> bool,
) -> Vec<ConsumerRecord> {
    let how = Read::new(timeout)
        .partitions(partitions)
        .committed(read_committed)
        .settle(Duration::from_millis(500));
    strom_testkit::read(b, topic, how, done).await
}
