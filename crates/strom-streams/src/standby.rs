//! Standby replicas (`num.standby.replicas`): an instance keeps warm copies of persistent
//! stores of tasks that run elsewhere by tailing their changelogs, so that when such a
//! task moves here its restore starts at the standby's checkpoint instead of offset 0.
//! Who runs what comes from the instances topic: the standbys of a task are the next
//! `num.standby.replicas` instances (by process id) after its active one.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use strom_client::{Consumer, ConsumerConfig, TopicPartition};

use crate::context::TaskId;
use crate::error::Result;
use crate::runtime::Shared;
use crate::store::{self, SharedStore, StoreKind};
use crate::task;

/// The warm stores of one standby task: store name, store, changelog partition, position.
pub(crate) struct StandbyTask {
    dir: PathBuf,
    stores: Vec<(String, SharedStore, TopicPartition, i64)>,
}

impl StandbyTask {
    /// Flushes durably and checkpoints what was applied, so the active task resumes there.
    pub(crate) fn release(self) {
        let mut offsets = BTreeMap::new();
        for (name, s, _, pos) in &self.stores {
            if store::lock(s).flush(true).is_ok() {
                offsets.insert(name.clone(), *pos);
            }
        }
        if let Err(e) = task::write_checkpoint(&self.dir, &offsets) {
            tracing::warn!("standby checkpoint in {}: {e}", self.dir.display());
        }
    }
}

/// Parses the instances topic's latest records into task -> active process.
fn active_owners(
    latest: &BTreeMap<String, (i64, String)>,
) -> (BTreeMap<TaskId, String>, BTreeSet<String>) {
    let mut owners: BTreeMap<TaskId, (i64, String)> = BTreeMap::new();
    let mut processes = BTreeSet::new();
    for (member, (offset, value)) in latest {
        let process = member
            .rsplit_once('-')
            .map_or(member.as_str(), |(p, _)| p)
            .to_owned();
        processes.insert(process.clone());
        let tasks = value.split_once('\n').map_or("", |(_, t)| t);
        for t in tasks.split(',').filter(|t| !t.is_empty()) {
            let Some((s, p)) = t.split_once('_') else {
                continue;
            };
            let (Ok(subtopology), Ok(partition)) = (s.parse(), p.parse()) else {
                continue;
            };
            let id = TaskId {
                subtopology,
                partition,
            };
            if owners.get(&id).is_none_or(|(o, _)| offset > o) {
                owners.insert(id, (*offset, process.clone()));
            }
        }
    }
    (
        owners.into_iter().map(|(t, (_, p))| (t, p)).collect(),
        processes,
    )
}

