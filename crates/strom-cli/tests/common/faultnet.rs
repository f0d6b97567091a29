//! A fault-injecting network between cluster nodes: every node reaches every other node's
//! controller and inter-broker listeners through a TCP proxy of its own, one per directed
//! link, so the test can cut any link in either direction while clients keep reaching every
//! node directly. A cut link stalls as a real partition does: bytes stop flowing both ways
//! and new connections are accepted but not carried; nothing is dropped or reset, so after
//! healing the streams carry on (as TCP does once retransmissions get through) unless an
//! end gave up on them first.
//!
//! Each node gets it through plain Kafka settings (see [`FaultNet::node_lines`]): its own
//! `controller.quorum.voters` (the other voters at its proxies), one broker listener `R<i>`
//! per peer `i` advertised at the proxy `i -> node`, and `inter.broker.listener.name=R<node>`,
//! so its replica fetches and transaction markers to a leader go through its own link.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

/// How often a stalled pump looks again, and how long a read waits before it does.
const POLL: Duration = Duration::from_millis(20);

/// One directed link `from -> to`: its two proxies (controller and inter-broker traffic).
struct Link {
    cut: Arc<AtomicBool>,
    controller_proxy: u16,
    broker_proxy: u16,
}

/// The proxies of a cluster of nodes `1..=n` and the real ports behind them.
pub struct FaultNet {
    links: BTreeMap<(i32, i32), Link>,
    /// node -> its CONTROLLER listener's port.
    controller_ports: BTreeMap<i32, u16>,
    /// (node, peer) -> the real port of node's listener `R<peer>`.
    replication_ports: BTreeMap<(i32, i32), u16>,
    stop: Arc<AtomicBool>,
}

impl FaultNet {
    /// Proxies for nodes `1..=n`, whose CONTROLLER listeners are on `controller_ports`.
    pub fn new(controller_ports: BTreeMap<i32, u16>) -> FaultNet {
        let ids: Vec<i32> = controller_ports.keys().copied().collect();
        let stop = Arc::new(AtomicBool::new(false));
        let mut replication_ports = BTreeMap::new();
        for &node in &ids {
            for &peer in &ids {
                replication_ports.insert((node, peer), low_port().1);
            }
        }
        let mut links = BTreeMap::new();
        for &from in &ids {
            for &to in &ids {
                if from == to {
                    continue;
                }
                let cut = Arc::new(AtomicBool::new(false));
                let controller_proxy = proxy(controller_ports[&to], cut.clone(), stop.clone());
                let broker_proxy = proxy(replication_ports[&(to, from)], cut.clone(), stop.clone());
                links.insert(
                    (from, to),
                    Link {
                        cut,
                        controller_proxy,
                        broker_proxy,
                    },
                );
            }
        }
        FaultNet {
            links,
            controller_ports,
            replication_ports,
            stop,
        }
    }

    /// The settings of node `id` that route its traffic to the other nodes through its links
    /// (the rest of its properties stay as for any cluster node).
    pub fn node_lines(&self, id: i32, client_port: u16) -> String {
        let ids: Vec<i32> = self.controller_ports.keys().copied().collect();
        let voters: Vec<String> = ids
            .iter()
            .map(|&j| {
                let port = if j == id {
                    self.controller_ports[&j]
                } else {
                    self.links[&(id, j)].controller_proxy
                };
                format!("{j}@127.0.0.1:{port}")
            })
            .collect();
        let mut listeners = vec![
            format!("PLAINTEXT://127.0.0.1:{client_port}"),
            format!("CONTROLLER://127.0.0.1:{}", self.controller_ports[&id]),
        ];
        let mut advertised = vec![format!("PLAINTEXT://127.0.0.1:{client_port}")];
        let mut protocols = vec![
            "PLAINTEXT:PLAINTEXT".to_owned(),
            "CONTROLLER:PLAINTEXT".to_owned(),
        ];
        for &peer in &ids {
            let real = self.replication_ports[&(id, peer)];
            listeners.push(format!("R{peer}://127.0.0.1:{real}"));
            let seen_at = if peer == id {
                real
            } else {
                self.links[&(peer, id)].broker_proxy
            };
            advertised.push(format!("R{peer}://127.0.0.1:{seen_at}"));
            protocols.push(format!("R{peer}:PLAINTEXT"));
        }
        format!(
            "controller.quorum.voters={}\nlisteners={}\nadvertised.listeners={}\n\
             listener.security.protocol.map={}\ninter.broker.listener.name=R{id}\n",
            voters.join(","),
            listeners.join(","),
            advertised.join(","),
            protocols.join(","),
        )
    }

