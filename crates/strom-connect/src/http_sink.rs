//! The HTTP sink (Confluent's HttpSinkConnector's job and config names): sends the records
//! of each `put` to `http.api.url` in batches of at most `batch.max.size`, one request per
//! batch, with `request.method`, `headers` (`k:v|k:v`), `auth.type` NONE or BASIC
//! (`connection.user` / `connection.password`; a bearer token goes in `headers`).
//!
//! The body of a batch is `batch.prefix`, the records joined by `batch.separator`, then
//! `batch.suffix`; when none of the three is set and `request.body.format=json` (the
//! default) it is a JSON array. Each record is its value: with `request.body.format=json`,
//! structs, maps and arrays as JSON, and text (strings, bytes as UTF-8) as is when it is a
//! JSON document already (what a String or ByteArray converter hands over), else as a JSON
//! string; with `string`, the value's text.
//!
//! A request that fails with a 5xx, 408 or 429 status or does not get through is sent again
//! after `retry.backoff.ms`, doubling each time (at most a minute), up to `max.retries`
//! times; any other status that is not 2xx is final. A batch that still fails is reported to
//! the runtime as errant records (`ConnectError::Errant`): its error policy then fails the
//! task (`errors.tolerance=none`, the offsets stay uncommitted, nothing is lost) or sends
//! the records to the dead-letter queue (`all`). Plain `http://` only (no TLS).

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use serde_json::Value as J;
use strom_client::TopicPartition;

use crate::config::{get_parsed, ConfigDef, ConfigType, Importance, Props};
use crate::connector::{BoxFuture, Connector, ConnectorType, SinkTask, Task};
use crate::data::{SinkRecord, Value};
use crate::error::{ConnectError, Result};

pub const HTTP_SINK_CLASS: &str = "io.confluent.connect.http.HttpSinkConnector";

/// The longest wait between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// The most response bytes kept for an error message.
const ERROR_BODY_BYTES: usize = 512;

/// Confluent's HttpSinkConnector.
#[derive(Debug, Default)]
pub struct HttpSinkConnector {
    props: Props,
}

impl Connector for HttpSinkConnector {
    fn connector_type(&self) -> ConnectorType {
        ConnectorType::Sink
    }

    fn config_def(&self) -> ConfigDef {
        ConfigDef::new()
            .define(
                "http.api.url",
                ConfigType::String,
                None,
                Importance::High,
                "The HTTP API URL (http://host:port/path) the records are sent to.",
            )
            .define(
                "request.method",
                ConfigType::String,
                Some("POST"),
                Importance::High,
                "The HTTP request method.",
            )
            .one_of(&["POST", "PUT", "PATCH"])
            .define(
                "headers",
                ConfigType::String,
                Some(""),
                Importance::Medium,
                "HTTP headers to send, as name:value pairs separated by header.separator.",
            )
            .define(
                "header.separator",
                ConfigType::String,
                Some("|"),
                Importance::Low,
                "The separator of the pairs in headers.",
            )
            .define(
                "auth.type",
                ConfigType::String,
                Some("NONE"),
                Importance::High,
                "The authentication: NONE or BASIC.",
            )
            .one_of(&["NONE", "BASIC"])
            .define(
                "connection.user",
                ConfigType::String,
                Some(""),
                Importance::High,
                "The user for BASIC authentication.",
            )
            .define(
                "connection.password",
                ConfigType::Password,
                Some(""),
                Importance::High,
                "The password for BASIC authentication.",
            )
            .define(
                "batch.max.size",
                ConfigType::Int,
                Some("1"),
                Importance::High,
                "The most records sent in one request.",
            )
            .at_least(1)
            .define(
                "batch.prefix",
                ConfigType::String,
                Some(""),
                Importance::High,
                "Text before the records of a batch.",
            )
            .define(
                "batch.suffix",
                ConfigType::String,
                Some(""),
                Importance::High,
                "Text after the records of a batch.",
            )
            .define(
                "batch.separator",
                ConfigType::String,
                Some(","),
                Importance::High,
                "Text between the records of a batch.",
            )
            .define(
                "request.body.format",
                ConfigType::String,
                Some("json"),
                Importance::Medium,
                "How a record becomes request text: json or string.",
            )
            .one_of(&["json", "string"])
            .define(
                "max.retries",
                ConfigType::Int,
                Some("10"),
                Importance::Medium,
                "How many times a failed request is sent again.",
            )
            .at_least(0)
            .define(
                "retry.backoff.ms",
                ConfigType::Int,
                Some("3000"),
                Importance::Medium,
                "The wait before the first retry; it doubles with each retry.",
            )
            .at_least(0)
            .define(
                "http.request.timeout.ms",
                ConfigType::Int,
                Some("30000"),
                Importance::Low,
                "How long one request may take.",
            )
            .at_least(1)
    }

