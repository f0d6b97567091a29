//! [`TcpTransport`] against hand-written peers on loopback: replies are matched to requests by
//! correlation id even out of order, a silent peer times out, a closed port is unreachable, and
//! a peer that drops the connection mid-request fails the request instead of hanging it.

use std::collections::BTreeMap;
use std::time::Duration;

use openraft::raft::{VoteRequest, VoteResponse};
use openraft::Vote;
use strom_metadata::quorum::tcp_codec::{decode, encode, frame_len, Body, Envelope};
use strom_metadata::quorum::tcp_transport::{TcpTransport, TcpTransportConfig};
use strom_metadata::quorum::transport::{QuorumReply, QuorumRpc, QuorumTransport, TransportError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const MAX: u32 = 1024 * 1024;

fn config() -> TcpTransportConfig {
    TcpTransportConfig {
        request_timeout: Duration::from_millis(300),
        reconnect_backoff: Duration::from_secs(5),
        ..TcpTransportConfig::default()
    }
}

fn vote(term: u64) -> QuorumRpc {
    QuorumRpc::Vote(VoteRequest::new(Vote::new(term, 1), None))
}

async fn read_request(stream: &mut TcpStream) -> (u64, u64) {
    let mut prefix = [0; 4];
    stream.read_exact(&mut prefix).await.unwrap();
    let mut payload = vec![0; frame_len(prefix, MAX).unwrap()];
    stream.read_exact(&mut payload).await.unwrap();
    match decode(&payload).unwrap() {
        Envelope {
            correlation_id,
            body: Body::Request(QuorumRpc::Vote(v)),
        } => (correlation_id, v.vote.leader_id().get_term()),
        other => panic!("expected a vote request, got {other:?}"),
    }
}

/// A vote reply whose vote names `term`, so the test can tell which request it answers.
async fn reply(stream: &mut TcpStream, correlation_id: u64, term: u64) {
    let body = Body::Reply(QuorumReply::Vote(VoteResponse::new(
        Vote::new(term, 2),
        None,
        false,
    )));
    let frame = encode(
        &Envelope {
            correlation_id,
            body,
        },
        MAX,
    )
    .unwrap();
    stream.write_all(&frame).await.unwrap();
}

fn transport_to(addr: String) -> TcpTransport {
    TcpTransport::new(BTreeMap::from([(2, addr)]), config())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_out_of_order_reach_their_own_requests() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let transport = transport_to(listener.local_addr().unwrap().to_string());
    let peer = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let first = read_request(&mut stream).await;
        let second = read_request(&mut stream).await;
        // Answer the later request first, each with its own term.
        reply(&mut stream, second.0, second.1).await;
        reply(&mut stream, first.0, first.1).await;
        // Keep the connection open until the client is done.
        let mut rest = Vec::new();
        let _ = stream.read_to_end(&mut rest).await;
    });
    let (a, b) = tokio::join!(transport.send(1, 2, vote(5)), transport.send(1, 2, vote(6)));
    let term = |r: Result<QuorumReply, TransportError>| match r.unwrap() {
        QuorumReply::Vote(v) => v.vote.leader_id().get_term(),
        other => panic!("expected a vote reply, got {other:?}"),
    };
    assert_eq!(term(a), 5);
    assert_eq!(term(b), 6);
    drop(transport);
    peer.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_peer_times_out() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let transport = transport_to(listener.local_addr().unwrap().to_string());
    let peer = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        read_request(&mut stream).await;
        let mut rest = Vec::new();
        let _ = stream.read_to_end(&mut rest).await;
    });
    let err = transport.send(1, 2, vote(1)).await.unwrap_err();
    assert_eq!(
        err,
        TransportError::Timeout {
            target: 2,
            after: Duration::from_millis(300)
        }
    );
    drop(transport);
    peer.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_port_is_unreachable_and_is_not_redialled_during_backoff() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let transport = transport_to(addr.to_string());
    let unreachable = TransportError::Unreachable { target: 2 };
    assert_eq!(
        transport.send(1, 2, vote(1)).await.unwrap_err(),
        unreachable
    );
    // The port is open again, but the 5 s backoff after the failed dial is not over.
    let listener = TcpListener::bind(addr).await.unwrap();
    assert_eq!(
        transport.send(1, 2, vote(1)).await.unwrap_err(),
        unreachable
    );
    let accepted = tokio::time::timeout(Duration::from_millis(200), listener.accept()).await;
    assert!(accepted.is_err(), "no dial during the backoff");
    // A node that is not a peer is unreachable too.
    let err = transport.send(1, 9, vote(1)).await.unwrap_err();
    assert_eq!(err, TransportError::Unreachable { target: 9 });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_dropped_mid_request_fails_it_and_the_next_one_reconnects() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let transport = transport_to(listener.local_addr().unwrap().to_string());
    let peer = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        read_request(&mut stream).await;
        drop(stream);
        let (mut stream, _) = listener.accept().await.unwrap();
        let (id, term) = read_request(&mut stream).await;
        reply(&mut stream, id, term).await;
        let mut rest = Vec::new();
        let _ = stream.read_to_end(&mut rest).await;
    });
    let err = transport.send(1, 2, vote(1)).await.unwrap_err();
    assert_eq!(err, TransportError::Unreachable { target: 2 });
    let reply = transport.send(1, 2, vote(2)).await.unwrap();
    assert!(matches!(reply, QuorumReply::Vote(v) if v.vote.leader_id().get_term() == 2));
    drop(transport);
    peer.await.unwrap();
}
