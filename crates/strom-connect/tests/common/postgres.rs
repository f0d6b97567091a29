//! A real PostgreSQL server for the connector tests: Debian's `postgresql` binaries
//! (`PG_BIN`, else the newest /usr/lib/postgresql/*/bin), a fresh cluster in a temp dir on a
//! free port, logical replication on (`wal_level=logical`), trust authentication on
//! 127.0.0.1, the socket in the temp dir. Run as root (as CI does), the server runs as the
//! `postgres` user, since PostgreSQL refuses root. Stopped (immediate shutdown) on drop.
//! Include with `#[path = "common/postgres.rs"] mod pg;` next to `mod common;`.

#![allow(dead_code)]

use std::os::unix::fs::chown;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio_postgres::{Client, NoTls};

pub fn pg_bin() -> PathBuf {
    if let Ok(p) = std::env::var("PG_BIN") {
        return PathBuf::from(p);
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL is not installed (/usr/lib/postgresql): see scripts/install-deps")
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse().ok()?;
            Some((v, e.path().join("bin")))
        })
        .filter(|(_, p)| p.join("postgres").exists())
        .collect();
    versions.sort();
    versions.pop().expect("no PostgreSQL server binaries").1
}

/// The uid and gid of the `postgres` user (from /etc/passwd).
fn postgres_user() -> (u32, u32) {
    let passwd = std::fs::read_to_string("/etc/passwd").expect("/etc/passwd");
    passwd
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.first() == Some(&"postgres")).then(|| (f[2].parse().unwrap(), f[3].parse().unwrap()))
        })
        .expect("no postgres user (install Debian's postgresql package)")
}

fn is_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false)
}

pub struct Postgres {
    child: Child,
    pub port: u16,
    bin: PathBuf,
    user: Option<(u32, u32)>,
    dir: tempfile::TempDir,
}

impl Postgres {
    pub fn start() -> Postgres {
        let bin = pg_bin();
        let dir = tempfile::tempdir().expect("temp dir");
        let root = is_root();
        let user = root.then(postgres_user);
        if let Some((uid, gid)) = user {
            chown(dir.path(), Some(uid), Some(gid)).expect("chown the data dir to postgres");
        }
        let as_postgres = |cmd: &mut Command| {
            if let Some((uid, gid)) = user {
                cmd.uid(uid).gid(gid).env("HOME", dir.path());
            }
            cmd.current_dir(dir.path());
        };
        let data = dir.path().join("data");
        let mut initdb = Command::new(bin.join("initdb"));
        initdb
            .arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"])
            .args(["--locale=C"])
            .stdout(Stdio::null());
        as_postgres(&mut initdb);
        let out = initdb.output().expect("run initdb");
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let mut cmd = Command::new(bin.join("postgres"));
        cmd.arg("-D").arg(&data).arg("-p").arg(port.to_string());
        cmd.arg("-k").arg(dir.path());
        for setting in [
            "listen_addresses=127.0.0.1",
            "wal_level=logical",
            "max_replication_slots=4",
            "max_wal_senders=4",
            "fsync=off",
            "synchronous_commit=off",
            "full_page_writes=off",
            "log_min_messages=warning",
        ] {
            cmd.arg("-c").arg(setting);
        }
        cmd.stdout(Stdio::null()).stderr(Stdio::null());
        as_postgres(&mut cmd);
        let child = cmd.spawn().expect("start postgres");
        let pg = Postgres {
            child,
            port,
            bin,
            user,
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ok =
                strom_testkit::accepts(([127, 0, 0, 1], port).into(), Duration::from_millis(200))
                    && std::thread::spawn({
                        let url = pg.libpq();
                        move || {
                            tokio::runtime::Builder::new_current_thread()
                                .enable_all()
                                .build()
                                .unwrap()
                                .block_on(async {
                                    match tokio_postgres::connect(&url, NoTls).await {
                                        Ok((c, conn)) => {
                                            tokio::spawn(conn);
                                            c.simple_query("SELECT 1").await.is_ok()
                                        }
                                        Err(_) => false,
                                    }
                                })
                        }
                    })
                    .join()
                    .unwrap_or(false);
            if ok {
                break;
            }
            assert!(Instant::now() < deadline, "postgres did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        pg
    }

    /// The JDBC URL of the `postgres` database.
    pub fn jdbc_url(&self) -> String {
        format!(
            "jdbc:postgresql://127.0.0.1:{}/postgres?user=postgres",
            self.port
        )
    }

    /// The libpq connection string.
    pub fn libpq(&self) -> String {
        format!(
            "host=127.0.0.1 port={} user=postgres dbname=postgres",
            self.port
        )
    }

    pub async fn client(&self) -> Client {
        let (c, conn) = tokio_postgres::connect(&self.libpq(), NoTls)
            .await
            .expect("connect to postgres");
        tokio::spawn(conn);
        c.batch_execute("SET TimeZone = 'UTC'").await.unwrap();
        c
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        // Immediate shutdown: the postmaster stops its backends, then itself.
        let mut stop = Command::new(self.bin.join("pg_ctl"));
        stop.arg("stop")
            .args(["-m", "immediate", "-D"])
            .arg(self.dir.path().join("data"))
            .current_dir(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some((uid, gid)) = self.user {
            stop.uid(uid).gid(gid);
        }
        if stop.status().is_err() {
            let _ = self.child.kill();
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every row of a query as text columns (`col::text` in the SELECT list), for exact checks.
pub async fn rows(c: &Client, sql: &str) -> Vec<Vec<Option<String>>> {
    c.query(sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .iter()
        .map(|r| {
            (0..r.len())
                .map(|i| r.get::<_, Option<String>>(i))
                .collect()
        })
        .collect()
}

/// A standalone worker's properties: JSON converters with schemas (Kafka's envelope), the
/// offsets in `dir`, offsets committed every 100 ms, the REST API on a free port.
pub fn worker_props(bootstrap: &str, dir: &std::path::Path) -> strom_connect::config::Props {
    [
        ("bootstrap.servers", bootstrap.to_owned()),
        ("listeners", "http://127.0.0.1:0".into()),
        (
            "offset.storage.file.filename",
            dir.join("offsets").display().to_string(),
        ),
        (
            "key.converter",
            "org.apache.kafka.connect.json.JsonConverter".into(),
        ),
        (
            "value.converter",
            "org.apache.kafka.connect.json.JsonConverter".into(),
        ),
        ("offset.flush.interval.ms", "100".into()),
        ("consumer.heartbeat.interval.ms", "200".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// Connector properties from pairs.
pub fn props(pairs: &[(&str, &str)]) -> strom_connect::config::Props {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}
