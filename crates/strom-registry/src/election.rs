//! Which instance writes: every instance joins one consumer group on `_schemas` (one
//! partition), so the group protocol gives that partition, and with it the primary role, to
//! exactly one live member, and moves it when that member stops heartbeating. Members use
//! their URL as `client.id`, so the others find the primary's address with DescribeGroups.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use strom_client::{Admin, ClientConfig, Consumer, ConsumerConfig};

use crate::error::{RegistryError, Result};

/// How long a write waits for the group to name a primary (a first join, a failover).
const PRIMARY_WAIT: Duration = Duration::from_secs(30);
/// How long a looked-up primary URL is trusted before asking the group again.
const PRIMARY_CACHE: Duration = Duration::from_millis(500);

/// Where a write goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Primary {
    Me,
    Other(String),
}

pub struct Election {
    group: String,
    my_url: String,
    is_primary: Arc<AtomicBool>,
    admin: Admin,
    cached: Mutex<Option<(Instant, String)>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Election {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn storage(e: impl std::fmt::Display) -> RegistryError {
    RegistryError::Storage(e.to_string())
}

impl Election {
    pub async fn start(
        bootstrap: &str,
        topic: &str,
        group: &str,
        my_url: &str,
    ) -> Result<Election> {
        let mut cc = ConsumerConfig::new(bootstrap);
        for (k, v) in [
            ("group.id", group),
            ("client.id", my_url),
            ("enable.auto.commit", "false"),
            ("session.timeout.ms", "6000"),
            ("heartbeat.interval.ms", "1000"),
            ("auto.offset.reset", "latest"),
        ] {
            cc.set(k, v).map_err(storage)?;
        }
        let mut consumer = Consumer::new(cc).await.map_err(storage)?;
        consumer.subscribe(&[topic], None).map_err(storage)?;
        let is_primary = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn(run(consumer, is_primary.clone()));
        let admin = Admin::new(ClientConfig::new(bootstrap))
            .await
            .map_err(storage)?;
        Ok(Election {
            group: group.to_owned(),
            my_url: my_url.to_owned(),
            is_primary,
            admin,
            cached: Mutex::new(None),
            task,
        })
    }

    pub fn is_primary(&self) -> bool {
        self.is_primary.load(Ordering::Acquire)
    }

    /// The primary now, waiting (bounded) while the group has none.
    pub async fn primary(&self) -> Result<Primary> {
        let deadline = Instant::now() + PRIMARY_WAIT;
        loop {
            if self.is_primary() {
                return Ok(Primary::Me);
            }
            if let Some((at, url)) = self
                .cached
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone()
            {
                if at.elapsed() < PRIMARY_CACHE {
                    return Ok(Primary::Other(url));
                }
            }
            match self.lookup().await {
                Ok(Some(url)) if url == self.my_url => {}
                Ok(Some(url)) => {
                    *self.cached.lock().unwrap_or_else(|p| p.into_inner()) =
                        Some((Instant::now(), url.clone()));
                    return Ok(Primary::Other(url));
                }
                Ok(None) => {}
                Err(e) => tracing::debug!(error = %e, "primary lookup failed"),
            }
            if Instant::now() > deadline {
                return Err(RegistryError::UnknownPrimary(format!(
                    "no member of group '{}' holds the primary role",
                    self.group
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Forgets the cached primary (after a forward to it failed).
    pub fn forget_primary(&self) {
        *self.cached.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    async fn lookup(&self) -> std::result::Result<Option<String>, String> {
        let groups = self
            .admin
            .describe_groups(std::slice::from_ref(&self.group))
            .await
            .map_err(|e| e.to_string())?;
        Ok(groups
            .into_iter()
            .flat_map(|g| g.members)
            .find(|m| !m.assignment.is_empty())
            .map(|m| m.client_id))
    }
}

/// Keeps the membership alive (poll heartbeats) and mirrors "assigned the partition" into
/// `is_primary`. Partitions stay paused: this consumer only holds the role.
async fn run(mut consumer: Consumer, is_primary: Arc<AtomicBool>) {
    loop {
        if let Err(e) = consumer.poll(Duration::from_millis(200)).await {
            tracing::warn!(error = %e, "registry election: poll failed");
            is_primary.store(false, Ordering::Release);
            tokio::time::sleep(Duration::from_millis(500)).await;
            continue;
        }
        let assigned = consumer.assignment();
        consumer.pause(&assigned);
        let now = !assigned.is_empty();
        if is_primary.swap(now, Ordering::AcqRel) != now {
            tracing::info!(primary = now, "schema registry role changed");
        }
    }
}
