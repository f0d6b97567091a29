//! Notifiers for group status changes: a log line, or an HTTP POST of a templated body.
//!
//! Templates use `{name}` placeholders (unknown names are left as they are):
//! `{cluster}`, `{group}`, `{status}`, `{previous}` (group statuses: OK, WARN, ERR),
//! `{totallag}`, `{maxlag_topic}`, `{maxlag_partition}`, `{maxlag}` (the largest current
//! lag), `{complete}`, `{timestamp}` (RFC 3339), `{timestamp_ms}` and `{partitions}` (a JSON
//! array of the partitions not OK, each `{"topic","partition","status","current_lag"}`).
//! String values are JSON-escaped without quotes, so a template can put them inside JSON
//! strings (`"group":"{group}"`).

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::config::NotifierConfig;
use crate::lag::poller::StatusChange;
use crate::lag::PartitionStatus;
use crate::util::rfc3339_ms;

/// The body posted when a webhook has no template of its own.
pub const DEFAULT_TEMPLATE: &str = r#"{"cluster":"{cluster}","group":"{group}","status":"{status}","previous":"{previous}","totallag":{totallag},"maxlag":{maxlag},"complete":{complete},"timestamp":"{timestamp}","partitions":{partitions}}"#;

/// How long a webhook call may take (connect, send, answer).
const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);

fn escape(s: &str) -> String {
    let quoted = Value::String(s.to_owned()).to_string();
    quoted[1..quoted.len() - 1].to_owned()
}

