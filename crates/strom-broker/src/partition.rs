//! One hosted partition: its log, its role (leader or follower, from the committed metadata),
//! and on a leader the replication state of every follower: how far each has fetched and when
//! it was last caught up. The high watermark is the smallest log end offset over the ISR,
//! and never goes back on a leader; acks=all producers wait for it (`subscribe`).

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use strom_metadata::{MetadataImage, PartitionImage};
use strom_protocol::ErrorCode;
use strom_storage::PartitionLog;
use tokio::sync::{watch, Notify};
use uuid::Uuid;

/// What the committed metadata says about a partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Role {
    pub leader: i32,
    pub leader_epoch: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    pub partition_epoch: i32,
}

impl Role {
    pub fn of(p: &PartitionImage) -> Role {
        Role {
            leader: p.leader,
            leader_epoch: p.leader_epoch,
            replicas: p.replicas.clone(),
            isr: p.isr.clone(),
            partition_epoch: p.partition_epoch,
        }
    }
}

/// A leader's view of one follower.
#[derive(Debug, Clone, Copy)]
struct FollowerState {
    /// The follower's log end offset, as its last fetch offset said (-1: not heard from in
    /// this leader epoch).
    log_end_offset: i64,
    /// Last time the follower had everything the leader had (Kafka's lastCaughtUpTimeMs).
    last_caught_up_ms: i64,
    last_fetch_ms: i64,
    /// The leader's log end offset at the follower's previous fetch.
    last_fetch_leader_leo: i64,
}

impl FollowerState {
    fn unknown(last_caught_up_ms: i64) -> Self {
        FollowerState {
            log_end_offset: -1,
            last_caught_up_ms,
            last_fetch_ms: 0,
            last_fetch_leader_leo: -1,
        }
    }
}

struct ReplicaState {
    role: Role,
    followers: HashMap<i32, FollowerState>,
    /// The high watermark: on a leader the last one computed (it only grows); on a follower
    /// the leader's, capped by the local log end.
    high_watermark: i64,
    /// When an ISR change was sent to the controller and not yet seen committed.
    isr_change_sent_ms: Option<i64>,
}

/// How a role change touched this replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoleChange {
    None,
    BecameLeader,
    BecameFollower,
    /// Same leader and epoch; the ISR or the replicas changed.
    Updated,
}

/// A hosted partition. Invariant: `log` lives in `<log.dirs>/<topic>-<index>`.
pub struct Partition {
    pub topic: String,
    pub topic_id: Uuid,
    pub index: i32,
    pub log: PartitionLog,
    /// This broker's id.
    local_id: i32,
    waiters: Mutex<Vec<Arc<Notify>>>,
    state: Mutex<ReplicaState>,
    /// Bumped whenever the high watermark or the role changes.
    changes: watch::Sender<u64>,
}

impl Partition {
    pub fn new(
        topic: String,
        topic_id: Uuid,
        index: i32,
        log: PartitionLog,
        local_id: i32,
        high_watermark: i64,
    ) -> Partition {
        let high_watermark = high_watermark.clamp(log.log_start_offset(), log.log_end_offset());
        Partition {
            topic,
            topic_id,
            index,
            log,
            local_id,
            waiters: Mutex::new(Vec::new()),
            state: Mutex::new(ReplicaState {
                // No role until the first `apply_role`: neither leader nor follower.
                role: Role {
                    leader: -1,
                    leader_epoch: -1,
                    replicas: Vec::new(),
                    isr: Vec::new(),
                    partition_epoch: -1,
                },
                followers: HashMap::new(),
                high_watermark,
                isr_change_sent_ms: None,
            }),
            changes: watch::Sender::new(0),
        }
    }

    /// Registers a fetch waiting for data; woken by the next append.
    pub fn register_waiter(&self, waiter: &Arc<Notify>) {
        let mut waiters = self.waiters.lock();
        // Drop registrations of fetches that have already answered.
        waiters.retain(|w| Arc::strong_count(w) > 1);
        if !waiters.iter().any(|w| Arc::ptr_eq(w, waiter)) {
            waiters.push(waiter.clone());
        }
    }

    /// Wakes every fetch waiting on this partition.
    pub fn notify_appended(&self) {
        for waiter in self.waiters.lock().drain(..) {
            waiter.notify_one();
        }
    }

