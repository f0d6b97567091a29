//! The replicated state machine: committed entries replayed into a [`MetadataImage`]
//! (openraft's `RaftStateMachine`). A snapshot is the image serialized, with the log id and
//! membership it covers, kept in the quorum directory as `snapshot` so a restart starts from it
//! and a lagging node is sent it instead of the purged log.
//!
//! Snapshot file: `STRMSNP1`, body length u32 BE, crc32c(body) u32 BE, body = JSON of
//! `{ last_log_id, last_membership, snapshot_id, image }`. The bytes sent to a lagging node are
//! the file's bytes.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{
    AnyError, EntryPayload, LogId, RaftSnapshotBuilder, SnapshotMeta, StorageError, StorageIOError,
    StoredMembership,
};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::log_store::replace_file;
use super::raft::{MetadataRaftConfig, VoterEndpoint};
use super::recent::{CommittedEntry, RecentEntries};
use super::{CommittedBatch, MetadataOffset, MetadataPublisher, QuorumNodeId};
use crate::delta::{MetadataDelta, Touched};
use crate::image::MetadataImage;

type C = MetadataRaftConfig;

const SNAPSHOT_MAGIC: &[u8; 8] = b"STRMSNP2";
const SNAPSHOT_MAGIC_V1: &[u8; 8] = b"STRMSNP1";
const SNAPSHOT_FILE: &str = "snapshot";

/// The latest snapshot (its meta and file bytes), shared with snapshot builders.
type CurrentSnapshot = Arc<Mutex<Option<(SnapshotMeta<QuorumNodeId, VoterEndpoint>, Vec<u8>)>>>;

/// What the local replica has applied, as published to the broker: the offset, the image at
/// it, and what changed since the image last published (so a broker applies the delta).
#[derive(Debug, Clone)]
pub struct Applied {
    pub offset: Option<MetadataOffset>,
    pub image: Arc<MetadataImage>,
    /// What changed since the image at `base`. `None`: the state was replaced wholesale (the
    /// first image, a snapshot loaded or fetched): followers resync from the whole image.
    pub delta: Option<Arc<MetadataDelta>>,
    /// The offset `delta` starts from.
    pub base: Option<MetadataOffset>,
}

impl Applied {
    /// An image replacing whatever was there before (no delta).
    pub fn whole(offset: Option<MetadataOffset>, image: Arc<MetadataImage>) -> Applied {
        Applied {
            offset,
            image,
            delta: None,
            base: None,
        }
    }

