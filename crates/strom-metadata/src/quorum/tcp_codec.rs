//! The wire format of the quorum's TCP transport, without I/O: bytes in, typed envelopes out.
//!
//! A frame is `length: u32 BE` then `length` bytes of payload; `length` is checked against a
//! hard maximum before anything is allocated. The payload is a fixed header and a body:
//!
//! ```text
//! version: u8 (= 1) | kind: u8 | correlation_id: u64 BE | body
//! ```
//!
//! Bodies are JSON (serde_json, already used for the metadata records; openraft's messages are
//! serde types), except that a snapshot's data travels raw after its JSON header
//! (`json_len: u32 BE | json | data`), so a snapshot costs its own size on the wire, not the
//! ~4x of a JSON byte array. A snapshot is sent whole and must fit in one frame (bounded, not
//! chunked: metadata images are small). Kinds: requests 1-3, their replies 0x81-0x83, and
//! 0xFF for an error the receiver reports instead of a reply.

use openraft::raft::{AppendEntriesResponse, SnapshotResponse, VoteResponse};
use openraft::{SnapshotMeta, Vote};
use serde::{Deserialize, Serialize};

use super::raft::VoterEndpoint;
use super::transport::{QuorumReply, QuorumRpc};
use super::QuorumNodeId;

/// The only envelope version this build speaks.
pub const WIRE_VERSION: u8 = 1;

/// Bytes of the length prefix.
pub const LENGTH_PREFIX_BYTES: usize = 4;

/// Bytes of the envelope header (version, kind, correlation id).
const HEADER_BYTES: usize = 1 + 1 + 8;

const KIND_APPEND_ENTRIES: u8 = 1;
const KIND_VOTE: u8 = 2;
const KIND_SNAPSHOT: u8 = 3;
const KIND_CONTROLLER: u8 = 4;
const KIND_FETCH_METADATA: u8 = 5;
const KIND_CHANGE_VOTERS: u8 = 6;
/// FetchMetadata answered with committed entries when the voter holds them (kind 5 always
/// gets the whole image: observers of earlier builds send it; voters of earlier builds close
/// the connection on kind 7, and the observer then falls back to kind 5).
const KIND_FETCH_METADATA_ENTRIES: u8 = 7;
const KIND_APPEND_ENTRIES_REPLY: u8 = 0x81;
const KIND_VOTE_REPLY: u8 = 0x82;
const KIND_SNAPSHOT_REPLY: u8 = 0x83;
const KIND_CONTROLLER_REPLY: u8 = 0x84;
const KIND_METADATA_REPLY: u8 = 0x85;
const KIND_VOTERS_CHANGED_REPLY: u8 = 0x86;
const KIND_ERROR: u8 = 0xFF;

/// What one frame carries.
#[derive(Debug)]
pub enum Body {
    Request(QuorumRpc),
    Reply(QuorumReply),
    /// The receiver could not serve the request (its Raft refused it, or it is stopping).
    Error(String),
}

/// One decoded frame: a body and the correlation id pairing a reply with its request.
#[derive(Debug)]
pub struct Envelope {
    pub correlation_id: u64,
    pub body: Body,
}

/// Why bytes are not a valid frame. The connection that sent them is closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    #[error("frame of {length} bytes exceeds the maximum of {max}")]
    FrameTooLarge { length: u64, max: u32 },
    #[error("frame of {length} bytes is shorter than the {HEADER_BYTES}-byte header")]
    FrameTooShort { length: usize },
    #[error("unknown envelope version {version} (this node speaks {WIRE_VERSION})")]
    UnknownVersion { version: u8 },
    #[error("unknown message kind {kind:#04x}")]
    UnknownKind { kind: u8 },
    #[error("malformed {kind:#04x} body: {reason}")]
    Malformed { kind: u8, reason: String },
}

/// The JSON header of a snapshot frame (its data follows raw).
#[derive(Serialize, Deserialize)]
struct SnapshotHeader {
    vote: Vote<QuorumNodeId>,
    meta: SnapshotMeta<QuorumNodeId, VoterEndpoint>,
}