    fn validate_extra(&self, props: &Props) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if let Some(url) = props.get("http.api.url") {
            if let Err(e) = split_url(url) {
                out.push(("http.api.url".to_owned(), e));
            }
        }
        if let Err(e) = parse_headers(props) {
            out.push(("headers".to_owned(), e.to_string()));
        }
        let basic = props
            .get("auth.type")
            .is_some_and(|a| a.trim().eq_ignore_ascii_case("BASIC"));
        if basic && props.get("connection.user").is_none_or(|u| u.is_empty()) {
            out.push((
                "connection.user".to_owned(),
                "connection.user is required with auth.type=BASIC".to_owned(),
            ));
        }
        out
    }

    fn start(&mut self, props: &Props) -> Result<()> {
        self.props = props.clone();
        Ok(())
    }

    fn task_configs(&self, max_tasks: usize) -> Vec<Props> {
        vec![self.props.clone(); max_tasks.max(1)]
    }

    fn create_task(&self) -> Task {
        Task::Sink(Box::new(HttpSinkTask::default()))
    }
}

/// `http://host:port/path?query` as (authority, path and query).
fn split_url(url: &str) -> std::result::Result<(String, String), String> {
    let url = url.trim();
    let rest = url.strip_prefix("http://").ok_or_else(|| {
        format!(
            "Invalid value {url} for configuration http.api.url: only http:// URLs are supported"
        )
    })?;
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) if rest[i..].starts_with('?') => (&rest[..i], format!("/{}", &rest[i..])),
        Some(i) => (&rest[..i], rest[i..].to_owned()),
        None => (rest, "/".to_owned()),
    };
    if authority.is_empty() {
        return Err(format!(
            "Invalid value {url} for configuration http.api.url: no host"
        ));
    }
    let authority = if authority.contains(':') {
        authority.to_owned()
    } else {
        format!("{authority}:80")
    };
    Ok((authority, path))
}

/// `headers` as (name, value) pairs.
fn parse_headers(props: &Props) -> Result<Vec<(String, String)>> {
    let text = props.get("headers").map(|s| s.trim()).unwrap_or("");
    if text.is_empty() {
        return Ok(Vec::new());
    }
    let sep = props
        .get("header.separator")
        .map(String::as_str)
        .filter(|s| !s.is_empty())
        .unwrap_or("|");
    text.split(sep)
        .filter(|h| !h.trim().is_empty())
        .map(|h| match h.split_once(':') {
            Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_owned(), v.trim().to_owned())),
            _ => Err(ConnectError::InvalidConfig(format!(
                "Invalid value {text} for configuration headers: '{h}' is not name:value"
            ))),
        })
        .collect()
}

/// Sends records to the HTTP API.
#[derive(Debug, Default)]
pub struct HttpSinkTask {
    authority: String,
    path: String,
    method: Option<Method>,
    headers: Vec<(String, String)>,
    batch_max: usize,
    prefix: String,
    suffix: String,
    separator: String,
    json: bool,
    max_retries: u32,
    backoff: Duration,
    timeout: Duration,
}

/// Text that is a JSON document is kept; other text becomes a JSON string.
fn text_as_json(text: &str) -> String {
    match serde_json::from_str::<J>(text) {
        Ok(_) => text.trim().to_owned(),
        Err(_) => J::from(text).to_string(),
    }
}