    /// The offset and image.
    pub fn pair(&self) -> (Option<MetadataOffset>, Arc<MetadataImage>) {
        (self.offset, Arc::clone(&self.image))
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct SnapshotBody {
    last_log_id: Option<LogId<QuorumNodeId>>,
    last_membership: StoredMembership<QuorumNodeId, VoterEndpoint>,
    snapshot_id: String,
    image: Arc<MetadataImage>,
}

/// The snapshot file's header: what openraft needs and the image's record count.
#[derive(Debug, Serialize, Deserialize)]
struct SnapshotHeader {
    last_log_id: Option<LogId<QuorumNodeId>>,
    last_membership: StoredMembership<QuorumNodeId, VoterEndpoint>,
    snapshot_id: String,
    records_applied: u64,
}

/// Snapshot file, version 2: `STRMSNP2 | u32 length | u32 CRC32C | payload`, payload =
/// `u32 header length | header (JSON) | the image as one binary record batch`
/// ([`MetadataImage::to_records`] in the metadata log's own record format, so the bulk of a
/// snapshot is as compact as the log). Version 1 (`STRMSNP1`, the whole body as JSON) is
/// still read.
fn encode_snapshot(body: &SnapshotBody) -> Vec<u8> {
    let header = serde_json::to_vec(&SnapshotHeader {
        last_log_id: body.last_log_id,
        last_membership: body.last_membership.clone(),
        snapshot_id: body.snapshot_id.clone(),
        records_applied: body.image.records_applied(),
    })
    .expect("snapshot header serializes");
    let records = crate::records::codec::encode_batch(&body.image.to_records());
    let mut payload = Vec::with_capacity(4 + header.len() + records.len());
    payload.extend_from_slice(&(header.len() as u32).to_be_bytes());
    payload.extend_from_slice(&header);
    payload.extend_from_slice(&records);
    let mut bytes = SNAPSHOT_MAGIC.to_vec();
    bytes.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    bytes.extend_from_slice(&crc32c::crc32c(&payload).to_be_bytes());
    bytes.extend_from_slice(&payload);
    bytes
}

fn decode_snapshot(bytes: &[u8]) -> Result<SnapshotBody, String> {
    let v1 = bytes.len() >= 8 && &bytes[..8] == SNAPSHOT_MAGIC_V1;
    if bytes.len() < 16 || !(v1 || &bytes[..8] == SNAPSHOT_MAGIC) {
        return Err("not a Strom metadata snapshot".into());
    }
    let len = u32::from_be_bytes(bytes[8..12].try_into().expect("4 bytes")) as usize;
    let crc = u32::from_be_bytes(bytes[12..16].try_into().expect("4 bytes"));
    let payload = &bytes[16..];
    if payload.len() != len || crc32c::crc32c(payload) != crc {
        return Err("snapshot is truncated or fails its checksum".into());
    }
    if v1 {
        return serde_json::from_slice(payload).map_err(|e| e.to_string());
    }
    if payload.len() < 4 {
        return Err("snapshot header is truncated".into());
    }
    let header_len = u32::from_be_bytes(payload[..4].try_into().expect("4 bytes")) as usize;
    let rest = &payload[4..];
    if header_len > rest.len() {
        return Err("snapshot header is truncated".into());
    }
    let header: SnapshotHeader =
        serde_json::from_slice(&rest[..header_len]).map_err(|e| e.to_string())?;
    let records = crate::records::codec::decode_batch(&rest[header_len..])
        .map_err(|e| format!("snapshot records: {e}"))?;
    Ok(SnapshotBody {
        last_log_id: header.last_log_id,
        last_membership: header.last_membership,
        snapshot_id: header.snapshot_id,
        image: Arc::new(MetadataImage::from_snapshot_records(
            &records,
            header.records_applied,
        )),
    })
}

fn snapshot_err(e: impl std::fmt::Display) -> StorageError<QuorumNodeId> {
    StorageIOError::write_snapshot(None, AnyError::error(e.to_string())).into()
}

/// Makes `bytes` the snapshot file and the current snapshot, unless the current one already
/// covers as much of the log. Builders run in their own tasks while a snapshot sent by the
/// leader may be installed, so writes are serialized by the lock (they share one temporary
/// file) and an older snapshot finishing late never replaces a newer one.
fn store_snapshot(
    current: &CurrentSnapshot,
    dir: &Path,
    meta: &SnapshotMeta<QuorumNodeId, VoterEndpoint>,
    bytes: &[u8],
) -> std::io::Result<()> {
    let mut current = current.lock().expect("snapshot mutex poisoned");
    if let Some((have, _)) = current.as_ref() {
        if have.last_log_id >= meta.last_log_id {
            return Ok(());
        }
    }
    // Durable before openraft may purge the log it covers.
    replace_file(dir, SNAPSHOT_FILE, bytes)?;
    *current = Some((meta.clone(), bytes.to_vec()));
    Ok(())
}

/// The state machine handed to openraft.
pub struct ImageStateMachine {
    dir: PathBuf,
    last_applied: Option<LogId<QuorumNodeId>>,
    membership: StoredMembership<QuorumNodeId, VoterEndpoint>,
    image: Arc<MetadataImage>,
    publisher: Arc<dyn MetadataPublisher>,
    applied: watch::Sender<Applied>,
    /// The recent committed entries observers fetch.
    recent: Arc<RecentEntries>,
    /// The latest snapshot (file bytes and meta), shared with snapshot builders.
    current: CurrentSnapshot,
    snapshots_built: Arc<Mutex<u64>>,
}

impl std::fmt::Debug for ImageStateMachine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImageStateMachine")
            .field("dir", &self.dir)
            .field("last_applied", &self.last_applied)
            .finish_non_exhaustive()
    }
}

