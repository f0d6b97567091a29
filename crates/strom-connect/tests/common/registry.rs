//! A Strom broker with its embedded Schema Registry (`schema.registry.listeners`), both on
//! free ports, from the same `strom` binary as the other tests.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::{free_port, http, Broker};

pub struct BrokerWithRegistry {
    pub port: u16,
    pub registry: SocketAddr,
    _broker: Broker,
}

impl BrokerWithRegistry {
    pub async fn start() -> BrokerWithRegistry {
        let registry_port = free_port();
        let broker = Broker::start_with(&[(
            "schema.registry.listeners",
            &format!("http://127.0.0.1:{registry_port}"),
        )]);
        let registry: SocketAddr = format!("127.0.0.1:{registry_port}").parse().unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if strom_testkit::accepts(registry, Duration::from_millis(100))
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
        BrokerWithRegistry {
            port: broker.port,
            registry,
            _broker: broker,
        }
    }

    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn registry_url(&self) -> String {
        format!("http://{}", self.registry)
    }
}
