//! The web console: its front end (`assets`: HTML, CSS and ES modules embedded in the
//! binary, no build step), the JSON endpoints its pages need beside the REST proxy and the
//! Burrow API (`api`, under `/api/console`), the schemas and connectors pages' proxies to
//! the Schema Registry and a Connect worker (`ecosystem`) and the history of its charts
//! (`history`).

pub mod api;
pub mod assets;
pub mod decode;
pub mod ecosystem;
pub mod history;

use std::sync::Arc;

use axum::routing::{get, post};
use axum::Router;

use crate::Console;

pub(crate) fn routes() -> Router<Arc<Console>> {
    Router::new()
        .route("/", get(assets::index))
        .route("/ui/{file}", get(assets::asset))
        .route("/api/console/overview", get(api::overview))
        .route("/api/console/topics", get(api::topics))
        .route(
            "/api/console/topics/{topic}/partitions",
            get(api::partitions),
        )
        .route("/api/console/topics/{topic}/messages", get(api::messages))
        .route("/api/console/groups", get(api::groups))
        .route("/api/console/groups/{group}", get(api::group))
        .route(
            "/api/console/groups/{group}/reset-offsets",
            post(api::reset_offsets),
        )
        .route("/api/console/history/throughput", get(api::throughput))
        .route("/api/console/history/lag/{group}", get(api::lag_history))
        .route("/api/console/schemas", get(ecosystem::schemas))
        .route("/api/console/schemas/{subject}", get(ecosystem::schema))
        .route("/api/console/connectors", get(ecosystem::connectors))
        .route(
            "/api/console/connectors/{name}/{action}",
            post(ecosystem::connector_action),
        )
}