impl HttpSinkTask {
    fn render(&self, v: &Value) -> String {
        match (v, self.json) {
            (Value::String(s), true) => text_as_json(s),
            (Value::Bytes(b), true) => text_as_json(&String::from_utf8_lossy(b)),
            (v, true) => v.to_json().to_string(),
            (Value::Null, false) => String::new(),
            (Value::Bytes(b), false) => String::from_utf8_lossy(b).into_owned(),
            (Value::Struct(_) | Value::Map(_) | Value::Array(_), false) => v.to_json().to_string(),
            (v, false) => v.to_display(),
        }
    }

    fn body(&self, batch: &[SinkRecord]) -> String {
        let parts: Vec<String> = batch.iter().map(|r| self.render(&r.record.value)).collect();
        format!(
            "{}{}{}",
            self.prefix,
            parts.join(&self.separator),
            self.suffix
        )
    }

    /// One attempt: `Ok` on 2xx; `Err((retriable, why))` otherwise.
    async fn send_once(&self, body: &Bytes) -> std::result::Result<(), (bool, String)> {
        let attempt = async {
            let stream = tokio::net::TcpStream::connect(&self.authority)
                .await
                .map_err(|e| (true, format!("connecting to {}: {e}", self.authority)))?;
            let _ = stream.set_nodelay(true);
            let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .map_err(|e| (true, format!("HTTP handshake with {}: {e}", self.authority)))?;
            let conn = tokio::spawn(conn);
            let mut req = Request::builder()
                .method(self.method.clone().unwrap_or(Method::POST))
                .uri(&self.path)
                .header(hyper::header::HOST, &self.authority);
            let has_content_type = self
                .headers
                .iter()
                .any(|(k, _)| k.eq_ignore_ascii_case("content-type"));
            if !has_content_type {
                let ct = if self.json {
                    "application/json"
                } else {
                    "text/plain; charset=utf-8"
                };
                req = req.header(hyper::header::CONTENT_TYPE, ct);
            }
            for (k, v) in &self.headers {
                req = req.header(k.as_str(), v.as_str());
            }
            let req = req
                .body(Full::new(body.clone()))
                .map_err(|e| (false, format!("building the request: {e}")))?;
            let resp = sender
                .send_request(req)
                .await
                .map_err(|e| (true, format!("sending to {}: {e}", self.authority)))?;
            let status = resp.status();
            let text = resp
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            conn.abort();
            if status.is_success() {
                return Ok(());
            }
            let text =
                String::from_utf8_lossy(&text[..text.len().min(ERROR_BODY_BYTES)]).into_owned();
            let retriable =
                status.is_server_error() || status.as_u16() == 408 || status.as_u16() == 429;
            Err((
                retriable,
                format!("HTTP {status} from {}{}: {text}", self.authority, self.path),
            ))
        };
        match tokio::time::timeout(self.timeout, attempt).await {
            Ok(r) => r,
            Err(_) => Err((
                true,
                format!(
                    "no answer from {} within {:?}",
                    self.authority, self.timeout
                ),
            )),
        }
    }

    /// Sends one batch with retries; the last error when it never got through.
    async fn send(&self, batch: &[SinkRecord]) -> std::result::Result<(), String> {
        let body = Bytes::from(self.body(batch));
        let mut backoff = self.backoff;
        let mut retries = 0;
        loop {
            match self.send_once(&body).await {
                Ok(()) => return Ok(()),
                Err((true, why)) if retries < self.max_retries => {
                    tracing::warn!("HTTP sink: {why}; retrying in {backoff:?}");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    retries += 1;
                }
                Err((_, why)) => return Err(format!("{why} (after {} attempts)", retries + 1)),
            }
        }
    }
}

