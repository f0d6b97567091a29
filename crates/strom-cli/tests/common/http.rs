//! Plain HTTP/1.1 over a TcpStream, for tests of the broker's HTTP listener.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// GET `path` on `port` over plain HTTP/1.1; (status, body).
pub fn http_get(port: u16, path: &str) -> (u16, String) {
    request(port, "GET", path, None)
}

/// `method` `path` on `port` with an optional JSON body; (status, body).
pub fn request(port: u16, method: &str, path: &str, json: Option<&str>) -> (u16, String) {
    let mut s = connect(port);
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let body = json.unwrap_or("");
    let content_type = if json.is_some() {
        "Content-Type: application/json\r\n"
    } else {
        ""
    };
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n{content_type}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8(raw).expect("UTF-8 response");
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP response");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status code");
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_owned()
    };
    (status, body)
}

/// Connects to the HTTP listener on `port`, waiting up to 30 s for it to bind: the broker
/// binds its HTTP listener after its Kafka listener, so a test that has seen the Kafka port
/// may get here first. A self-connect (possible while nothing listens on an ephemeral port)
/// is refused and retried.
fn connect(port: u16) -> TcpStream {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match TcpStream::connect(("127.0.0.1", port)) {
            Ok(s) if s.local_addr().ok() != s.peer_addr().ok() => return s,
            Ok(_) => {}
            Err(e) => assert!(
                Instant::now() < deadline,
                "connect to the HTTP listener on {port}: {e}"
            ),
        }
        assert!(
            Instant::now() < deadline,
            "the HTTP listener on {port} never came up"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    loop {
        let (size, rest) = body.split_once("\r\n").expect("chunk size");
        let size = usize::from_str_radix(size.trim(), 16).expect("hex chunk size");
        if size == 0 {
            return out;
        }
        out.push_str(&rest[..size]);
        body = &rest[size + 2..];
    }
}
