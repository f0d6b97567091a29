//! A minimal HTTP/1.1 client on hyper for talking to a registry: forwarding writes to the
//! primary, the serdes' registry client and `strom schema`. One connection per request; no
//! TLS (registries here listen on plain `http://`).

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
pub use hyper::{Method, StatusCode};
use hyper_util::rt::TokioIo;

/// The content type of Confluent's REST API.
pub const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

/// How a failed connect attempt's error starts (nothing was sent; a retry is safe).
pub const CONNECT_FAILED: &str = "cannot connect to";

/// Bounds a request end to end.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest response body read.
const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;

/// Splits `http://host:port[/base]` into the authority and the base path.
pub fn split_url(url: &str) -> Result<(String, String), String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("'{url}' is not an http:// URL"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
        None => (rest, ""),
    };
    if authority.is_empty() {
        return Err(format!("'{url}' names no host"));
    }
    Ok((authority.to_owned(), path.to_owned()))
}

/// Sends one request to `base_url` + `path_and_query`; returns the status and body.
pub async fn request(
    base_url: &str,
    method: Method,
    path_and_query: &str,
    body: Option<Bytes>,
) -> Result<(StatusCode, Bytes), String> {
    tokio::time::timeout(
        REQUEST_TIMEOUT,
        request_inner(base_url, method, path_and_query, body),
    )
    .await
    .map_err(|_| {
        format!(
            "no answer from {base_url} within {} s",
            REQUEST_TIMEOUT.as_secs()
        )
    })?
}

async fn request_inner(
    base_url: &str,
    method: Method,
    path_and_query: &str,
    body: Option<Bytes>,
) -> Result<(StatusCode, Bytes), String> {
    let (authority, base) = split_url(base_url)?;
    let stream = tokio::net::TcpStream::connect(&authority)
        .await
        .map_err(|e| format!("{CONNECT_FAILED} {authority}: {e}"))?;
    let _ = stream.set_nodelay(true);
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("HTTP handshake with {authority}: {e}"))?;
    let conn = tokio::spawn(conn);
    let req = Request::builder()
        .method(method)
        .uri(format!("{base}{path_and_query}"))
        .header(hyper::header::HOST, &authority)
        .header(hyper::header::ACCEPT, CONTENT_TYPE)
        .header(hyper::header::CONTENT_TYPE, CONTENT_TYPE)
        .body(Full::new(body.unwrap_or_default()))
        .map_err(|e| format!("bad request: {e}"))?;
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| format!("request to {authority} failed: {e}"))?;
    let status = resp.status();
    let body = http_body_util::Limited::new(resp.into_body(), MAX_RESPONSE_BYTES)
        .collect()
        .await
        .map_err(|e| format!("reading the answer of {authority}: {e}"))?
        .to_bytes();
    conn.abort();
    Ok((status, body))
}
