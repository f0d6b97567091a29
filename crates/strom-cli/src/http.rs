//! The broker's HTTP listener (`http.listeners`), next to the Kafka listeners of
//! `strom server`: `/metrics` in Prometheus' text format (the broker's), and strom-console's
//! services (Burrow-style lag API under `/v3/kafka`, REST Proxy v3 under `/v3/clusters`),
//! configured by `console.*` settings. On a single node it is on by default at
//! http://127.0.0.1:8080; that default is skipped, with a warning, when the port is taken.

use std::sync::Arc;

use anyhow::{bail, Context, Result};
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use strom_broker::Broker;

/// Prometheus' text exposition format, version 0.0.4.
const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// `host:port` of an `http://host:port[/]` listener URL.
fn authority(url: &str) -> Result<&str> {
    let rest = url
        .strip_prefix("http://")
        .with_context(|| format!("http.listeners: {url:?} is not an http:// URL"))?;
    let authority = rest.trim_end_matches('/');
    anyhow::ensure!(
        !authority.is_empty() && !authority.contains('/'),
        "http.listeners: {url:?} must be http://host:port"
    );
    Ok(authority)
}

async fn metrics(State(broker): State<Arc<Broker>>) -> impl IntoResponse {
    // Collecting walks every hosted partition: off the async workers.
    let text = tokio::task::spawn_blocking(move || broker.render_metrics())
        .await
        .unwrap_or_default();
    ([(CONTENT_TYPE, METRICS_CONTENT_TYPE)], text)
}

pub(crate) fn router(broker: Arc<Broker>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .with_state(broker)
}

/// The `console.*` settings of `strom server`, taken out of its overrides and properties
/// file (the broker does not know them) and checked: a console config for `bootstrap`.
pub(crate) fn console_settings(args: &mut crate::ServerArgs) -> Result<Vec<(String, String)>> {
    let mut settings = Vec::new();
    if let Some(path) = &args.config {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        for line in text.lines().map(str::trim) {
            if let Some((k, v)) = line.split_once('=') {
                if let Some(key) = k.trim().strip_prefix("console.") {
                    settings.push((key.to_owned(), v.trim().to_owned()));
                }
            }
        }
    }
    args.overrides
        .retain(|(k, v)| match k.strip_prefix("console.") {
            Some(key) => {
                settings.push((key.to_owned(), v.clone()));
                false
            }
            None => true,
        });
    // Checked now, so a bad value stops `strom server` before it opens anything.
    console_config("127.0.0.1:9092", &settings)?;
    Ok(settings)
}

fn console_config(
    bootstrap: &str,
    settings: &[(String, String)],
) -> Result<strom_console::ConsoleConfig> {
    let mut config = strom_console::ConsoleConfig::new(bootstrap);
    for (k, v) in settings {
        if k == "listener" {
            bail!("console.listener: the console is served on http.listeners inside strom server");
        }
        config
            .set(k, v)
            .map_err(|e| anyhow::anyhow!("console.{e}"))?;
    }
    Ok(config)
}

/// Binds the HTTP listener if one is configured (or defaulted) and serves it in the
/// background: `/metrics` at once, the console's services once it has connected to this
/// broker (`bootstrap`). A configured listener that cannot bind is an error; the default one
/// is skipped.
pub(crate) async fn spawn(
    broker: &Arc<Broker>,
    bootstrap: &str,
    console: Vec<(String, String)>,
) -> Result<()> {
    let Some((url, configured)) = broker.config().http_listener() else {
        return Ok(());
    };
    let bind = authority(&url)?;
    let listener = match tokio::net::TcpListener::bind(bind).await {
        Ok(l) => l,
        Err(e) if !configured => {
            tracing::warn!(listener = %url, error = %e, "HTTP listener not started (set http.listeners to another address, or empty to turn it off)");
            return Ok(());
        }
        Err(e) => {
            return Err(e).with_context(|| format!("cannot listen on {url} (http.listeners)"))
        }
    };
    let config = console_config(bootstrap, &console)?;
    let metrics = router(Arc::clone(broker));
    tokio::spawn(async move {
        // The console's admin client connects to this broker, whose listener accepts as soon
        // as `strom server` runs it (right after this): the wait is milliseconds.
        let app = match strom_console::Console::start(config).await {
            Ok(console) => metrics
                .merge(strom_console::router(console))
                .fallback(strom_console::rest::not_found)
                .method_not_allowed_fallback(strom_console::rest::method_not_allowed),
            Err(e) => {
                tracing::error!(error = %e, "console not started; the HTTP listener serves /metrics only");
                metrics
            }
        };
        tracing::info!(listener = %url, "HTTP listener serving /metrics and the console");
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "HTTP listener stopped");
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listener_urls_are_http_host_port() {
        assert_eq!(
            authority("http://127.0.0.1:8080").unwrap(),
            "127.0.0.1:8080"
        );
        assert_eq!(authority("http://0.0.0.0:80/").unwrap(), "0.0.0.0:80");
        assert!(authority("https://h:1").is_err());
        assert!(authority("http://h:1/x").is_err());
        assert!(authority("h:1").is_err());
    }
}
