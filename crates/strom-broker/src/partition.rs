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
    /// The topic's `min.insync.replicas`: a leader whose ISR is smaller does not advance the
    /// high watermark (KIP-966's strict min ISR, which makes ELR members safe leaders).
    pub min_isr: i32,
}

impl Role {
    pub fn of(p: &PartitionImage, min_isr: i32) -> Role {
        Role {
            leader: p.leader,
            leader_epoch: p.leader_epoch,
            replicas: p.replicas.clone(),
            isr: p.isr.clone(),
            partition_epoch: p.partition_epoch,
            min_isr,
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
    /// The partition epoch of the role the leader had at the follower's last fetch. A
    /// replica joins the ISR only on a fetch made under the current partition epoch: a
    /// replica removed and added back (by reassignments the leader applied as one change)
    /// starts with an empty log, and the offset it fetched at before must not count.
    partition_epoch: i32,
}

impl FollowerState {
    fn unknown(last_caught_up_ms: i64) -> Self {
        FollowerState {
            log_end_offset: -1,
            last_caught_up_ms,
            last_fetch_ms: 0,
            last_fetch_leader_leo: -1,
            partition_epoch: -1,
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
    /// Replicas that ISR change asks to add, until it is committed or refused. The high
    /// watermark counts them as members already (Kafka's maximal ISR, KIP-497): the
    /// controller may commit the change, and even elect one of them, before this leader hears
    /// of it, so nothing may be acknowledged that they do not have.
    isr_joining: Vec<i32>,
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

/// A leader's answer to a follower's fetch.
#[derive(Debug)]
pub struct FollowerFetch {
    /// The follower's log diverges: (epoch, end offset) it must truncate to; no records.
    pub diverging: Option<(i32, i64)>,
    pub slice: Option<strom_storage::FileSlice>,
    pub high_watermark: i64,
    pub log_start_offset: i64,
    /// The follower caught up and may join the ISR.
    pub joins_isr: bool,
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
                    min_isr: 1,
                },
                followers: HashMap::new(),
                high_watermark,
                isr_change_sent_ms: None,
                isr_joining: Vec::new(),
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

    /// This broker stops hosting the partition (deleted, or reassigned away): it leads no
    /// more, and whatever waits on it (acks=all produce, long-poll fetches) is woken to answer
    /// NOT_LEADER_OR_FOLLOWER now rather than at its timeout. An idempotent producer whose
    /// request timed out would bump its epoch and send its records again.
    pub fn stop_hosting(&self) {
        self.state.lock().role.leader = -1;
        self.changed();
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
            // A change in flight carries the old partition epoch: the controller refuses it.
            state.isr_change_sent_ms = None;
            state.isr_joining.clear();
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
                // A replica reassigned away forgets its progress: if it is added back later
                // its log starts empty, and a stale fetch offset must not take it into the ISR.
                state.followers.retain(|r, _| role.replicas.contains(r));
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
    /// be visible: in durable mode only what is fsynced). Never moves back, and stands still
    /// while the ISR is smaller than `min.insync.replicas` (KIP-966: so every replica that
    /// left the ISR then, an ELR member, has everything below the high watermark).
    fn advance_high_watermark(&self, state: &mut ReplicaState) -> bool {
        if (state.role.isr.len() as i64) < i64::from(state.role.min_isr) {
            return false;
        }
        let mut hw = self.log.visible_end_offset();
        let members = state.role.isr.iter().chain(&state.isr_joining);
        for id in members.filter(|id| **id != self.local_id) {
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

    /// Leader: follower `replica` fetched from `fetch_offset` (so has everything below it)
    /// in leader epoch `epoch`. Returns whether the follower, out of the ISR, has caught up
    /// and should join it. A fetch of an older epoch is fenced here, under the same lock as
    /// the role: a replica removed (which starts a new epoch) and added back must not be
    /// counted on the offset its deleted log had reached.
    pub fn record_follower_fetch(
        &self,
        replica: i32,
        epoch: i32,
        fetch_offset: i64,
        now_ms: i64,
    ) -> Result<bool, ErrorCode> {
        let mut state = self.state.lock();
        if state.role.leader != self.local_id {
            return Err(ErrorCode::NotLeaderOrFollower);
        }
        if state.role.leader_epoch != epoch {
            return Err(ErrorCode::FencedLeaderEpoch);
        }
        let leo = self.log.log_end_offset();
        let partition_epoch = state.role.partition_epoch;
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
        f.partition_epoch = partition_epoch;
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

    /// Leader: some ISR member has not caught up for longer than `lag_ms`, so the ISR is due
    /// to shrink. With the controller unreachable it cannot shrink, and acks=all appends
    /// would only wait for the request timeout: produce answers NOT_LEADER_OR_FOLLOWER at
    /// once instead, so clients look for the leader the majority has elected meanwhile.
    pub fn isr_stalled(&self, now_ms: i64, lag_ms: i64) -> bool {
        let state = self.state.lock();
        state.role.leader == self.local_id
            && state.role.isr.iter().any(|id| {
                *id != self.local_id
                    && state
                        .followers
                        .get(id)
                        .is_none_or(|f| now_ms - f.last_caught_up_ms > lag_ms)
            })
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
            let caught_up = state.followers.get(r).is_some_and(|f| {
                f.log_end_offset >= hw
                    && f.log_end_offset >= epoch_start
                    && f.partition_epoch == role.partition_epoch
            });
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
        // A retry joins the joiners of the one it replaces: that one may still commit.
        for r in &isr {
            if !role.isr.contains(r) && !state.isr_joining.contains(r) {
                state.isr_joining.push(*r);
            }
        }
        state.isr_change_sent_ms = Some(now_ms);
        Some((role, isr))
    }

    /// Leader: answers a follower's fetch (Kafka's replica fetch path). First the divergence
    /// check: the follower's last epoch must end here at or after its fetch offset, otherwise
    /// it is told where that epoch ends and must truncate. Then its progress is recorded
    /// (moving the high watermark, maybe making it eligible for the ISR), then records from
    /// `fetch_offset` up to the log end, at most `max_bytes` (at least one batch if `first`).
    #[allow(clippy::too_many_arguments)]
    pub fn serve_follower_fetch(
        &self,
        replica: i32,
        current_leader_epoch: i32,
        fetch_offset: i64,
        last_fetched_epoch: i32,
        max_bytes: usize,
        first: bool,
        now_ms: i64,
    ) -> Result<FollowerFetch, ErrorCode> {
        let epoch = self
            .leader_epoch_if_leader()
            .ok_or(ErrorCode::NotLeaderOrFollower)?;
        if current_leader_epoch >= 0 && current_leader_epoch != epoch {
            return Err(if current_leader_epoch > epoch {
                ErrorCode::UnknownLeaderEpoch
            } else {
                ErrorCode::FencedLeaderEpoch
            });
        }
        if fetch_offset < self.log.log_start_offset() {
            return Err(ErrorCode::OffsetOutOfRange);
        }
        // The divergence check comes before the log-end check, as in Kafka: a follower ahead of
        // this leader (an ELR member with an unacknowledged tail the new leader never got) is
        // told where its epoch ends here and truncates to that, not to the high watermark,
        // which on a leader below min.insync.replicas may stand well below what is committed.
        if last_fetched_epoch >= 0 {
            let (epoch, end) = self.log.end_offset_for_epoch(last_fetched_epoch);
            if epoch >= 0 && (epoch < last_fetched_epoch || end < fetch_offset) {
                return Ok(FollowerFetch {
                    diverging: Some((epoch, end)),
                    slice: None,
                    high_watermark: self.high_watermark(),
                    log_start_offset: self.log.log_start_offset(),
                    joins_isr: false,
                });
            }
        }
        if fetch_offset > self.log.log_end_offset() {
            return Err(ErrorCode::OffsetOutOfRange);
        }
        let joins_isr = self.record_follower_fetch(replica, epoch, fetch_offset, now_ms)?;
        let high_watermark = self.high_watermark();
        let slice = if max_bytes == 0 && !first {
            None
        } else {
            let read = self
                .log
                .read(fetch_offset, max_bytes, None)
                .map_err(|e| crate::errors::log_error_code(&e))?;
            read.slice.filter(|s| first || s.len <= max_bytes)
        };
        Ok(FollowerFetch {
            diverging: None,
            slice,
            high_watermark,
            log_start_offset: self.log.log_start_offset(),
            joins_isr,
        })
    }

    /// Follower: applies the leader's answer to a fetch — truncation at a diverging epoch, or
    /// the records (appended as the leader wrote them), then the leader's log start and high
    /// watermark. An error says why the partition did not advance.
    pub fn apply_fetched(
        &self,
        fetched_in_epoch: i32,
        diverging: Option<(i32, i64)>,
        records: Option<&[u8]>,
        leader_high_watermark: i64,
        leader_log_start: i64,
    ) -> Result<(), String> {
        // The answer to a fetch sent in another leader epoch (or before this replica became
        // leader itself) describes a log that may no longer be the leader's: dropped.
        {
            let state = self.state.lock();
            if state.role.leader == self.local_id || state.role.leader_epoch != fetched_in_epoch {
                return Err("the leader epoch changed since the fetch was sent".into());
            }
        }
        if let Some((epoch, end_offset)) = diverging {
            // Kafka's rule: cut at the smaller of the leader's end for that epoch and this
            // replica's own end for it (its whole log if it knows no such epoch).
            let (own_epoch, own_end) = self.log.end_offset_for_epoch(epoch);
            let cap = if own_epoch >= 0 && own_end >= 0 {
                own_end
            } else {
                self.log.log_end_offset()
            };
            let to = end_offset.min(cap);
            tracing::info!(topic = %self.topic, partition = self.index, to, leader_epoch = epoch, "log diverges from the leader's: truncating");
            self.log
                .truncate_to(to)
                .map_err(|e| format!("truncation failed: {e}"))?;
            self.set_follower_high_watermark(leader_high_watermark);
            return Ok(());
        }
        if let Some(records) = records.filter(|r| !r.is_empty()) {
            self.log
                .append_as_follower(bytes::BytesMut::from(records))
                .map_err(|e| format!("append failed: {e}"))?;
        }
        if leader_log_start > self.log.log_start_offset()
            && leader_log_start <= self.log.log_end_offset()
        {
            if let Err(e) = self.log.delete_records(leader_log_start) {
                tracing::warn!(topic = %self.topic, partition = self.index, error = %e, "could not follow the leader's log start");
            }
        }
        self.set_follower_high_watermark(leader_high_watermark);
        Ok(())
    }

    /// Follower: the leader answered OFFSET_OUT_OF_RANGE. Behind the leader's log start, what
    /// is missing exists nowhere any more: restart empty from it. Otherwise this log is ahead
    /// of the leader's: keep only what the leader committed.
    pub fn realign_out_of_range(
        &self,
        fetched_in_epoch: i32,
        leader_high_watermark: i64,
        leader_log_start: i64,
    ) -> Result<(), String> {
        {
            let state = self.state.lock();
            if state.role.leader == self.local_id || state.role.leader_epoch != fetched_in_epoch {
                return Err("the leader epoch changed since the fetch was sent".into());
            }
        }
        let result = if self.log.log_end_offset() < leader_log_start {
            self.log.reset_to(leader_log_start)
        } else {
            self.log.truncate_to(leader_high_watermark.max(0))
        };
        result.map_err(|e| format!("out of range and could not realign: {e}"))
    }

    /// The controller refused an ISR change: the next check may send another.
    pub fn isr_change_failed(&self) {
        let mut state = self.state.lock();
        state.isr_change_sent_ms = None;
        state.isr_joining.clear();
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use strom_storage::{LogConfig, PartitionLog, SystemClock};

    /// A leader that stops hosting its partition (reassigned away, deleted) wakes what waits
    /// on it and no longer leads, so an acks=all produce waiting there answers
    /// NOT_LEADER_OR_FOLLOWER at once instead of at its timeout (after which an idempotent
    /// producer would bump its epoch and write its records a second time).
    #[test]
    fn a_partition_no_longer_hosted_wakes_its_waiters_and_leads_no_more() {
        let dir = tempfile::tempdir().unwrap();
        let clock: Arc<dyn strom_storage::Clock> = Arc::new(SystemClock);
        let log = PartitionLog::open(dir.path().join("t-0"), LogConfig::default(), clock).unwrap();
        let p = Partition::new("t".into(), Uuid::nil(), 0, log, 1, 0);
        let role = Role {
            leader: 1,
            leader_epoch: 3,
            replicas: vec![1, 2],
            isr: vec![1, 2],
            partition_epoch: 3,
            min_isr: 1,
        };
        p.apply_role(role, now_ms());
        assert_eq!(p.leader_epoch_if_leader(), Some(3));
        let mut changes = p.subscribe();
        changes.mark_unchanged();
        p.stop_hosting();
        assert!(changes.has_changed().unwrap(), "waiters are woken");
        assert_eq!(p.leader_epoch_if_leader(), None);
    }
}