pub(crate) async fn run_standby(shared: Arc<Shared>) -> Result<()> {
    let c = &shared.config;
    let app = c.application_id.clone();
    let mut cc = ConsumerConfig::new(&c.bootstrap_servers);
    cc.set("fetch.max.wait.ms", "100")?;
    if c.processing_guarantee == crate::ProcessingGuarantee::ExactlyOnceV2 {
        cc.set("isolation.level", "read_committed")?;
    }
    let mut members = Consumer::new(cc.clone()).await?;
    let mtp = TopicPartition::new(crate::internal_topics::instances_topic(&app), 0);
    members.assign(std::slice::from_ref(&mtp));
    members.seek(&mtp, 0)?;
    let mut changelogs = Consumer::new(cc).await?;
    let mut latest: BTreeMap<String, (i64, String)> = BTreeMap::new();
    let mut assigned: Vec<TopicPartition> = Vec::new();
    while shared.running.load(Ordering::Acquire) && !shared.crashed() {
        for r in members.poll(Duration::from_millis(50)).await? {
            let Some(k) = r.key else { continue };
            let k = String::from_utf8_lossy(&k).into_owned();
            match r.value {
                Some(v) => latest.insert(k, (r.offset, String::from_utf8_lossy(&v).into_owned())),
                None => latest.remove(&k),
            };
        }
        let wanted = standby_tasks(&shared, &latest);
        let (tps, positions) = refresh(&shared, wanted);
        if tps != assigned {
            changelogs.assign(&tps);
            for (tp, pos) in &positions {
                changelogs.seek(tp, *pos)?;
            }
            assigned = tps;
        }
        if assigned.is_empty() {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        let records = changelogs.poll(Duration::from_millis(100)).await?;
        let mut tasks = shared.standbys.lock().unwrap_or_else(|e| e.into_inner());
        for r in records {
            for s in tasks.values_mut() {
                for (_, st, tp, pos) in s.stores.iter_mut() {
                    if tp.topic == r.topic && tp.partition == r.partition && r.offset >= *pos {
                        if let Some(k) = &r.key {
                            store::lock(st).put(k, r.value.as_deref())?;
                            shared
                                .metrics
                                .standby_applied
                                .fetch_add(1, Ordering::Relaxed);
                        }
                        *pos = r.offset + 1;
                    }
                }
            }
        }
        // Transaction markers move positions without records.
        for s in tasks.values_mut() {
            for (_, _, tp, pos) in s.stores.iter_mut() {
                if let Some(p) = changelogs.position(tp) {
                    *pos = (*pos).max(p);
                }
            }
        }
    }
    Ok(())
}

/// Releases standbys no longer wanted, opens new ones; their changelog partitions and
/// positions.
fn refresh(
    shared: &Shared,
    wanted: BTreeSet<TaskId>,
) -> (Vec<TopicPartition>, BTreeMap<TopicPartition, i64>) {
    let mut tasks = shared.standbys.lock().unwrap_or_else(|e| e.into_inner());
    let gone: Vec<TaskId> = tasks
        .keys()
        .filter(|t| !wanted.contains(t))
        .copied()
        .collect();
    for t in gone {
        if let Some(s) = tasks.remove(&t) {
            s.release();
        }
    }
    for t in wanted {
        if tasks.contains_key(&t) || shared.active_here(t) {
            continue;
        }
        match open_standby(shared, t) {
            Ok(Some(s)) => {
                tasks.insert(t, s);
            }
            Ok(None) => {}
            // E.g. the store file still open by a task closing here: next round.
            Err(e) => tracing::debug!(task = %t, "standby not opened yet: {e}"),
        }
    }
    let tps: Vec<TopicPartition> = tasks
        .values()
        .flat_map(|s| s.stores.iter().map(|x| x.2.clone()))
        .collect();
    let positions: BTreeMap<TopicPartition, i64> = tasks
        .values()
        .flat_map(|s| s.stores.iter().map(|x| (x.2.clone(), x.3)))
        .collect();
    (tps, positions)
}

/// The tasks this process should keep standbys of.
fn standby_tasks(shared: &Shared, latest: &BTreeMap<String, (i64, String)>) -> BTreeSet<TaskId> {
    let n = shared.config.num_standby_replicas;
    let (owners, processes) = active_owners(latest);
    let processes: Vec<String> = processes.into_iter().collect();
    let me = &shared.process_id;
    let mut out = BTreeSet::new();
    for (task, owner) in owners {
        let Some(i) = processes.iter().position(|p| p == &owner) else {
            continue;
        };
        let standbys = (1..=n.min(processes.len().saturating_sub(1)))
            .map(|j| &processes[(i + j) % processes.len()]);
        if standbys.into_iter().any(|p| p == me) {
            out.insert(task);
        }
    }
    out
}

/// Opens the persistent, logged stores of a task as a standby, from its checkpoint.
fn open_standby(shared: &Shared, id: TaskId) -> Result<Option<StandbyTask>> {
    let app = &shared.config.application_id;
    let dir = shared.config.state_dir.join(app).join(id.to_string());
    std::fs::create_dir_all(&dir).map_err(|e| crate::error::store_err(&id.to_string(), e))?;
    let checkpoint = task::read_checkpoint(&dir);
    task::remove_checkpoint(&dir);
    let mut stores = Vec::new();
    let Some(sub) = shared.topology.subtopologies.get(id.subtopology) else {
        return Ok(None);
    };
    for name in &sub.stores {
        let def = &shared.topology.stores[name];
        let Some(changelog) = def.changelog(app) else {
            continue;
        };
        if def.kind != StoreKind::Persistent {
            continue;
        }
        if !checkpoint.contains_key(name) {
            let _ = std::fs::remove_file(dir.join(format!("{name}.redb")));
        }
        let s = store::open(StoreKind::Persistent, &dir, name)?;
        let pos = checkpoint.get(name).copied().unwrap_or(0);
        stores.push((
            name.clone(),
            s,
            TopicPartition::new(changelog, id.partition),
            pos,
        ));
    }
    if stores.is_empty() {
        return Ok(None);
    }
    Ok(Some(StandbyTask { dir, stores }))
}