impl ImageStateMachine {
    /// Opens the state machine in `dir`, starting from its snapshot if there is one.
    pub fn open(
        dir: &Path,
        publisher: Arc<dyn MetadataPublisher>,
    ) -> std::io::Result<(ImageStateMachine, watch::Receiver<Applied>)> {
        std::fs::create_dir_all(dir)?;
        let (tx, rx) = watch::channel(Applied::whole(None, Arc::new(MetadataImage::empty())));
        let mut sm = ImageStateMachine {
            dir: dir.to_path_buf(),
            last_applied: None,
            membership: StoredMembership::default(),
            image: Arc::new(MetadataImage::empty()),
            publisher,
            applied: tx,
            recent: Arc::default(),
            current: Arc::new(Mutex::new(None)),
            snapshots_built: Arc::new(Mutex::new(0)),
        };
        match std::fs::read(dir.join(SNAPSHOT_FILE)) {
            Ok(bytes) => {
                let body = decode_snapshot(&bytes)
                    .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
                sm.load(body, bytes);
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        Ok((sm, rx))
    }

    /// The recent committed entries this state machine keeps for observers.
    pub fn recent(&self) -> Arc<RecentEntries> {
        Arc::clone(&self.recent)
    }

    /// Replaces the state with a snapshot and tells the publisher.
    fn load(&mut self, body: SnapshotBody, bytes: Vec<u8>) {
        let meta = SnapshotMeta {
            last_log_id: body.last_log_id,
            last_membership: body.last_membership.clone(),
            snapshot_id: body.snapshot_id,
        };
        self.last_applied = body.last_log_id;
        self.membership = body.last_membership;
        self.image = body.image;
        if let Some(log_id) = self.last_applied {
            self.publisher
                .on_snapshot(log_id.index, log_id.leader_id.term, &self.image);
        }
        self.recent.clear();
        self.applied.send_replace(Applied::whole(
            self.last_applied.map(|l| l.index),
            Arc::clone(&self.image),
        ));
        let mut current = self.current.lock().expect("snapshot mutex poisoned");
        if current
            .as_ref()
            .is_none_or(|(have, _)| have.last_log_id <= meta.last_log_id)
        {
            *current = Some((meta, bytes));
        }
    }
}

/// Builds a snapshot of the state as it was when openraft asked for the builder.
#[derive(Debug)]
pub struct ImageSnapshotBuilder {
    dir: PathBuf,
    last_applied: Option<LogId<QuorumNodeId>>,
    membership: StoredMembership<QuorumNodeId, VoterEndpoint>,
    image: Arc<MetadataImage>,
    current: CurrentSnapshot,
    snapshots_built: Arc<Mutex<u64>>,
}

impl RaftSnapshotBuilder<C> for ImageSnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<C>, StorageError<QuorumNodeId>> {
        let n = {
            let mut built = self.snapshots_built.lock().expect("counter mutex poisoned");
            *built += 1;
            *built
        };
        let snapshot_id = match self.last_applied {
            Some(l) => format!("{}-{}-{n}", l.leader_id.term, l.index),
            None => format!("0-0-{n}"),
        };
        let body = SnapshotBody {
            last_log_id: self.last_applied,
            last_membership: self.membership.clone(),
            snapshot_id: snapshot_id.clone(),
            image: Arc::clone(&self.image),
        };
        let bytes = encode_snapshot(&body);
        let meta = SnapshotMeta {
            last_log_id: self.last_applied,
            last_membership: self.membership.clone(),
            snapshot_id,
        };
        store_snapshot(&self.current, &self.dir, &meta, &bytes).map_err(snapshot_err)?;
        Ok(Snapshot {
            meta,
            snapshot: Box::new(bytes),
        })
    }
}

impl RaftStateMachine<C> for ImageStateMachine {
    type SnapshotBuilder = ImageSnapshotBuilder;

