//! A Strom broker with its embedded Schema Registry (`schema.registry.listeners`), both on
//! free ports, from the same `strom` binary as the other tests.

#![allow(dead_code)]

use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{free_port, http, strom_bin};

pub struct BrokerWithRegistry {
    child: Child,
    pub port: u16,
    pub registry: SocketAddr,
    _tmp: tempfile::TempDir,
}

impl BrokerWithRegistry {
    pub async fn start() -> BrokerWithRegistry {
        let tmp = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let registry_port = free_port();
        let mut cmd = Command::new(strom_bin());
        cmd.arg("server");
        for (k, v) in [
            ("listeners", format!("PLAINTEXT://127.0.0.1:{port}")),
            ("log.dirs", tmp.path().join("data").display().to_string()),
            ("group.initial.rebalance.delay.ms", "0".into()),
            ("auto.create.topics.enable", "false".into()),
            (
                "schema.registry.listeners",
                format!("http://127.0.0.1:{registry_port}"),
            ),
        ] {
            cmd.arg("--set").arg(format!("{k}={v}"));
        }
        cmd.env(
            "STROM_LOG",
            std::env::var("STROM_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
        let child = cmd.spawn().expect("start strom");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let registry: SocketAddr = format!("127.0.0.1:{registry_port}").parse().unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_err() {
            assert!(Instant::now() < deadline, "strom did not start listening");
            std::thread::sleep(Duration::from_millis(50));
        }
        let me = BrokerWithRegistry {
            child,
            port,
            registry,
            _tmp: tmp,
        };
        loop {
            if TcpStream::connect_timeout(&registry, Duration::from_millis(100)).is_ok()
                && http(registry, "GET", "/subjects", None).await.status == 200
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the schema registry did not start"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        me
    }

    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn registry_url(&self) -> String {
        format!("http://{}", self.registry)
    }
}

impl Drop for BrokerWithRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