    /// The real port of `node`'s listener `R<peer>`.
    pub fn replication_port(&self, node: i32, peer: i32) -> u16 {
        self.replication_ports[&(node, peer)]
    }

    /// Where `peer` reaches `node`'s listener `R<peer>` (what `node` advertises for it).
    pub fn advertised_replication_port(&self, node: i32, peer: i32) -> u16 {
        if node == peer {
            self.replication_ports[&(node, peer)]
        } else {
            self.links[&(peer, node)].broker_proxy
        }
    }

    /// Cuts every link between `node` and the others, both ways.
    pub fn isolate(&self, node: i32) {
        for ((from, to), link) in &self.links {
            if *from == node || *to == node {
                link.cut.store(true, Ordering::SeqCst);
            }
        }
    }

    /// Cuts the links between the two sides, both ways.
    pub fn partition(&self, side: &BTreeSet<i32>) {
        for ((from, to), link) in &self.links {
            if side.contains(from) != side.contains(to) {
                link.cut.store(true, Ordering::SeqCst);
            }
        }
    }

    /// Restores every link.
    pub fn heal(&self) {
        for link in self.links.values() {
            link.cut.store(false, Ordering::SeqCst);
        }
    }
}

impl Drop for FaultNet {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// First port below Linux's ephemeral range (32768+) handed out here; each process starts
/// elsewhere in 20000..32000 and counts up, so neither outgoing connections nor
/// `free_port()` (both ephemeral) nor another test thread takes a port this module chose.
static NEXT_PORT: AtomicU16 = AtomicU16::new(0);

/// A bound listener on a port of its own below the ephemeral range, and its port.
fn low_port() -> (TcpListener, u16) {
    let _ = NEXT_PORT.compare_exchange(
        0,
        20_000 + (std::process::id() % 1_000) as u16 * 12,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    loop {
        let port = NEXT_PORT.fetch_add(1, Ordering::SeqCst);
        assert!(port < 32_768, "out of low ports");
        if let Ok(l) = TcpListener::bind(("127.0.0.1", port)) {
            return (l, port);
        }
    }
}

/// A proxy to `127.0.0.1:upstream` on a fresh port, carrying bytes only while not `cut`.
fn proxy(upstream: u16, cut: Arc<AtomicBool>, stop: Arc<AtomicBool>) -> u16 {
    let (listener, port) = low_port();
    listener.set_nonblocking(true).unwrap();
    thread::spawn(move || {
        while !stop.load(Ordering::SeqCst) {
            match listener.accept() {
                Ok((downstream, _)) => {
                    let (cut, stop) = (cut.clone(), stop.clone());
                    thread::spawn(move || carry(downstream, upstream, cut, stop));
                }
                Err(_) => thread::sleep(POLL),
            }
        }
    });
    port
}

/// Connects to the upstream once the link is up, then pumps both ways.
fn carry(downstream: TcpStream, upstream: u16, cut: Arc<AtomicBool>, stop: Arc<AtomicBool>) {
    let _ = downstream.set_nonblocking(false);
    while cut.load(Ordering::SeqCst) {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        thread::sleep(POLL);
    }
    let Ok(up) = TcpStream::connect(("127.0.0.1", upstream)) else {
        let _ = downstream.shutdown(Shutdown::Both);
        return;
    };
    let _ = up.set_nodelay(true);
    let _ = downstream.set_nodelay(true);
    let (down2, up2) = match (downstream.try_clone(), up.try_clone()) {
        (Ok(d), Ok(u)) => (d, u),
        _ => return,
    };
    let (cut2, stop2) = (cut.clone(), stop.clone());
    thread::spawn(move || pump(down2, up2, cut2, stop2));
    pump(up, downstream, cut, stop);
}

/// Copies `from` to `to` while the link is up; stalls (reads nothing) while it is cut.
fn pump(mut from: TcpStream, mut to: TcpStream, cut: Arc<AtomicBool>, stop: Arc<AtomicBool>) {
    let _ = from.set_read_timeout(Some(POLL));
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        if cut.load(Ordering::SeqCst) {
            thread::sleep(POLL);
            continue;
        }
        match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                // A read that began before the cut may return bytes sent after it: they wait
                // for the heal like the rest, or `isolate` would let up to one poll interval
                // of traffic through (a follower's fetch got an isolated leader's record so).
                while cut.load(Ordering::SeqCst) && !stop.load(Ordering::SeqCst) {
                    thread::sleep(POLL);
                }
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => break,
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}
