//! Generic membership of a classic group (JoinGroup / SyncGroup / Heartbeat / LeaveGroup)
//! for protocols other than the consumer's: the caller names the protocol type (`connect`,
//! ...), offers its protocols with their metadata bytes, and — as leader — hands out the
//! assignment bytes. A background heartbeat keeps the member alive and notices a rebalance
//! (REBALANCE_IN_PROGRESS and friends), which `rebalance_needed` / `rebalance_notified` report.
//! It shares the `Client`'s connections and coordinator lookup with everything else.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use strom_protocol::kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use strom_protocol::kafka_protocol::messages::leave_group_request::MemberIdentity;
use strom_protocol::kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use strom_protocol::kafka_protocol::messages::{
    ApiKey, HeartbeatRequest, JoinGroupRequest, LeaveGroupRequest, SyncGroupRequest,
};
use strom_protocol::ErrorCode;
use tokio::sync::Notify;

use crate::client::Client;
use crate::config::ClientConfig;
use crate::error::{Error, Result};
use crate::util::{group_id, sb};

/// How a member joins its group.
#[derive(Debug, Clone)]
pub struct GroupMemberConfig {
    pub group_id: String,
    /// The protocol type every member must share (`connect` for Connect workers).
    pub protocol_type: String,
    /// `session.timeout.ms`: without a heartbeat for this long the member is removed.
    pub session_timeout: Duration,
    /// `rebalance.timeout.ms`: how long the coordinator waits for members to rejoin.
    pub rebalance_timeout: Duration,
    /// `heartbeat.interval.ms`.
    pub heartbeat_interval: Duration,
    /// `group.instance.id` (static membership), if any.
    pub group_instance_id: Option<String>,
}

impl GroupMemberConfig {
    /// Kafka's defaults: session 10 s, rebalance 60 s, heartbeat 3 s.
    pub fn new(group_id: &str, protocol_type: &str) -> GroupMemberConfig {
        GroupMemberConfig {
            group_id: group_id.to_owned(),
            protocol_type: protocol_type.to_owned(),
            session_timeout: Duration::from_secs(10),
            rebalance_timeout: Duration::from_secs(60),
            heartbeat_interval: Duration::from_secs(3),
            group_instance_id: None,
        }
    }
}

/// One member as the JoinGroup answer lists it (only the leader gets the list).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinedMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub metadata: Bytes,
}

/// The outcome of a JoinGroup round: this member's generation, the chosen protocol, and, for
/// the leader, every member with its metadata for the chosen protocol.
#[derive(Debug, Clone)]
pub struct Joined {
    pub generation_id: i32,
    pub member_id: String,
    pub leader_id: String,
    pub protocol: Option<String>,
    pub members: Vec<JoinedMember>,
}

impl Joined {
    pub fn is_leader(&self) -> bool {
        self.member_id == self.leader_id
    }
}

#[derive(Debug, Clone)]
struct Generation {
    generation_id: i32,
    member_id: String,
}

impl Default for Generation {
    fn default() -> Self {
        Generation {
            generation_id: -1,
            member_id: String::new(),
        }
    }
}

/// A member of a classic group with a caller-defined protocol.
#[derive(Debug)]
pub struct GroupMember {
    client: Client,
    config: GroupMemberConfig,
    generation: Arc<Mutex<Generation>>,
    rejoin: Arc<AtomicBool>,
    notify: Arc<Notify>,
    heartbeat: Option<tokio::task::JoinHandle<()>>,
}

impl GroupMember {
    /// Connects a client of its own for the member.
    pub async fn connect(client: ClientConfig, config: GroupMemberConfig) -> Result<GroupMember> {
        Ok(GroupMember::with_client(
            Client::connect(client).await?,
            config,
        ))
    }

