//! The broker's HTTP listener (`http.listeners`): `/metrics` in Prometheus' text format, next
//! to the Kafka listeners of `strom server`. On a single node it is on by default at
//! http://127.0.0.1:8080; that default is skipped, with a warning, when the port is taken.

use std::sync::Arc;

use anyhow::{Context, Result};
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

/// Binds the HTTP listener if one is configured (or defaulted) and serves it in the
/// background. A configured listener that cannot bind is an error; the default one is skipped.
pub(crate) async fn spawn(broker: &Arc<Broker>) -> Result<()> {
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
    tracing::info!(listener = %url, "HTTP listener serving /metrics");
    let app = router(Arc::clone(broker));
    tokio::spawn(async move {
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
