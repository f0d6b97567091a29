//! Connecting to PostgreSQL: `connection.url` as the JDBC connectors take it
//! (`jdbc:postgresql://host:port/db?user=..&password=..`) or as libpq does (a
//! `postgresql://` URL or `host=.. port=..` pairs), with `connection.user` and
//! `connection.password` on top; or Debezium's `database.*` settings. Every session runs in
//! UTC with ISO dates, so the text forms of timestamps are the same everywhere.

use std::str::FromStr;
use std::time::Duration;

use tokio_postgres::{Client, Config, NoTls};

use crate::config::Props;
use crate::error::{ConnectError, Result};

/// How long connecting may take before the attempt fails.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The URL parameters of a JDBC URL that mean something here; others (driver settings such as
/// `ssl` or `currentSchema`) are ignored.
const URL_PARAMS: &[&str] = &[
    "user",
    "password",
    "dbname",
    "options",
    "application_name",
    "connect_timeout",
];

/// A connection configuration from `connection.url`, `connection.user`, `connection.password`.
pub fn jdbc_config(props: &Props) -> Result<Config> {
    let url = props
        .get("connection.url")
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ConnectError::InvalidConfig("connection.url is required".into()))?;
    let bad = |e: &dyn std::fmt::Display| {
        ConnectError::InvalidConfig(format!(
            "Invalid value {url} for configuration connection.url: {e}"
        ))
    };
    let mut config = match url.strip_prefix("jdbc:") {
        Some(rest) => {
            if !rest.starts_with("postgresql:") {
                return Err(bad(&"only jdbc:postgresql:// URLs are supported"));
            }
            let (base, query) = rest.split_once('?').unwrap_or((rest, ""));
            let mut c = Config::from_str(base).map_err(|e| bad(&e))?;
            for pair in query.split('&').filter(|p| !p.is_empty()) {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                if !URL_PARAMS.contains(&k) {
                    tracing::debug!("connection.url: ignoring the JDBC parameter {k}");
                    continue;
                }
                let v = percent_decode(v);
                match k {
                    "user" => {
                        c.user(&v);
                    }
                    "password" => {
                        c.password(v.as_bytes());
                    }
                    "dbname" => {
                        c.dbname(&v);
                    }
                    "options" => {
                        c.options(&v);
                    }
                    "application_name" => {
                        c.application_name(&v);
                    }
                    _ => {
                        let secs: u64 = v.parse().map_err(|_| bad(&"bad connect_timeout"))?;
                        c.connect_timeout(Duration::from_secs(secs));
                    }
                }
            }
            c
        }
        None => Config::from_str(url).map_err(|e| bad(&e))?,
    };
    if let Some(u) = props.get("connection.user").filter(|u| !u.is_empty()) {
        config.user(u);
    }
    if let Some(p) = props.get("connection.password").filter(|p| !p.is_empty()) {
        config.password(p.as_bytes());
    }
    Ok(config)
}

/// A connection configuration from Debezium's `database.hostname`, `database.port`,
/// `database.user`, `database.password`, `database.dbname`.
pub fn debezium_config(props: &Props) -> Result<Config> {
    let get = |k: &str| props.get(k).map(|s| s.trim()).filter(|s| !s.is_empty());
    let required =
        |k: &str| get(k).ok_or_else(|| ConnectError::InvalidConfig(format!("{k} is required")));
    let mut c = Config::new();
    c.host(required("database.hostname")?);
    let port = get("database.port").unwrap_or("5432");
    c.port(port.parse().map_err(|_| {
        ConnectError::InvalidConfig(format!(
            "Invalid value {port} for configuration database.port: not a port"
        ))
    })?);
    c.user(required("database.user")?);
    if let Some(p) = props.get("database.password").filter(|p| !p.is_empty()) {
        c.password(p.as_bytes());
    }
    c.dbname(required("database.dbname")?);
    Ok(c)
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) =
                u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or(""), 16)
            {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Connects, runs the connection on the runtime, and sets the session up (UTC, ISO dates,
/// floats in their shortest exact form).
pub async fn connect(config: &Config) -> Result<Client> {
    let mut config = config.clone();
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    let (client, connection) = config
        .connect(NoTls)
        .await
        .map_err(|e| retriable("connect", &e))?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!("postgres connection ended: {e}");
        }
    });
    client
        .batch_execute(
            "SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'; SET extra_float_digits = 1",
        )
        .await
        .map_err(|e| pg_error("session set-up", &e))?;
    Ok(client)
}

/// A failure to reach the database: the runtime tries again.
pub fn retriable(what: &str, e: &tokio_postgres::Error) -> ConnectError {
    ConnectError::Retriable(format!("PostgreSQL {what}: {}", describe(e)))
}

/// A database error: retriable when the connection is gone (the task reconnects), a task
/// failure when the server refused the statement.
pub fn pg_error(what: &str, e: &tokio_postgres::Error) -> ConnectError {
    if e.as_db_error().is_none() {
        retriable(what, e)
    } else {
        ConnectError::Task(format!("PostgreSQL {what}: {}", describe(e)))
    }
}

fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => {
            let mut s = e.to_string();
            let mut src = std::error::Error::source(e);
            while let Some(inner) = src {
                s.push_str(&format!(": {inner}"));
                src = inner.source();
            }
            s
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_jdbc_and_libpq_urls() {
        let mut p = Props::new();
        p.insert(
            "connection.url".into(),
            "jdbc:postgresql://db.example:5433/shop?user=u&password=p%40ss&ssl=false".into(),
        );
        let c = jdbc_config(&p).unwrap();
        assert_eq!(c.get_ports(), &[5433]);
        assert_eq!(c.get_dbname(), Some("shop"));
        assert_eq!(c.get_user(), Some("u"));
        assert_eq!(c.get_password(), Some(&b"p@ss"[..]));
        p.insert("connection.user".into(), "other".into());
        assert_eq!(jdbc_config(&p).unwrap().get_user(), Some("other"));
        p.insert(
            "connection.url".into(),
            "host=127.0.0.1 port=6000 dbname=x".into(),
        );
        let c = jdbc_config(&p).unwrap();
        assert_eq!(c.get_ports(), &[6000]);
        assert_eq!(c.get_dbname(), Some("x"));
        p.insert("connection.url".into(), "jdbc:mysql://h/db".into());
        assert!(jdbc_config(&p).is_err());
    }
}