    /// A member on an existing client (its connections and coordinator cache are shared).
    pub fn with_client(client: Client, config: GroupMemberConfig) -> GroupMember {
        GroupMember {
            client,
            config,
            generation: Arc::new(Mutex::new(Generation::default())),
            rejoin: Arc::new(AtomicBool::new(true)),
            notify: Arc::new(Notify::new()),
            heartbeat: None,
        }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn config(&self) -> &GroupMemberConfig {
        &self.config
    }

    /// (generation id, member id) of the last successful join (-1 and "" before).
    pub fn generation(&self) -> (i32, String) {
        let g = self.lock();
        (g.generation_id, g.member_id.clone())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Generation> {
        self.generation.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// True once the heartbeat learned the group is rebalancing (or this member was
    /// removed): the caller should give up its assignment and `join` again.
    pub fn rebalance_needed(&self) -> bool {
        self.rejoin.load(Ordering::Acquire)
    }

    /// Asks for a rejoin on the caller's own account (e.g. its metadata changed).
    pub fn request_rejoin(&self) {
        self.rejoin.store(true, Ordering::Release);
        self.notify.notify_waiters();
    }

    /// Completes when a rebalance is needed (at once if it already is).
    pub async fn rebalance_notified(&self) {
        loop {
            let wait = self.notify.notified();
            if self.rebalance_needed() {
                return;
            }
            wait.await;
        }
    }

    /// JoinGroup with `protocols` (name, metadata) in preference order. Stops the heartbeat
    /// until `sync` succeeds; retries member-id and generation errors itself.
    pub async fn join(&mut self, protocols: &[(String, Bytes)]) -> Result<Joined> {
        self.stop_heartbeat();
        let group = self.config.group_id.clone();
        let mut attempts = 0u32;
        loop {
            attempts += 1;
            let node = match self.client.coordinator(&group).await {
                Ok(n) => n,
                Err(e) if e.is_retriable() && attempts < 50 => {
                    tokio::time::sleep(self.client.config().backoff(attempts)).await;
                    continue;
                }
                Err(e) => return Err(e),
            };
            let member_id = self.lock().member_id.clone();
            let cfg = &self.config;
            let resp = self
                .client
                .send(Some(node), ApiKey::JoinGroup, |_| {
                    let mut req = JoinGroupRequest::default();
                    req.group_id = group_id(&group);
                    req.session_timeout_ms = cfg.session_timeout.as_millis() as i32;
                    req.rebalance_timeout_ms = cfg.rebalance_timeout.as_millis() as i32;
                    req.member_id = sb(&member_id);
                    req.group_instance_id = cfg.group_instance_id.as_deref().map(sb);
                    req.protocol_type = sb(&cfg.protocol_type);
                    req.reason = None;
                    req.protocols = protocols
                        .iter()
                        .map(|(name, metadata)| {
                            let mut p = JoinGroupRequestProtocol::default();
                            p.name = sb(name);
                            p.metadata = metadata.clone();
                            p
                        })
                        .collect();
                    req
                })
                .await;
            let resp = match self.client.coordinator_result(&group, resp) {
                Ok(r) => r,
                Err(e) if e.is_retriable() && attempts < 50 => {
                    tokio::time::sleep(self.client.config().backoff(attempts)).await;
                    continue;
                }
                Err(e) => return Err(e),
            };
            match ErrorCode::try_from_code(resp.error_code) {
                None => {}
                Some(ErrorCode::MemberIdRequired) => {
                    self.lock().member_id = resp.member_id.to_string();
                    continue;
                }
                Some(ErrorCode::UnknownMemberId | ErrorCode::IllegalGeneration) => {
                    *self.lock() = Generation::default();
                    continue;
                }
                Some(
                    code @ (ErrorCode::NotCoordinator
                    | ErrorCode::CoordinatorNotAvailable
                    | ErrorCode::CoordinatorLoadInProgress
                    | ErrorCode::RebalanceInProgress),
                ) if attempts < 50 => {
                    tracing::debug!("JoinGroup '{group}': {code:?}; retrying");
                    self.client.invalidate_coordinator(&group);
                    tokio::time::sleep(self.client.config().backoff(attempts)).await;
                    continue;
                }
                Some(code) => {
                    return Err(Error::kafka(code, format!("JoinGroup '{group}'")));
                }
            }
            let joined = Joined {
                generation_id: resp.generation_id,
                member_id: resp.member_id.to_string(),
                leader_id: resp.leader.to_string(),
                protocol: resp.protocol_name.as_ref().map(|p| p.to_string()),
                members: resp
                    .members
                    .iter()
                    .map(|m| JoinedMember {
                        member_id: m.member_id.to_string(),
                        group_instance_id: m.group_instance_id.as_ref().map(|i| i.to_string()),
                        metadata: m.metadata.clone(),
                    })
                    .collect(),
            };
            *self.lock() = Generation {
                generation_id: joined.generation_id,
                member_id: joined.member_id.clone(),
            };
            return Ok(joined);
        }
    }

    /// SyncGroup for the generation `joined` describes: the leader passes every member's
    /// assignment, the others an empty list. `Ok(None)` means the group started another
    /// rebalance meanwhile (join again); `Ok(Some(bytes))` is this member's assignment, and
    /// the heartbeat runs from then on.
    pub async fn sync(
        &mut self,
        joined: &Joined,
        assignments: Vec<(String, Bytes)>,
    ) -> Result<Option<Bytes>> {
        let group = self.config.group_id.clone();
        let node = self.client.coordinator(&group).await?;
        let cfg = &self.config;
        let resp = self
            .client
            .send(Some(node), ApiKey::SyncGroup, |_| {
                let mut req = SyncGroupRequest::default();
                req.group_id = group_id(&group);
                req.generation_id = joined.generation_id;
                req.member_id = sb(&joined.member_id);
                req.group_instance_id = cfg.group_instance_id.as_deref().map(sb);
                req.protocol_type = Some(sb(&cfg.protocol_type));
                req.protocol_name = joined.protocol.as_deref().map(sb);
                req.assignments = assignments
                    .iter()
                    .map(|(member, bytes)| {
                        let mut a = SyncGroupRequestAssignment::default();
                        a.member_id = sb(member);
                        a.assignment = bytes.clone();
                        a
                    })
                    .collect();
                req
            })
            .await;
        let resp = match self.client.coordinator_result(&group, resp) {
            Ok(r) => r,
            Err(e) if e.is_retriable() => return Ok(None),
            Err(e) => return Err(e),
        };
        match ErrorCode::try_from_code(resp.error_code) {
            None => {}
            Some(ErrorCode::RebalanceInProgress) => return Ok(None),
            Some(ErrorCode::UnknownMemberId | ErrorCode::IllegalGeneration) => {
                *self.lock() = Generation::default();
                return Ok(None);
            }
            Some(ErrorCode::NotCoordinator | ErrorCode::CoordinatorNotAvailable) => {
                self.client.invalidate_coordinator(&group);
                return Ok(None);
            }
            Some(code) => return Err(Error::kafka(code, format!("SyncGroup '{group}'"))),
        }
        self.rejoin.store(false, Ordering::Release);
        self.start_heartbeat();
        Ok(Some(resp.assignment))
    }

    fn start_heartbeat(&mut self) {
        self.stop_heartbeat();
        let client = self.client.clone();
        let group = self.config.group_id.clone();
        let instance = self.config.group_instance_id.clone();
        let interval = self.config.heartbeat_interval;
        let session = self.config.session_timeout;
        let generation = self.generation.clone();
        let rejoin = self.rejoin.clone();
        let notify = self.notify.clone();
        self.heartbeat = Some(tokio::spawn(async move {
            let mut last_ok = tokio::time::Instant::now();
            loop {
                tokio::time::sleep(interval).await;
                let g = generation.lock().unwrap_or_else(|e| e.into_inner()).clone();
                let r = async {
                    let node = client.coordinator(&group).await?;
                    client
                        .send(Some(node), ApiKey::Heartbeat, |_| {
                            let mut req = HeartbeatRequest::default();
                            req.group_id = group_id(&group);
                            req.generation_id = g.generation_id;
                            req.member_id = sb(&g.member_id);
                            req.group_instance_id = instance.as_deref().map(sb);
                            req
                        })
                        .await
                }
                .await;
                let outcome = r.map(|resp| ErrorCode::try_from_code(resp.error_code));
                match outcome {
                    Ok(None) => last_ok = tokio::time::Instant::now(),
                    Ok(Some(ErrorCode::NotCoordinator | ErrorCode::CoordinatorNotAvailable))
                    | Err(_) => {
                        client.invalidate_coordinator(&group);
                        // Unheard for a whole session: the coordinator has dropped us.
                        if last_ok.elapsed() < session {
                            continue;
                        }
                        let mut g = generation.lock().unwrap_or_else(|e| e.into_inner());
                        *g = Generation::default();
                        drop(g);
                        rejoin.store(true, Ordering::Release);
                        notify.notify_waiters();
                        return;
                    }
                    Ok(Some(code)) => {
                        if matches!(
                            code,
                            ErrorCode::UnknownMemberId | ErrorCode::FencedInstanceId
                        ) {
                            let mut g = generation.lock().unwrap_or_else(|e| e.into_inner());
                            *g = Generation::default();
                        }
                        // REBALANCE_IN_PROGRESS, ILLEGAL_GENERATION, ...: the caller rejoins.
                        rejoin.store(true, Ordering::Release);
                        notify.notify_waiters();
                        return;
                    }
                }
            }
        }));
    }

    fn stop_heartbeat(&mut self) {
        if let Some(h) = self.heartbeat.take() {
            h.abort();
        }
    }

    /// LeaveGroup, so the group rebalances at once instead of after the session timeout.
    pub async fn leave(&mut self) -> Result<()> {
        self.stop_heartbeat();
        let g = self.lock().clone();
        if g.member_id.is_empty() {
            return Ok(());
        }
        let group = self.config.group_id.clone();
        let node = self.client.coordinator(&group).await?;
        let conn = self.client.connection_for(Some(node)).await?;
        let version = conn.version(ApiKey::LeaveGroup)?;
        let mut req = LeaveGroupRequest::default();
        req.group_id = group_id(&group);
        if version >= 3 {
            let mut m = MemberIdentity::default();
            m.member_id = sb(&g.member_id);
            m.group_instance_id = self.config.group_instance_id.as_deref().map(sb);
            m.reason = None;
            req.members = vec![m];
        } else {
            req.member_id = sb(&g.member_id);
        }
        let resp = conn.send(&req, version).await?;
        *self.lock() = Generation::default();
        self.rejoin.store(true, Ordering::Release);
        Error::check(resp.error_code, || format!("LeaveGroup '{group}'"))
    }
}

impl Drop for GroupMember {
    fn drop(&mut self) {
        self.stop_heartbeat();
    }
}
