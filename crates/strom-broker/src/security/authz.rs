//! The authorizer: Kafka's StandardAuthorizer semantics (`strom_metadata::acl`) over the ACLs
//! in the metadata image, switched on by `authorizer.class.name` as in Kafka. Without it every
//! request is allowed, as Kafka does when no authorizer is configured.
//!
//! Decisions are logged on the `strom::audit` target: every denial at INFO, allowed ones at
//! DEBUG when `strom.authorizer.audit.allowed=true` (Kafka's `kafka.authorizer.logger`).

use std::sync::Arc;

use parking_lot::RwLock;
use strom_metadata::acl::{AclIndex, AclOperation, AuthorizerSettings, Decision, ResourceType};
use strom_metadata::{BrokerConfig, MetadataImage};

/// The ACL checks of one broker.
#[derive(Debug)]
pub struct Authorizer {
    settings: AuthorizerSettings,
    audit_allowed: bool,
    index: RwLock<Arc<AclIndex>>,
}

impl Authorizer {
    /// The authorizer `authorizer.class.name` asks for; `None` when it is empty.
    pub fn from_config(config: &BrokerConfig) -> Option<Authorizer> {
        let value = |key: &str| {
            config
                .value_and_source(key)
                .0
                .unwrap_or("")
                .trim()
                .to_owned()
        };
        if value("authorizer.class.name").is_empty() {
            return None;
        }
        Some(Authorizer {
            settings: AuthorizerSettings {
                super_users: AuthorizerSettings::parse_super_users(&value("super.users")),
                allow_everyone_if_no_acl_found: value("allow.everyone.if.no.acl.found")
                    .eq_ignore_ascii_case("true"),
            },
            audit_allowed: value("strom.authorizer.audit.allowed").eq_ignore_ascii_case("true"),
            index: RwLock::new(Arc::new(AclIndex::default())),
        })
    }

    /// Rebuilds the index when the image's ACLs differ from the ones it was built from.
    pub fn refresh(&self, image: &MetadataImage) {
        if self.index.read().is_built_from(image.acls()) {
            return;
        }
        *self.index.write() = Arc::new(AclIndex::new(image.acls()));
    }

    /// May `principal`, connected from `host`, do `operation` to `(resource_type, name)`?
    /// `api_key` names the request in the audit log.
    pub fn authorize(
        &self,
        api_key: i16,
        principal: &str,
        host: &str,
        operation: AclOperation,
        resource_type: ResourceType,
        name: &str,
    ) -> bool {
        let index = Arc::clone(&self.index.read());
        let decision = index.authorize(
            &self.settings,
            principal,
            host,
            operation,
            resource_type,
            name,
        );
        match &decision {
            Decision::Denied(reason) => tracing::info!(
                target: "strom::audit",
                "Principal = {principal} is Denied operation = {} from host = {host} on resource = {}:{name} for request = {} ({reason})",
                operation.name(),
                resource_type.name(),
                api_name(api_key),
            ),
            Decision::Allowed(reason) if self.audit_allowed => tracing::debug!(
                target: "strom::audit",
                "Principal = {principal} is Allowed operation = {} from host = {host} on resource = {}:{name} for request = {} ({reason})",
                operation.name(),
                resource_type.name(),
                api_name(api_key),
            ),
            Decision::Allowed(_) => {}
        }
        decision.is_allowed()
    }

    /// `authorize` without the audit log: for `*_authorized_operations` fields, which ask
    /// about every operation and are no attempt to do any.
    pub fn allows_quietly(
        &self,
        principal: &str,
        host: &str,
        operation: AclOperation,
        resource_type: ResourceType,
        name: &str,
    ) -> bool {
        let index = Arc::clone(&self.index.read());
        index
            .authorize(
                &self.settings,
                principal,
                host,
                operation,
                resource_type,
                name,
            )
            .is_allowed()
    }

    /// May `principal` do `operation` to some resource of `resource_type` (Kafka's
    /// `authorizeByResourceType`)?
    pub fn authorize_any(
        &self,
        principal: &str,
        host: &str,
        operation: AclOperation,
        resource_type: ResourceType,
    ) -> bool {
        let index = Arc::clone(&self.index.read());
        index.authorize_any(&self.settings, principal, host, operation, resource_type)
    }
}

/// The request's API name for the audit log (`Produce`), or its key.
fn api_name(api_key: i16) -> String {
    kafka_protocol::messages::ApiKey::try_from(api_key)
        .map_or_else(|_| format!("api key {api_key}"), |k| format!("{k:?}"))
}
