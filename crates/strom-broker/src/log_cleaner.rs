//! The log cleaner task: every `log.cleaner.backoff.ms` it runs `PartitionLog::clean` on each
//! hosted partition whose `cleanup.policy` includes `compact`, on a blocking thread, one log at
//! a time (Kafka's `log.cleaner.threads=1`). Off when `log.cleaner.enable=false`.

use std::sync::Arc;
use std::time::Duration;

use strom_storage::CleanerOptions;
use tokio::sync::watch;

use crate::broker::Broker;

/// Kafka's default `log.cleaner.backoff.ms`.
const DEFAULT_BACKOFF_MS: u64 = 15_000;
/// Kafka's default `log.cleaner.dedupe.buffer.size` (128 MiB).
const DEFAULT_DEDUPE_BUFFER_BYTES: usize = 128 << 20;

fn setting<T: std::str::FromStr>(broker: &Broker, key: &str) -> Option<T> {
    broker.config().value_and_source(key).0?.trim().parse().ok()
}

/// Starts the cleaner loop unless `log.cleaner.enable=false`; it ends when `stop` changes.
pub(crate) fn spawn(broker: Arc<Broker>, mut stop: watch::Receiver<bool>) {
    if !broker.config().log_cleaner_enable() {
        tracing::info!("log cleaner disabled (log.cleaner.enable=false)");
        return;
    }
    let backoff_ms = setting(&broker, "log.cleaner.backoff.ms").unwrap_or(DEFAULT_BACKOFF_MS);
    let options = CleanerOptions {
        dedupe_buffer_bytes: setting(&broker, "log.cleaner.dedupe.buffer.size")
            .unwrap_or(DEFAULT_DEDUPE_BUFFER_BYTES),
        ..CleanerOptions::default()
    };
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(Duration::from_millis(backoff_ms.max(10)));
        ticker.tick().await;
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                _ = stop.changed() => return,
            }
            let (broker, options) = (broker.clone(), options.clone());
            let _ = tokio::task::spawn_blocking(move || clean_all(&broker, &options)).await;
        }
    });
}

/// One cleaner round over every hosted partition (logs that are not due return at once).
fn clean_all(broker: &Broker, options: &CleanerOptions) {
    for partition in broker.replicas().all() {
        match partition.log.clean(options) {
            Ok(None) => {}
            Ok(Some(stats)) => tracing::debug!(
                topic = %partition.topic,
                partition = partition.index,
                bytes_before = stats.bytes_before,
                bytes_after = stats.bytes_after,
                records_removed = stats.records_removed,
                "log cleaned"
            ),
            Err(e) => tracing::warn!(
                topic = %partition.topic,
                partition = partition.index,
                error = %e,
                "log cleaning failed"
            ),
        }
    }
}
