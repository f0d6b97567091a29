//! A minimal HTTP/1.1 client for forwarding REST requests to the leader (plain `http://`,
//! one request per connection, `Content-Length` or chunked answers).

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::error::{ConnectError, Result};

const TIMEOUT: Duration = Duration::from_secs(90);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// `http://host:port[/]` → `host:port`.
fn authority(base: &str) -> Result<&str> {
    base.strip_prefix("http://")
        .map(|a| a.trim_end_matches('/'))
        .filter(|a| !a.is_empty() && !a.contains('/'))
        .ok_or_else(|| ConnectError::Io(format!("not an http:// base URL: {base}")))
}

/// Sends `method path_and_query` with a JSON `body` to `base` and reads the whole answer.
pub async fn send(base: &str, method: &str, path_and_query: &str, body: &[u8]) -> Result<Answer> {
    let host = authority(base)?;
    let exchange = async {
        let mut s = tokio::net::TcpStream::connect(host).await?;
        let head = format!(
            "{method} {path_and_query} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nAccept: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        s.write_all(head.as_bytes()).await?;
        s.write_all(body).await?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).await?;
        Ok::<_, std::io::Error>(raw)
    };
    let raw = tokio::time::timeout(TIMEOUT, exchange)
        .await
        .map_err(|_| ConnectError::Io(format!("{base} did not answer within {TIMEOUT:?}")))?
        .map_err(|e| ConnectError::Io(format!("{base}: {e}")))?;
    parse(&raw)
}

fn parse(raw: &[u8]) -> Result<Answer> {
    let bad = || ConnectError::Io("malformed HTTP answer".into());
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(bad)?;
    let head = std::str::from_utf8(&raw[..split]).map_err(|_| bad())?;
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(bad)?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    if chunked {
        let mut out = Vec::new();
        let mut rest = &body[..];
        loop {
            let eol = rest.windows(2).position(|w| w == b"\r\n").ok_or_else(bad)?;
            let size_text = std::str::from_utf8(&rest[..eol]).map_err(|_| bad())?;
            let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
                .map_err(|_| bad())?;
            rest = &rest[eol + 2..];
            if size == 0 {
                break;
            }
            if rest.len() < size {
                return Err(bad());
            }
            out.extend_from_slice(&rest[..size]);
            rest = rest.get(size + 2..).unwrap_or(&[]);
        }
        body = out;
    }
    Ok(Answer {
        status,
        headers,
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_plain_and_chunked_answers() {
        let a = parse(
            b"HTTP/1.1 201 Created\r\nLocation: /connectors/x\r\nContent-Length: 2\r\n\r\n{}",
        )
        .unwrap();
        assert_eq!(a.status, 201);
        assert_eq!(a.body, b"{}");
        assert!(a
            .headers
            .contains(&("location".into(), "/connectors/x".into())));
        let a = parse(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
            .unwrap();
        assert_eq!(a.body, b"abcde");
        assert!(parse(b"garbage").is_err());
        assert!(authority("https://x").is_err());
        assert_eq!(authority("http://h:1/").unwrap(), "h:1");
    }
}