    /// A receiver that sees every later change of the high watermark or the role.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    fn changed(&self) {
        self.changes.send_modify(|n| *n += 1);
        self.notify_appended();
    }

    pub fn role(&self) -> Role {
        self.state.lock().role.clone()
    }

    pub fn is_leader(&self) -> bool {
        self.state.lock().role.leader == self.local_id
    }

    /// The leader epoch, if this replica leads.
    pub fn leader_epoch_if_leader(&self) -> Option<i32> {
        let state = self.state.lock();
        (state.role.leader == self.local_id).then_some(state.role.leader_epoch)
    }

    /// Takes the committed role. Returns what changed for this replica.
    pub fn apply_role(&self, role: Role, now_ms: i64) -> RoleChange {
        let mut state = self.state.lock();
        if state.role == role {
            return RoleChange::None;
        }
        let was_leader = state.role.leader == self.local_id;
        let leads = role.leader == self.local_id;
        let new_epoch = state.role.leader_epoch != role.leader_epoch;
        if role.partition_epoch != state.role.partition_epoch {
            state.isr_change_sent_ms = None;
        }
        let change = if leads && (!was_leader || new_epoch) {
            if let Err(e) = self.log.become_leader(role.leader_epoch) {
                tracing::error!(topic = %self.topic, partition = self.index, error = %e, "cannot start the leader epoch");
            }
            state.followers = role
                .replicas
                .iter()
                .filter(|r| **r != self.local_id)
                .map(|r| {
                    // ISR members are presumed caught up as of now (Kafka does the same).
                    let caught_up = if role.isr.contains(r) { now_ms } else { 0 };
                    (*r, FollowerState::unknown(caught_up))
                })
                .collect();
            tracing::info!(topic = %self.topic, partition = self.index, epoch = role.leader_epoch, "became leader");
            RoleChange::BecameLeader
        } else if !leads && (was_leader || new_epoch || state.role.leader != role.leader) {
            self.log.become_follower();
            state.followers.clear();
            state.high_watermark = state.high_watermark.min(self.log.log_end_offset());
            RoleChange::BecameFollower
        } else {
            if leads {
                for r in role.replicas.iter().filter(|r| **r != self.local_id) {
                    state
                        .followers
                        .entry(*r)
                        .or_insert(FollowerState::unknown(0));
                }
            }
            RoleChange::Updated
        };
        state.role = role;
        if leads {
            self.advance_high_watermark(&mut state);
        }
        drop(state);
        self.changed();
        change
    }

    /// The high watermark: what consumers may read, and what acks=all waits for.
    pub fn high_watermark(&self) -> i64 {
        let mut state = self.state.lock();
        if state.role.leader == self.local_id {
            self.advance_high_watermark(&mut state);
        }
        state.high_watermark
    }

    /// Leader: the smallest log end offset over the ISR (this replica's counted as what may
    /// be visible: in durable mode only what is fsynced). Never moves back.
    fn advance_high_watermark(&self, state: &mut ReplicaState) -> bool {
        let mut hw = self.log.visible_end_offset();
        for id in state.role.isr.iter().filter(|id| **id != self.local_id) {
            let leo = state.followers.get(id).map_or(-1, |f| f.log_end_offset);
            hw = hw.min(leo);
        }
        if hw > state.high_watermark {
            state.high_watermark = hw;
            true
        } else {
            false
        }
    }

    /// Follower: the leader's high watermark from a fetch response.
    pub fn set_follower_high_watermark(&self, leader_hw: i64) {
        let mut state = self.state.lock();
        let hw = leader_hw.min(self.log.log_end_offset());
        if hw != state.high_watermark {
            state.high_watermark = hw;
            drop(state);
            self.changed();
        }
    }

    /// Leader: follower `replica` fetched from `fetch_offset` (so has everything below it).
    /// Returns whether the follower, out of the ISR, has caught up and should join it.
    pub fn record_follower_fetch(
        &self,
        replica: i32,
        fetch_offset: i64,
        now_ms: i64,
    ) -> Result<bool, ErrorCode> {
        let mut state = self.state.lock();
        if state.role.leader != self.local_id {
            return Err(ErrorCode::NotLeaderOrFollower);
        }
        let leo = self.log.log_end_offset();
        let Some(f) = state.followers.get_mut(&replica) else {
            // Not a replica of this partition (a reassignment it has not seen yet, say).
            return Err(ErrorCode::NotLeaderOrFollower);
        };
        if fetch_offset >= leo {
            f.last_caught_up_ms = now_ms;
        } else if fetch_offset >= f.last_fetch_leader_leo && f.last_fetch_leader_leo >= 0 {
            f.last_caught_up_ms = f.last_caught_up_ms.max(f.last_fetch_ms);
        }
        f.log_end_offset = fetch_offset;
        f.last_fetch_ms = now_ms;
        f.last_fetch_leader_leo = leo;
        let in_isr = state.role.isr.contains(&replica);
        let advanced = self.advance_high_watermark(&mut state);
        let hw = state.high_watermark;
        let epoch_start = self
            .log
            .epoch_entries()
            .last()
            .map_or(0, |&(_, start)| start);
        let joins = !in_isr && fetch_offset >= hw && fetch_offset >= epoch_start;
        drop(state);
        if advanced {
            self.changed();
        }
        Ok(joins)
    }

    /// Leader: the ISR this replica should ask the controller for, if it differs from the
    /// committed one and no change is in flight: members silent or behind for longer than
    /// `lag_ms` leave, caught-up replicas join. Marks the change as in flight.
    pub fn isr_change_due(&self, now_ms: i64, lag_ms: i64) -> Option<(Role, Vec<i32>)> {
        let mut state = self.state.lock();
        if state.role.leader != self.local_id {
            return None;
        }
        // A change the controller did not act on (lost, refused) is retried after a while.
        if state
            .isr_change_sent_ms
            .is_some_and(|sent| now_ms - sent < lag_ms.max(1_000))
        {
            return None;
        }
        self.advance_high_watermark(&mut state);
        let hw = state.high_watermark;
        let epoch_start = self
            .log
            .epoch_entries()
            .last()
            .map_or(0, |&(_, start)| start);
        let role = &state.role;
        let mut isr: Vec<i32> = role
            .isr
            .iter()
            .copied()
            .filter(|id| {
                *id == self.local_id
                    || state
                        .followers
                        .get(id)
                        .is_some_and(|f| now_ms - f.last_caught_up_ms <= lag_ms)
            })
            .collect();
        for r in &role.replicas {
            let caught_up = state
                .followers
                .get(r)
                .is_some_and(|f| f.log_end_offset >= hw && f.log_end_offset >= epoch_start);
            if !isr.contains(r) && caught_up && now_ms - state.followers[r].last_fetch_ms <= lag_ms
            {
                isr.push(*r);
            }
        }
        isr.sort_by_key(|id| role.replicas.iter().position(|r| r == id));
        if isr == role.isr {
            return None;
        }
        let role = role.clone();
        state.isr_change_sent_ms = Some(now_ms);
        Some((role, isr))
    }

    /// The controller refused an ISR change: the next check may send another.
    pub fn isr_change_failed(&self) {
        self.state.lock().isr_change_sent_ms = None;
    }

    /// The last stable offset: the first offset of the earliest open transaction, capped by
    /// the high watermark (KIP-98). read_committed consumers read only below it.
    pub fn last_stable_offset(&self) -> i64 {
        let hw = self.high_watermark();
        self.log
            .first_unstable_offset()
            .map_or(hw, |first| first.min(hw))
    }

    /// KIP-320 fencing: a request that names a leader epoch (>= 0) must name the current one.
    /// Returns the current epoch, or FENCED_LEADER_EPOCH (older) / UNKNOWN_LEADER_EPOCH (newer).
    pub fn check_leader_epoch(
        &self,
        image: &MetadataImage,
        requested: i32,
    ) -> Result<i32, ErrorCode> {
        let epoch = self.leader_epoch(image);
        match requested {
            r if r < 0 || r == epoch => Ok(epoch),
            r if r > epoch => Err(ErrorCode::UnknownLeaderEpoch),
            _ => Err(ErrorCode::FencedLeaderEpoch),
        }
    }

    /// Current leader epoch of this partition (from the metadata image).
    pub fn leader_epoch(&self, image: &MetadataImage) -> i32 {
        image
            .topic(&self.topic)
            .and_then(|t| t.partitions.get(&self.index))
            .map(|p| p.leader_epoch)
            .unwrap_or(0)
    }
}

/// Wall-clock milliseconds (replication timing; the controller uses its own clock).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
