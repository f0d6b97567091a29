//! Raw wire behaviour against the real binary: the ApiVersions fallback for an unknown
//! version, and bad frames that close only their own connection.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::Server;

fn connect(server: &Server) -> TcpStream {
    let s = TcpStream::connect(server.bootstrap()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// Sends ApiVersions of `version` with correlation id 7 and returns the response frame body.
fn api_versions(s: &mut TcpStream, version: i16) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&18i16.to_be_bytes());
    body.extend_from_slice(&version.to_be_bytes());
    body.extend_from_slice(&7i32.to_be_bytes());
    body.extend_from_slice(&4i16.to_be_bytes());
    body.extend_from_slice(b"test");
    if version >= 3 {
        body.push(0); // header tagged fields
        body.extend_from_slice(&[5, b's', b't', b'r', b'm', 2, b'1', 0]); // name, version, tags
    }
    s.write_all(&(body.len() as i32).to_be_bytes()).unwrap();
    s.write_all(&body).unwrap();
    read_frame(s).expect("a response")
}

fn read_frame(s: &mut TcpStream) -> Option<Vec<u8>> {
    let mut len = [0u8; 4];
    s.read_exact(&mut len).ok()?;
    let mut frame = vec![0u8; i32::from_be_bytes(len) as usize];
    s.read_exact(&mut frame).ok()?;
    Some(frame)
}

#[test]
fn unknown_api_versions_version_gets_the_v0_fallback() {
    let server = Server::start(&[]);
    let mut s = connect(&server);
    let frame = api_versions(&mut s, 99);
    assert_eq!(&frame[..4], &7i32.to_be_bytes(), "correlation id");
    assert_eq!(&frame[4..6], &35i16.to_be_bytes(), "UNSUPPORTED_VERSION");
    let count = i32::from_be_bytes(frame[6..10].try_into().unwrap());
    assert!(count >= 10, "the v0 list of APIs follows ({count})");
    // The connection stays usable: a supported version now works.
    let frame = api_versions(&mut s, 3);
    assert_eq!(&frame[4..6], &0i16.to_be_bytes());
}

#[test]
fn bad_frames_close_only_their_connection() {
    let server = Server::start(&[("socket.request.max.bytes", "1048576")]);
    let mut healthy = connect(&server);
    assert_eq!(&api_versions(&mut healthy, 3)[4..6], &0i16.to_be_bytes());

    // A frame larger than socket.request.max.bytes.
    let mut big = connect(&server);
    big.write_all(&(64 * 1024 * 1024i32).to_be_bytes()).unwrap();
    assert!(
        read_frame(&mut big).is_none(),
        "oversized frame closes the connection"
    );

    // A negative size.
    let mut negative = connect(&server);
    negative.write_all(&(-5i32).to_be_bytes()).unwrap();
    assert!(read_frame(&mut negative).is_none());

    // An unknown API key.
    let mut unknown = connect(&server);
    unknown
        .write_all(&[0, 0, 0, 8, 0x7f, 0x00, 0, 0, 0, 0, 0, 1])
        .unwrap();
    assert!(read_frame(&mut unknown).is_none());

    // A Metadata request whose body is garbage (a huge declared topic count).
    let mut garbage = connect(&server);
    let body = [
        0u8, 3, 0, 4, 0, 0, 0, 9, 0xff, 0xff, 0x7f, 0xff, 0xff, 0xff, 1,
    ];
    garbage
        .write_all(&(body.len() as i32).to_be_bytes())
        .unwrap();
    garbage.write_all(&body).unwrap();
    assert!(
        read_frame(&mut garbage).is_none(),
        "malformed body closes the connection"
    );

    // Nothing else was affected.
    assert_eq!(&api_versions(&mut healthy, 3)[4..6], &0i16.to_be_bytes());
    let mut fresh = connect(&server);
    assert_eq!(&api_versions(&mut fresh, 2)[4..6], &0i16.to_be_bytes());
}

#[test]
fn a_second_server_on_the_same_data_directory_is_refused() {
    let server = Server::start(&[]);
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_strom"))
        .arg("server")
        .arg("--set")
        .arg(format!("log.dirs={}", server.data_dir().display()))
        .arg("--set")
        .arg(format!(
            "listeners=PLAINTEXT://127.0.0.1:{}",
            common::free_port()
        ))
        .output()
        .expect("run strom");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("in use by another strom process"),
        "{stderr}"
    );
    // The running broker is unaffected.
    let mut s = connect(&server);
    assert_eq!(&api_versions(&mut s, 3)[4..6], &0i16.to_be_bytes());
}