    async fn applied_state(
        &mut self,
    ) -> Result<
        (
            Option<LogId<QuorumNodeId>>,
            StoredMembership<QuorumNodeId, VoterEndpoint>,
        ),
        StorageError<QuorumNodeId>,
    > {
        Ok((self.last_applied, self.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<()>, StorageError<QuorumNodeId>>
    where
        I: IntoIterator<Item = openraft::Entry<C>> + Send,
        I::IntoIter: Send,
    {
        let mut responses = Vec::new();
        let base = self.last_applied.map(|l| l.index);
        let base_image = Arc::clone(&self.image);
        let mut touched = Touched::default();
        for entry in entries {
            let records: &[_] = match &entry.payload {
                EntryPayload::Blank => &[],
                EntryPayload::Normal(batch) => {
                    self.image = Arc::new(self.image.apply_tracked(&batch.0, &mut touched));
                    &batch.0
                }
                EntryPayload::Membership(m) => {
                    self.membership = StoredMembership::new(Some(entry.log_id), m.clone());
                    &[]
                }
            };
            self.last_applied = Some(entry.log_id);
            self.publisher.on_batch(CommittedBatch {
                offset: entry.log_id.index,
                epoch: entry.log_id.leader_id.term,
                records,
                image: &self.image,
            });
            self.recent.push(CommittedEntry {
                offset: entry.log_id.index,
                epoch: entry.log_id.leader_id.term,
                records: Arc::new(records.to_vec()),
            });
            responses.push(());
        }
        let delta = touched.finish(&base_image, &self.image);
        self.applied.send_replace(Applied {
            offset: self.last_applied.map(|l| l.index),
            image: Arc::clone(&self.image),
            delta: Some(Arc::new(delta)),
            base,
        });
        Ok(responses)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        ImageSnapshotBuilder {
            dir: self.dir.clone(),
            last_applied: self.last_applied,
            membership: self.membership.clone(),
            image: Arc::clone(&self.image),
            current: Arc::clone(&self.current),
            snapshots_built: Arc::clone(&self.snapshots_built),
        }
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> Result<Box<Vec<u8>>, StorageError<QuorumNodeId>> {
        Ok(Box::default())
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<QuorumNodeId, VoterEndpoint>,
        snapshot: Box<Vec<u8>>,
    ) -> Result<(), StorageError<QuorumNodeId>> {
        let body = decode_snapshot(&snapshot).map_err(snapshot_err)?;
        if body.last_log_id != meta.last_log_id {
            return Err(snapshot_err(format!(
                "snapshot covers {:?} but its meta says {:?}",
                body.last_log_id, meta.last_log_id
            )));
        }
        store_snapshot(&self.current, &self.dir, meta, &snapshot).map_err(snapshot_err)?;
        self.load(body, *snapshot);
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<C>>, StorageError<QuorumNodeId>> {
        let current = self.current.lock().expect("snapshot mutex poisoned");
        Ok(current.as_ref().map(|(meta, bytes)| Snapshot {
            meta: meta.clone(),
            snapshot: Box::new(bytes.clone()),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openraft::{CommittedLeaderId, Entry, Membership};

    struct Quiet;
    impl MetadataPublisher for Quiet {
        fn on_batch(&self, _: CommittedBatch<'_>) {}
        fn on_snapshot(
            &self,
            _: MetadataOffset,
            _: crate::quorum::LeaderEpoch,
            _: &Arc<MetadataImage>,
        ) {
        }
    }

    fn entry(term: u64, index: u64) -> Entry<C> {
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(term, 1), index),
            payload: EntryPayload::Blank,
        }
    }

    fn snapshot_on_disk(dir: &Path) -> Option<LogId<QuorumNodeId>> {
        let bytes = std::fs::read(dir.join(SNAPSHOT_FILE)).unwrap();
        decode_snapshot(&bytes).unwrap().last_log_id
    }

    /// A snapshot built from older state that finishes after a newer one was installed (the
    /// race that stopped a restarted node over TCP: both wrote one temporary file) leaves the
    /// newer snapshot in place, on disk and in memory.
    #[tokio::test]
    async fn an_older_snapshot_finishing_late_never_replaces_a_newer_one() {
        let dir = tempfile::tempdir().unwrap();
        let (mut sm, _) = ImageStateMachine::open(dir.path(), Arc::new(Quiet)).unwrap();
        sm.apply((1..=23).map(|i| entry(1, i))).await.unwrap();
        let mut late_builder = sm.get_snapshot_builder().await;

        // A newer snapshot arrives from the leader, as `install_full_snapshot` hands it over.
        let (mut leader, _leader_dir) = {
            let other = tempfile::tempdir().unwrap();
            let (mut sm2, rx) = ImageStateMachine::open(other.path(), Arc::new(Quiet)).unwrap();
            sm2.membership = StoredMembership::new(
                Some(LogId::new(CommittedLeaderId::new(0, 0), 0)),
                Membership::new(vec![[1].into_iter().collect()], None),
            );
            sm2.apply((1..=26).map(|i| entry(1, i))).await.unwrap();
            (sm2, (rx, other))
        };
        let newer = leader
            .get_snapshot_builder()
            .await
            .build_snapshot()
            .await
            .unwrap();
        sm.install_snapshot(&newer.meta, newer.snapshot)
            .await
            .unwrap();
        assert_eq!(snapshot_on_disk(dir.path()).unwrap().index, 26);

        let older = late_builder.build_snapshot().await.unwrap();
        assert_eq!(older.meta.last_log_id.unwrap().index, 23);
        assert_eq!(snapshot_on_disk(dir.path()).unwrap().index, 26);
        let current = sm.get_current_snapshot().await.unwrap().unwrap();
        assert_eq!(current.meta.last_log_id.unwrap().index, 26);
        assert_eq!(sm.applied_state().await.unwrap().0.unwrap().index, 26);

        // A restart starts from the newer snapshot.
        drop(sm);
        let (sm, rx) = ImageStateMachine::open(dir.path(), Arc::new(Quiet)).unwrap();
        assert_eq!(sm.last_applied.unwrap().index, 26);
        assert_eq!(rx.borrow().offset, Some(26));
    }

    fn sample_body() -> SnapshotBody {
        use crate::records::{ConfigResource, MetadataRecord};
        let topic_id = uuid::Uuid::from_u128(7);
        let records = vec![
            MetadataRecord::Cluster {
                cluster_id: "abc".into(),
            },
            MetadataRecord::RegisterBroker {
                broker_id: 1,
                host: "h".into(),
                port: 9092,
                rack: Some("r1".into()),
                listeners: vec![],
            },
            MetadataRecord::Topic {
                name: "t".into(),
                topic_id,
            },
            MetadataRecord::Partition {
                topic_id,
                partition: 0,
                replicas: vec![1],
                isr: vec![1],
                leader: 1,
                leader_epoch: 3,
                partition_epoch: 4,
                eligible_leader_replicas: vec![],
                last_known_elr: vec![],
                adding_replicas: vec![],
                removing_replicas: vec![],
            },
            MetadataRecord::Config {
                resource: ConfigResource::Topic("t".into()),
                name: "retention.ms".into(),
                value: Some("1000".into()),
            },
        ];
        SnapshotBody {
            last_log_id: Some(LogId::new(CommittedLeaderId::new(2, 1), 40)),
            last_membership: StoredMembership::default(),
            snapshot_id: "s-40".into(),
            image: Arc::new(MetadataImage::replay(&records)),
        }
    }

    #[test]
    fn snapshots_are_binary_records_and_version_1_json_ones_still_load() {
        let body = sample_body();
        let bytes = encode_snapshot(&body);
        assert_eq!(&bytes[..8], SNAPSHOT_MAGIC);
        let back = decode_snapshot(&bytes).unwrap();
        assert_eq!(back.image, body.image);
        assert_eq!(back.last_log_id, body.last_log_id);
        assert_eq!(back.snapshot_id, body.snapshot_id);
        // Version 1, as earlier Strom wrote it: the whole body as JSON.
        let json = serde_json::to_vec(&body).unwrap();
        let mut v1 = SNAPSHOT_MAGIC_V1.to_vec();
        v1.extend_from_slice(&(json.len() as u32).to_be_bytes());
        v1.extend_from_slice(&crc32c::crc32c(&json).to_be_bytes());
        v1.extend_from_slice(&json);
        assert_eq!(decode_snapshot(&v1).unwrap().image, body.image);
        println!(
            "snapshot of a small image: {} bytes binary, {} bytes as version 1 JSON",
            bytes.len(),
            v1.len()
        );
        // Damage is an error, never a panic.
        for cut in 0..bytes.len() {
            assert!(decode_snapshot(&bytes[..cut]).is_err());
        }
        let mut flipped = bytes.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 0xff;
        assert!(decode_snapshot(&flipped).is_err());
    }
}