/// Fills a template's placeholders from a status change.
pub fn render(template: &str, change: &StatusChange) -> String {
    let r = &change.report;
    let max = r.max_lag();
    let bad: Vec<Value> = r
        .partitions
        .iter()
        .filter(|p| p.status != PartitionStatus::Ok)
        .map(|p| {
            json!({
                "topic": p.tp.topic,
                "partition": p.tp.partition,
                "status": p.status.name(),
                "current_lag": p.current_lag,
            })
        })
        .collect();
    let value = |name: &str| -> Option<String> {
        Some(match name {
            "cluster" => escape(&change.cluster),
            "group" => escape(&r.group),
            "status" => r.status.name().to_owned(),
            "previous" => change.previous.name().to_owned(),
            "totallag" => r.total_lag.to_string(),
            "maxlag" => max.map_or(0, |p| p.current_lag).to_string(),
            "maxlag_topic" => escape(max.map_or("", |p| p.tp.topic.as_str())),
            "maxlag_partition" => max.map_or(-1, |p| p.tp.partition).to_string(),
            "complete" => json!(r.complete).to_string(),
            "timestamp" => rfc3339_ms(change.timestamp_ms),
            "timestamp_ms" => change.timestamp_ms.to_string(),
            "partitions" => Value::Array(bad.clone()).to_string(),
            _ => return None,
        })
    };
    let mut out = String::with_capacity(template.len() + 64);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let name_len = after
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(after.len());
        match (
            after[name_len..].starts_with('}'),
            value(&after[..name_len]),
        ) {
            (true, Some(v)) => {
                out.push_str(&v);
                rest = &after[name_len + 1..];
            }
            _ => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Delivers changes to every notifier until the channel closes.
pub async fn run(notifiers: Vec<NotifierConfig>, mut changes: mpsc::Receiver<StatusChange>) {
    while let Some(change) = changes.recv().await {
        for n in &notifiers {
            match n {
                NotifierConfig::Log => tracing::info!(
                    target: "strom_console::notify",
                    cluster = %change.cluster,
                    group = %change.report.group,
                    status = change.report.status.name(),
                    previous = change.previous.name(),
                    totallag = change.report.total_lag,
                    "consumer group status changed"
                ),
                NotifierConfig::Webhook {
                    url,
                    template,
                    content_type,
                } => {
                    let body = render(template.as_deref().unwrap_or(DEFAULT_TEMPLATE), &change);
                    let sent =
                        tokio::time::timeout(WEBHOOK_TIMEOUT, post(url, content_type, body)).await;
                    match sent {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => tracing::warn!(%url, "webhook failed: {e}"),
                        Err(_) => tracing::warn!(%url, "webhook timed out"),
                    }
                }
            }
        }
    }
}

/// Splits `http://host[:port][/path]` into the address to connect to, the Host header and
/// the path.
pub fn split_http_url(url: &str) -> Result<(String, String, String), String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("'{url}' is not an http:// URL"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() {
        return Err(format!("'{url}' names no host"));
    }
    let addr = if authority.rsplit(':').next().is_some_and(|p| {
        !p.is_empty() && p.bytes().all(|c| c.is_ascii_digit()) && authority.contains(':')
    }) {
        authority.to_owned()
    } else {
        format!("{authority}:80")
    };
    Ok((addr, authority.to_owned(), path.to_owned()))
}

async fn post(url: &str, content_type: &str, body: String) -> Result<(), String> {
    let (addr, host, path) = split_http_url(url)?;
    let tcp = tokio::net::TcpStream::connect(&addr)
        .await
        .map_err(|e| format!("connect {addr}: {e}"))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!("webhook connection: {e}");
        }
    });
    let req = Request::post(path)
        .header(hyper::header::HOST, host)
        .header(hyper::header::CONTENT_TYPE, content_type)
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| format!("request: {e}"))?;
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| format!("send: {e}"))?;
    let status = resp.status();
    // Read the answer so the connection closes cleanly.
    let _ = resp.into_body().collect().await;
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("answered {status}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lag::{Entry, GroupReport, GroupStatus, PartitionReport};
    use strom_client::TopicPartition;

    fn change() -> StatusChange {
        let e = Entry {
            offset: 3,
            lag: 4,
            timestamp_ms: 0,
        };
        let p = |n, status, lag| PartitionReport {
            tp: TopicPartition::new("t\"x", n),
            owner: String::new(),
            client_id: String::new(),
            status,
            start: e,
            end: e,
            current_lag: lag,
            complete: 1.0,
            entries: vec![e],
        };
        StatusChange {
            cluster: "local".into(),
            previous: GroupStatus::Ok,
            report: GroupReport {
                group: "g\"1".into(),
                status: GroupStatus::Err,
                complete: 1.0,
                partitions: vec![
                    p(0, PartitionStatus::Ok, 1),
                    p(1, PartitionStatus::Stall, 4),
                ],
                total_lag: 5,
            },
            timestamp_ms: 1_612_552_482_123,
        }
    }

    #[test]
    fn the_default_template_is_json_with_every_field() {
        let v: Value = serde_json::from_str(&render(DEFAULT_TEMPLATE, &change())).unwrap();
        assert_eq!(
            v,
            json!({
                "cluster": "local", "group": "g\"1", "status": "ERR", "previous": "OK",
                "totallag": 5, "maxlag": 4, "complete": 1.0,
                "timestamp": "2021-02-05T19:14:42.123Z",
                "partitions": [{"topic": "t\"x", "partition": 1, "status": "STALL", "current_lag": 4}],
            })
        );
    }

    #[test]
    fn unknown_placeholders_and_lone_braces_stay() {
        assert_eq!(
            render(
                "{group} is {status} {nope} { {maxlag_partition}}{",
                &change()
            ),
            "g\\\"1 is ERR {nope} { 1}{"
        );
    }

    #[test]
    fn webhook_urls_split() {
        assert_eq!(
            split_http_url("http://127.0.0.1:9000/hook?a=1").unwrap(),
            (
                "127.0.0.1:9000".into(),
                "127.0.0.1:9000".into(),
                "/hook?a=1".into()
            )
        );
        assert_eq!(
            split_http_url("http://example.com").unwrap(),
            ("example.com:80".into(), "example.com".into(), "/".into())
        );
        assert!(split_http_url("https://x/").is_err());
        assert!(split_http_url("http:///x").is_err());
    }
}