/// The payload length announced by a length prefix, if it is within `max_frame_bytes`.
/// "Is a whole frame buffered?" is `buf.len() >= LENGTH_PREFIX_BYTES + frame_len(..)?`.
pub fn frame_len(
    prefix: [u8; LENGTH_PREFIX_BYTES],
    max_frame_bytes: u32,
) -> Result<usize, CodecError> {
    let length = u32::from_be_bytes(prefix);
    if length > max_frame_bytes {
        return Err(CodecError::FrameTooLarge {
            length: u64::from(length),
            max: max_frame_bytes,
        });
    }
    Ok(length as usize)
}

/// Encodes `envelope` as a whole frame (length prefix included), or refuses one that would
/// exceed `max_frame_bytes` (the peer would close the connection on it).
pub fn encode(envelope: &Envelope, max_frame_bytes: u32) -> Result<Vec<u8>, CodecError> {
    let mut out = vec![0; LENGTH_PREFIX_BYTES];
    out.push(WIRE_VERSION);
    let kind = kind_of(&envelope.body);
    out.push(kind);
    out.extend_from_slice(&envelope.correlation_id.to_be_bytes());
    write_body(&mut out, &envelope.body).map_err(|e| CodecError::Malformed {
        kind,
        reason: e.to_string(),
    })?;
    let length = out.len() - LENGTH_PREFIX_BYTES;
    if length > max_frame_bytes as usize {
        return Err(CodecError::FrameTooLarge {
            length: length as u64,
            max: max_frame_bytes,
        });
    }
    out[..LENGTH_PREFIX_BYTES].copy_from_slice(&(length as u32).to_be_bytes());
    Ok(out)
}

fn kind_of(body: &Body) -> u8 {
    match body {
        Body::Request(QuorumRpc::AppendEntries(_)) => KIND_APPEND_ENTRIES,
        Body::Request(QuorumRpc::Vote(_)) => KIND_VOTE,
        Body::Request(QuorumRpc::Snapshot { .. }) => KIND_SNAPSHOT,
        Body::Request(QuorumRpc::Controller(_)) => KIND_CONTROLLER,
        Body::Request(QuorumRpc::FetchMetadata { entries: false, .. }) => KIND_FETCH_METADATA,
        Body::Request(QuorumRpc::FetchMetadata { entries: true, .. }) => {
            KIND_FETCH_METADATA_ENTRIES
        }
        Body::Request(QuorumRpc::ChangeVoters(_)) => KIND_CHANGE_VOTERS,
        Body::Reply(QuorumReply::VotersChanged(_)) => KIND_VOTERS_CHANGED_REPLY,
        Body::Reply(QuorumReply::Metadata(_)) => KIND_METADATA_REPLY,
        Body::Reply(QuorumReply::AppendEntries(_)) => KIND_APPEND_ENTRIES_REPLY,
        Body::Reply(QuorumReply::Vote(_)) => KIND_VOTE_REPLY,
        Body::Reply(QuorumReply::Snapshot(_)) => KIND_SNAPSHOT_REPLY,
        Body::Reply(QuorumReply::Controller(_)) => KIND_CONTROLLER_REPLY,
        Body::Error(_) => KIND_ERROR,
    }
}

fn write_body(out: &mut Vec<u8>, body: &Body) -> serde_json::Result<()> {
    match body {
        Body::Request(QuorumRpc::AppendEntries(r)) => serde_json::to_writer(out, r),
        Body::Request(QuorumRpc::Vote(r)) => serde_json::to_writer(out, r),
        Body::Request(QuorumRpc::Snapshot { vote, meta, data }) => {
            let header = serde_json::to_vec(&SnapshotHeader {
                vote: *vote,
                meta: meta.clone(),
            })?;
            out.extend_from_slice(&(header.len() as u32).to_be_bytes());
            out.extend_from_slice(&header);
            out.extend_from_slice(data);
            Ok(())
        }
        Body::Reply(QuorumReply::AppendEntries(r)) => serde_json::to_writer(out, r),
        Body::Reply(QuorumReply::Vote(r)) => serde_json::to_writer(out, r),
        Body::Reply(QuorumReply::Snapshot(r)) => serde_json::to_writer(out, r),
        Body::Request(QuorumRpc::Controller(op)) => serde_json::to_writer(out, op),
        Body::Reply(QuorumReply::Controller(r)) => serde_json::to_writer(out, r),
        Body::Request(QuorumRpc::FetchMetadata {
            after, max_wait_ms, ..
        }) => serde_json::to_writer(out, &(after, max_wait_ms)),
        Body::Reply(QuorumReply::Metadata(r)) => serde_json::to_writer(out, r),
        Body::Request(QuorumRpc::ChangeVoters(c)) => serde_json::to_writer(out, c),
        Body::Reply(QuorumReply::VotersChanged(r)) => serde_json::to_writer(out, r),
        Body::Error(reason) => serde_json::to_writer(out, reason),
    }
}

