//! Internal topics at start-up: how many tasks each sub-topology has (the partitions of its
//! source topics, which co-partitioned inputs must agree on; a repartition topic gets the
//! partitions of the sub-topology that writes it), and creating the repartition and
//! changelog (`cleanup.policy=compact`) topics that do not exist yet.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use strom_client::{Admin, ClientConfig, NewTopic};

use crate::error::{Result, StreamsError};
use crate::topology::{TopicRef, Topology};

/// Window changelogs keep a day more than the windows (Kafka's
/// `windowstore.changelog.additional.retention.ms`).
const WINDOW_CHANGELOG_EXTRA_RETENTION_MS: i64 = 86_400_000;

/// The compacted topic where each stream thread publishes its `application.server` and
/// tasks (what Kafka carries in the group assignment's user data).
pub(crate) fn instances_topic(app_id: &str) -> String {
    format!("{app_id}-instances")
}

/// Tasks per sub-topology.
pub(crate) async fn prepare(
    topology: &Topology,
    app_id: &str,
    bootstrap: &str,
    replication_factor: i16,
) -> Result<BTreeMap<usize, i32>> {
    let admin = Admin::new(ClientConfig::new(bootstrap)).await?;
    let user: Vec<String> = topology
        .subtopologies
        .iter()
        .flat_map(|s| s.sources.iter())
        .filter_map(|t| match t {
            TopicRef::User(n) => Some(n.clone()),
            TopicRef::Repartition(_) => None,
        })
        .collect();
    let mut counts: BTreeMap<TopicRef, i32> = BTreeMap::new();
    for info in admin
        .describe_topics(&user)
        .await
        .map_err(|e| StreamsError::Topology(format!("source topics {user:?} must exist: {e}")))?
    {
        counts.insert(
            TopicRef::User(info.name.clone()),
            info.partitions.len() as i32,
        );
    }
    // A repartition topic read together with user topics must be co-partitioned with
    // them (e.g. a foreign-key join's subscriptions meet the other table's partitions).
    for s in &topology.subtopologies {
        let user = s.sources.iter().find_map(|t| match t {
            TopicRef::User(_) => counts.get(t).copied(),
            TopicRef::Repartition(_) => None,
        });
        if let Some(n) = user {
            for t in &s.sources {
                if matches!(t, TopicRef::Repartition(_)) {
                    counts.insert(t.clone(), n);
                }
            }
        }
    }
    let mut tasks: BTreeMap<usize, i32> = BTreeMap::new();
    loop {
        let mut changed = false;
        for s in &topology.subtopologies {
            let known: Vec<(&TopicRef, i32)> = s
                .sources
                .iter()
                .filter_map(|t| counts.get(t).map(|&n| (t, n)))
                .collect();
            let users: Vec<&(&TopicRef, i32)> = known
                .iter()
                .filter(|(t, _)| matches!(t, TopicRef::User(_)))
                .collect();
            if users.windows(2).any(|w| w[0].1 != w[1].1) {
                return Err(StreamsError::Topology(format!(
                    "sub-topology {} joins topics that are not co-partitioned: {users:?}",
                    s.id
                )));
            }
            let Some(n) = known.iter().map(|(_, n)| *n).max() else {
                continue;
            };
            if tasks.insert(s.id, n) != Some(n) {
                changed = true;
            }
            for sink in &s.sinks {
                if matches!(sink, TopicRef::Repartition(_)) && !counts.contains_key(sink) {
                    counts.insert(sink.clone(), n);
                    changed = true;
                }
            }
        }
        if !changed {
            break;
        }
    }
    if let Some(s) = topology
        .subtopologies
        .iter()
        .find(|s| !tasks.contains_key(&s.id))
    {
        return Err(StreamsError::Topology(format!(
            "cannot tell the partitions of sub-topology {}",
            s.id
        )));
    }
    let mut wanted = Vec::new();
    for (t, &n) in &counts {
        if let TopicRef::Repartition(_) = t {
            wanted.push(NewTopic::new(t.resolve(app_id), n, replication_factor));
        }
    }
    for s in &topology.subtopologies {
        for name in &s.stores {
            let def = &topology.stores[name];
            let Some(changelog) = def.changelog(app_id) else {
                continue;
            };
            let mut t = NewTopic::new(changelog, tasks[&s.id], replication_factor);
            match def.retention_ms {
                Some(r) => {
                    t.configs
                        .push(("cleanup.policy".into(), "compact,delete".into()));
                    t.configs.push((
                        "retention.ms".into(),
                        (r + WINDOW_CHANGELOG_EXTRA_RETENTION_MS).to_string(),
                    ));
                }
                None => t.configs.push(("cleanup.policy".into(), "compact".into())),
            }
            wanted.push(t);
        }
    }
    let mut members = NewTopic::new(instances_topic(app_id), 1, replication_factor);
    members
        .configs
        .push(("cleanup.policy".into(), "compact".into()));
    wanted.push(members);
    if !wanted.is_empty() {
        for (name, r) in admin.create_topics(&wanted, false).await? {
            match r {
                Ok(()) => tracing::info!(topic = %name, "created internal topic"),
                Err(e) if e.code() == Some(strom_client::KafkaCode::TopicAlreadyExists) => {}
                Err(e) => return Err(e.into()),
            }
        }
        let names: Vec<String> = wanted.iter().map(|t| t.name.clone()).collect();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match admin.describe_topics(&names).await {
                Ok(infos)
                    if infos
                        .iter()
                        .all(|i| i.partitions.iter().all(|p| p.leader >= 0)) =>
                {
                    break
                }
                _ if Instant::now() > deadline => {
                    return Err(StreamsError::Topology(format!(
                        "internal topics {names:?} did not get leaders"
                    )))
                }
                _ => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }
    admin.client().close().await;
    Ok(tasks)
}