impl SinkTask for HttpSinkTask {
    fn start(&mut self, props: &Props) -> Result<()> {
        let url = props
            .get("http.api.url")
            .ok_or_else(|| ConnectError::InvalidConfig("http.api.url is required".into()))?;
        (self.authority, self.path) = split_url(url).map_err(ConnectError::InvalidConfig)?;
        let method = props
            .get("request.method")
            .map(|m| m.trim().to_ascii_uppercase());
        self.method = Some(match method.as_deref() {
            None | Some("POST") => Method::POST,
            Some("PUT") => Method::PUT,
            Some("PATCH") => Method::PATCH,
            Some(m) => {
                return Err(ConnectError::InvalidConfig(format!(
                    "Invalid value {m} for configuration request.method"
                )))
            }
        });
        self.headers = parse_headers(props)?;
        let auth = props
            .get("auth.type")
            .map(|a| a.trim().to_ascii_uppercase());
        if auth.as_deref() == Some("BASIC") {
            let user = props.get("connection.user").cloned().unwrap_or_default();
            let password = props
                .get("connection.password")
                .cloned()
                .unwrap_or_default();
            let token =
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
            self.headers
                .push(("Authorization".into(), format!("Basic {token}")));
        }
        self.batch_max = get_parsed(props, "batch.max.size", 1usize)?.max(1);
        self.json = props.get("request.body.format").map(|f| f.trim()) != Some("string");
        let given = |k: &str| props.get(k).filter(|v| !v.is_empty()).cloned();
        let (prefix, suffix, separator) = (
            given("batch.prefix"),
            given("batch.suffix"),
            given("batch.separator"),
        );
        if self.json && prefix.is_none() && suffix.is_none() && separator.is_none() {
            (self.prefix, self.suffix, self.separator) = ("[".into(), "]".into(), ",".into());
        } else {
            self.prefix = prefix.unwrap_or_default();
            self.suffix = suffix.unwrap_or_default();
            self.separator = separator.unwrap_or_else(|| ",".into());
        }
        self.max_retries = get_parsed(props, "max.retries", 10u32)?;
        self.backoff = Duration::from_millis(get_parsed(props, "retry.backoff.ms", 3000u64)?);
        self.timeout =
            Duration::from_millis(get_parsed(props, "http.request.timeout.ms", 30_000u64)?.max(1));
        Ok(())
    }

    fn put(&mut self, records: Vec<SinkRecord>) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            let mut errant = Vec::new();
            let mut last_error = String::new();
            for batch in records.chunks(self.batch_max) {
                if let Err(why) = self.send(batch).await {
                    tracing::error!(
                        "HTTP sink: a batch of {} records failed: {why}",
                        batch.len()
                    );
                    errant.extend(batch.iter().map(|r| {
                        (
                            r.record.topic.clone(),
                            r.record.kafka_partition.unwrap_or(0),
                            r.kafka_offset,
                        )
                    }));
                    last_error = why;
                }
            }
            if errant.is_empty() {
                Ok(())
            } else {
                Err(ConnectError::Errant {
                    records: errant,
                    message: last_error,
                })
            }
        })
    }

    fn flush(&mut self, _offsets: &BTreeMap<TopicPartition, i64>) -> BoxFuture<'_, Result<()>> {
        // `put` returns once every batch got through: nothing is buffered.
        Box::pin(async { Ok(()) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_headers() {
        assert_eq!(
            split_url("http://127.0.0.1:8080/api/v1?x=1").unwrap(),
            ("127.0.0.1:8080".to_owned(), "/api/v1?x=1".to_owned())
        );
        assert_eq!(
            split_url("http://example.com").unwrap(),
            ("example.com:80".to_owned(), "/".to_owned())
        );
        assert_eq!(
            split_url("http://h:1?q").unwrap(),
            ("h:1".to_owned(), "/?q".to_owned())
        );
        assert!(split_url("https://h/").is_err());
        let props: Props = [("headers", "Authorization:Bearer abc|X-Env: prod")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        assert_eq!(
            parse_headers(&props).unwrap(),
            vec![
                ("Authorization".to_owned(), "Bearer abc".to_owned()),
                ("X-Env".to_owned(), "prod".to_owned())
            ]
        );
    }

    #[test]
    fn json_rendering_keeps_json_text_and_quotes_the_rest() {
        let t = HttpSinkTask {
            json: true,
            ..Default::default()
        };
        assert_eq!(
            t.render(&Value::String(r#"{"a": 1}"#.into())),
            r#"{"a": 1}"#
        );
        assert_eq!(t.render(&Value::String("plain".into())), r#""plain""#);
        assert_eq!(t.render(&Value::Int32(5)), "5");
        assert_eq!(t.render(&Value::Null), "null");
    }
}