/// Decodes one frame's payload (the bytes after the length prefix).
pub fn decode(payload: &[u8]) -> Result<Envelope, CodecError> {
    if payload.len() < HEADER_BYTES {
        return Err(CodecError::FrameTooShort {
            length: payload.len(),
        });
    }
    let version = payload[0];
    if version != WIRE_VERSION {
        return Err(CodecError::UnknownVersion { version });
    }
    let kind = payload[1];
    let mut id = [0; 8];
    id.copy_from_slice(&payload[2..HEADER_BYTES]);
    let body = &payload[HEADER_BYTES..];
    let malformed = |reason: String| CodecError::Malformed { kind, reason };
    let json = |e: serde_json::Error| malformed(e.to_string());
    let body = match kind {
        KIND_APPEND_ENTRIES => Body::Request(QuorumRpc::AppendEntries(
            serde_json::from_slice(body).map_err(json)?,
        )),
        KIND_VOTE => Body::Request(QuorumRpc::Vote(serde_json::from_slice(body).map_err(json)?)),
        KIND_SNAPSHOT => decode_snapshot(body).map_err(malformed)?,
        KIND_APPEND_ENTRIES_REPLY => Body::Reply(QuorumReply::AppendEntries(
            serde_json::from_slice::<AppendEntriesResponse<QuorumNodeId>>(body).map_err(json)?,
        )),
        KIND_VOTE_REPLY => Body::Reply(QuorumReply::Vote(
            serde_json::from_slice::<VoteResponse<QuorumNodeId>>(body).map_err(json)?,
        )),
        KIND_SNAPSHOT_REPLY => Body::Reply(QuorumReply::Snapshot(
            serde_json::from_slice::<SnapshotResponse<QuorumNodeId>>(body).map_err(json)?,
        )),
        KIND_CONTROLLER => Body::Request(QuorumRpc::Controller(
            serde_json::from_slice(body).map_err(json)?,
        )),
        KIND_FETCH_METADATA | KIND_FETCH_METADATA_ENTRIES => {
            let (after, max_wait_ms) = serde_json::from_slice(body).map_err(json)?;
            Body::Request(QuorumRpc::FetchMetadata {
                after,
                max_wait_ms,
                entries: kind == KIND_FETCH_METADATA_ENTRIES,
            })
        }
        KIND_METADATA_REPLY => Body::Reply(QuorumReply::Metadata(
            serde_json::from_slice(body).map_err(json)?,
        )),
        KIND_CONTROLLER_REPLY => Body::Reply(QuorumReply::Controller(
            serde_json::from_slice(body).map_err(json)?,
        )),
        KIND_CHANGE_VOTERS => Body::Request(QuorumRpc::ChangeVoters(
            serde_json::from_slice(body).map_err(json)?,
        )),
        KIND_VOTERS_CHANGED_REPLY => Body::Reply(QuorumReply::VotersChanged(
            serde_json::from_slice(body).map_err(json)?,
        )),
        KIND_ERROR => Body::Error(serde_json::from_slice(body).map_err(json)?),
        kind => return Err(CodecError::UnknownKind { kind }),
    };
    Ok(Envelope {
        correlation_id: u64::from_be_bytes(id),
        body,
    })
}

fn decode_snapshot(body: &[u8]) -> Result<Body, String> {
    let Some((len, rest)) = body.split_first_chunk::<4>() else {
        return Err("no snapshot header length".into());
    };
    let len = u32::from_be_bytes(*len) as usize;
    if len > rest.len() {
        return Err(format!(
            "snapshot header of {len} bytes past the frame's end"
        ));
    }
    let (header, data) = rest.split_at(len);
    let header: SnapshotHeader = serde_json::from_slice(header).map_err(|e| e.to_string())?;
    Ok(Body::Request(QuorumRpc::Snapshot {
        vote: header.vote,
        meta: header.meta,
        data: data.to_vec(),
    }))
}

#[cfg(test)]
mod tests {
    use openraft::raft::{AppendEntriesRequest, VoteRequest};
    use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId, StoredMembership};
    use proptest::prelude::*;

    use super::*;
    use crate::quorum::raft::MetadataBatch;
    use crate::records::MetadataRecord;

    const MAX: u32 = 1024 * 1024;

    fn log_id(term: u64, index: u64) -> LogId<QuorumNodeId> {
        LogId::new(CommittedLeaderId::new(term, 1), index)
    }

    /// Encodes, checks the length prefix, decodes, and compares the debug forms (openraft's
    /// messages are not all `PartialEq`).
    fn round_trip(body: Body) {
        let before = format!("{body:?}");
        let frame = encode(
            &Envelope {
                correlation_id: 42,
                body,
            },
            MAX,
        )
        .unwrap();
        let (prefix, payload) = frame.split_first_chunk::<4>().unwrap();
        assert_eq!(frame_len(*prefix, MAX).unwrap(), payload.len());
        let decoded = decode(payload).unwrap();
        assert_eq!(decoded.correlation_id, 42);
        assert_eq!(format!("{:?}", decoded.body), before);
    }

    #[test]
    fn every_kind_round_trips() {
        let record = MetadataRecord::RegisterBroker {
            broker_id: 7,
            host: "h".into(),
            port: 9092,
            rack: Some("r1".into()),
            listeners: vec![],
        };
        round_trip(Body::Request(QuorumRpc::AppendEntries(
            AppendEntriesRequest {
                vote: Vote::new_committed(3, 1),
                prev_log_id: Some(log_id(2, 9)),
                entries: vec![Entry {
                    log_id: log_id(3, 10),
                    payload: EntryPayload::Normal(MetadataBatch(vec![record])),
                }],
                leader_commit: Some(log_id(2, 9)),
            },
        )));
        round_trip(Body::Request(QuorumRpc::Vote(VoteRequest::new(
            Vote::new(4, 2),
            Some(log_id(3, 10)),
        ))));
        round_trip(Body::Request(QuorumRpc::Snapshot {
            vote: Vote::new_committed(3, 1),
            meta: SnapshotMeta {
                last_log_id: Some(log_id(3, 10)),
                last_membership: StoredMembership::default(),
                snapshot_id: "3-10".into(),
            },
            data: (0..=255).collect(),
        }));
        round_trip(Body::Reply(QuorumReply::AppendEntries(
            AppendEntriesResponse::Success,
        )));
        round_trip(Body::Reply(QuorumReply::Vote(VoteResponse::new(
            Vote::new(4, 2),
            None,
            true,
        ))));
        round_trip(Body::Reply(QuorumReply::Snapshot(SnapshotResponse::new(
            Vote::new_committed(3, 1),
        ))));
        round_trip(Body::Request(QuorumRpc::ChangeVoters(
            crate::quorum::VoterChange::Add {
                node_id: 4,
                directory_id: Some("pT4rQbWzQx2Yc0m1vJ8bAg".into()),
                endpoint: "c4.example:9093".into(),
                timeout_ms: 30_000,
            },
        )));
        round_trip(Body::Reply(QuorumReply::VotersChanged(Err(
            crate::quorum::VoterChangeError::DuplicateVoter { node_id: 4 },
        ))));
        round_trip(Body::Error("shutting down".into()));
    }

    /// Kind 5 (whole image, as earlier builds send and expect) and kind 7 (entries) carry the
    /// same body; a reply with entries decodes, and a reply without the field (an earlier
    /// voter's) decodes with none.
    #[test]
    fn fetch_metadata_kinds_stay_compatible() {
        for entries in [false, true] {
            let rpc = QuorumRpc::FetchMetadata {
                after: Some(41),
                max_wait_ms: 1000,
                entries,
            };
            let body = Body::Request(rpc);
            let frame = encode(
                &Envelope {
                    correlation_id: 1,
                    body,
                },
                MAX,
            )
            .unwrap();
            let kind = if entries {
                KIND_FETCH_METADATA_ENTRIES
            } else {
                KIND_FETCH_METADATA
            };
            assert_eq!(frame[5], kind);
            assert_eq!(&frame[14..], b"[41,1000]", "the body earlier builds read");
            round_trip(Body::Request(QuorumRpc::FetchMetadata {
                after: Some(41),
                max_wait_ms: 1000,
                entries,
            }));
        }
        let update = crate::quorum::transport::MetadataUpdate {
            leader: Some(1),
            epoch: 3,
            offset: Some(43),
            image: None,
            entries: vec![crate::quorum::recent::CommittedEntry {
                offset: 43,
                epoch: 3,
                records: std::sync::Arc::new(vec![MetadataRecord::FenceBroker { broker_id: 2 }]),
            }],
            members: Default::default(),
        };
        round_trip(Body::Reply(QuorumReply::Metadata(update)));
        let earlier = br#"{"leader":1,"epoch":3,"offset":43,"image":null}"#;
        let mut payload = vec![WIRE_VERSION, KIND_METADATA_REPLY, 0, 0, 0, 0, 0, 0, 0, 1];
        payload.extend_from_slice(earlier);
        match decode(&payload).unwrap().body {
            Body::Reply(QuorumReply::Metadata(u)) => {
                assert!(u.entries.is_empty() && u.image.is_none());
                assert_eq!(u.offset, Some(43));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn snapshot_data_travels_raw() {
        let data = vec![0xAB; 10_000];
        let body = Body::Request(QuorumRpc::Snapshot {
            vote: Vote::new_committed(1, 1),
            meta: SnapshotMeta {
                last_log_id: None,
                last_membership: StoredMembership::default(),
                snapshot_id: "s".into(),
            },
            data,
        });
        let frame = encode(
            &Envelope {
                correlation_id: 1,
                body,
            },
            MAX,
        )
        .unwrap();
        assert!(
            frame.len() < 10_000 + 1_000,
            "{} bytes on the wire",
            frame.len()
        );
    }

    #[test]
    fn limits_and_unknown_input_are_errors() {
        assert_eq!(
            frame_len((MAX + 1).to_be_bytes(), MAX),
            Err(CodecError::FrameTooLarge {
                length: u64::from(MAX) + 1,
                max: MAX
            })
        );
        assert_eq!(frame_len(MAX.to_be_bytes(), MAX), Ok(MAX as usize));
        assert_eq!(
            decode(&[1, 1, 0]).unwrap_err(),
            CodecError::FrameTooShort { length: 3 }
        );
        assert_eq!(
            decode(&[2, 1, 0, 0, 0, 0, 0, 0, 0, 0]).unwrap_err(),
            CodecError::UnknownVersion { version: 2 }
        );
        assert_eq!(
            decode(&[1, 0x42, 0, 0, 0, 0, 0, 0, 0, 0]).unwrap_err(),
            CodecError::UnknownKind { kind: 0x42 }
        );
        // A snapshot header length past the end of the frame.
        let truncated = [1, KIND_SNAPSHOT, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, b'{'];
        assert!(matches!(
            decode(&truncated),
            Err(CodecError::Malformed {
                kind: KIND_SNAPSHOT,
                ..
            })
        ));
        // A frame this side would refuse is not sent either.
        let big = Body::Error("x".repeat(100));
        assert!(matches!(
            encode(
                &Envelope {
                    correlation_id: 0,
                    body: big
                },
                64
            ),
            Err(CodecError::FrameTooLarge { max: 64, .. })
        ));
    }

    proptest! {
        #[test]
        fn arbitrary_payloads_decode_or_fail_without_panicking(
            kind in prop_oneof![Just(KIND_APPEND_ENTRIES), Just(KIND_VOTE), Just(KIND_SNAPSHOT),
                Just(KIND_APPEND_ENTRIES_REPLY), Just(KIND_VOTE_REPLY), Just(KIND_SNAPSHOT_REPLY),
                Just(KIND_ERROR), any::<u8>()],
            body in proptest::collection::vec(any::<u8>(), 0..256),
        ) {
            let mut payload = vec![WIRE_VERSION, kind, 0, 0, 0, 0, 0, 0, 0, 9];
            payload.extend_from_slice(&body);
            if let Ok(envelope) = decode(&payload) {
                prop_assert_eq!(envelope.correlation_id, 9);
            }
        }
    }
}
