//! Access control lists with Kafka's StandardAuthorizer semantics: the bindings stored in the
//! metadata log (record types 13 and 14), the filters CreateAcls / DescribeAcls / DeleteAcls
//! use, and [`AclIndex`], which answers "may this principal do this to that resource".
//!
//! The rules (Kafka's `StandardAuthorizer`, documented in its javadoc and KIP-290):
//! - a binding applies to a resource when its pattern is LITERAL with the resource's name or
//!   the wildcard `*`, or PREFIXED with a prefix of the resource's name; to a principal when it
//!   names it or is `User:*`; to a host when it names it or is `*`;
//! - an applicable DENY for the operation (or ALL) wins over any ALLOW;
//! - ALLOW of READ, WRITE, DELETE or ALTER implies DESCRIBE; ALLOW of ALTER_CONFIGS implies
//!   DESCRIBE_CONFIGS (denials imply nothing);
//! - super users are allowed everything; when no binding applies to the resource at all (for
//!   any principal), `allow.everyone.if.no.acl.found` decides.
//!
//! The numeric codes are Kafka's (`ResourceType`, `PatternType`, `AclOperation`,
//! `AclPermissionType`), so the wire values pass through unchanged.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Kafka's `ResourceType` codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ResourceType {
    Any,
    Topic,
    Group,
    Cluster,
    TransactionalId,
    DelegationToken,
    User,
}

impl ResourceType {
    pub fn code(self) -> i8 {
        match self {
            ResourceType::Any => 1,
            ResourceType::Topic => 2,
            ResourceType::Group => 3,
            ResourceType::Cluster => 4,
            ResourceType::TransactionalId => 5,
            ResourceType::DelegationToken => 6,
            ResourceType::User => 7,
        }
    }

    /// `None` for UNKNOWN (0) and codes Kafka does not define.
    pub fn from_code(code: i8) -> Option<ResourceType> {
        Some(match code {
            1 => ResourceType::Any,
            2 => ResourceType::Topic,
            3 => ResourceType::Group,
            4 => ResourceType::Cluster,
            5 => ResourceType::TransactionalId,
            6 => ResourceType::DelegationToken,
            7 => ResourceType::User,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            ResourceType::Any => "ANY",
            ResourceType::Topic => "TOPIC",
            ResourceType::Group => "GROUP",
            ResourceType::Cluster => "CLUSTER",
            ResourceType::TransactionalId => "TRANSACTIONAL_ID",
            ResourceType::DelegationToken => "DELEGATION_TOKEN",
            ResourceType::User => "USER",
        }
    }
}

/// Kafka's `PatternType` codes. ANY and MATCH exist only in filters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum PatternType {
    Any,
    Match,
    Literal,
    Prefixed,
}

impl PatternType {
    pub fn code(self) -> i8 {
        match self {
            PatternType::Any => 1,
            PatternType::Match => 2,
            PatternType::Literal => 3,
            PatternType::Prefixed => 4,
        }
    }

    pub fn from_code(code: i8) -> Option<PatternType> {
        Some(match code {
            1 => PatternType::Any,
            2 => PatternType::Match,
            3 => PatternType::Literal,
            4 => PatternType::Prefixed,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            PatternType::Any => "ANY",
            PatternType::Match => "MATCH",
            PatternType::Literal => "LITERAL",
            PatternType::Prefixed => "PREFIXED",
        }
    }
}

/// Kafka's `AclOperation` codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum AclOperation {
    Any,
    All,
    Read,
    Write,
    Create,
    Delete,
    Alter,
    Describe,
    ClusterAction,
    DescribeConfigs,
    AlterConfigs,
    IdempotentWrite,
    CreateTokens,
    DescribeTokens,
}

impl AclOperation {
    pub const CONCRETE: [AclOperation; 12] = [
        AclOperation::Read,
        AclOperation::Write,
        AclOperation::Create,
        AclOperation::Delete,
        AclOperation::Alter,
        AclOperation::Describe,
        AclOperation::ClusterAction,
        AclOperation::DescribeConfigs,
        AclOperation::AlterConfigs,
        AclOperation::IdempotentWrite,
        AclOperation::CreateTokens,
        AclOperation::DescribeTokens,
    ];

    pub fn code(self) -> i8 {
        match self {
            AclOperation::Any => 1,
            AclOperation::All => 2,
            AclOperation::Read => 3,
            AclOperation::Write => 4,
            AclOperation::Create => 5,
            AclOperation::Delete => 6,
            AclOperation::Alter => 7,
            AclOperation::Describe => 8,
            AclOperation::ClusterAction => 9,
            AclOperation::DescribeConfigs => 10,
            AclOperation::AlterConfigs => 11,
            AclOperation::IdempotentWrite => 12,
            AclOperation::CreateTokens => 13,
            AclOperation::DescribeTokens => 14,
        }
    }

    pub fn from_code(code: i8) -> Option<AclOperation> {
        Some(match code {
            1 => AclOperation::Any,
            2 => AclOperation::All,
            3 => AclOperation::Read,
            4 => AclOperation::Write,
            5 => AclOperation::Create,
            6 => AclOperation::Delete,
            7 => AclOperation::Alter,
            8 => AclOperation::Describe,
            9 => AclOperation::ClusterAction,
            10 => AclOperation::DescribeConfigs,
            11 => AclOperation::AlterConfigs,
            12 => AclOperation::IdempotentWrite,
            13 => AclOperation::CreateTokens,
            14 => AclOperation::DescribeTokens,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            AclOperation::Any => "ANY",
            AclOperation::All => "ALL",
            AclOperation::Read => "READ",
            AclOperation::Write => "WRITE",
            AclOperation::Create => "CREATE",
            AclOperation::Delete => "DELETE",
            AclOperation::Alter => "ALTER",
            AclOperation::Describe => "DESCRIBE",
            AclOperation::ClusterAction => "CLUSTER_ACTION",
            AclOperation::DescribeConfigs => "DESCRIBE_CONFIGS",
            AclOperation::AlterConfigs => "ALTER_CONFIGS",
            AclOperation::IdempotentWrite => "IDEMPOTENT_WRITE",
            AclOperation::CreateTokens => "CREATE_TOKENS",
            AclOperation::DescribeTokens => "DESCRIBE_TOKENS",
        }
    }

    /// Whether an ALLOW binding for `self` allows `requested` (ALL, itself, or an implied
    /// DESCRIBE / DESCRIBE_CONFIGS).
    fn allows(self, requested: AclOperation) -> bool {
        self == AclOperation::All
            || self == requested
            || (requested == AclOperation::Describe
                && matches!(
                    self,
                    AclOperation::Read
                        | AclOperation::Write
                        | AclOperation::Delete
                        | AclOperation::Alter
                ))
            || (requested == AclOperation::DescribeConfigs && self == AclOperation::AlterConfigs)
    }

    /// Whether a DENY binding for `self` denies `requested` (ALL or itself only).
    fn denies(self, requested: AclOperation) -> bool {
        self == AclOperation::All || self == requested
    }
}

/// Kafka's `AclPermissionType` codes. ANY exists only in filters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum AclPermission {
    Any,
    Deny,
    Allow,
}

impl AclPermission {
    pub fn code(self) -> i8 {
        match self {
            AclPermission::Any => 1,
            AclPermission::Deny => 2,
            AclPermission::Allow => 3,
        }
    }

    pub fn from_code(code: i8) -> Option<AclPermission> {
        Some(match code {
            1 => AclPermission::Any,
            2 => AclPermission::Deny,
            3 => AclPermission::Allow,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            AclPermission::Any => "ANY",
            AclPermission::Deny => "DENY",
            AclPermission::Allow => "ALLOW",
        }
    }
}

/// The only name a CLUSTER resource has.
pub const CLUSTER_RESOURCE_NAME: &str = "kafka-cluster";
/// The resource name (LITERAL) and principal/host that match everything.
pub const WILDCARD: &str = "*";
pub const WILDCARD_PRINCIPAL: &str = "User:*";

/// One ACL: who may (or may not) do what to which resources, from where.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AclBinding {
    pub resource_type: ResourceType,
    pub resource_name: String,
    pub pattern_type: PatternType,
    pub principal: String,
    pub host: String,
    pub operation: AclOperation,
    pub permission: AclPermission,
}

impl fmt::Display for AclBinding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "(principal={}, host={}, operation={}, permissionType={}) on {}:{}:{}",
            self.principal,
            self.host,
            self.operation.name(),
            self.permission.name(),
            self.resource_type.name(),
            self.pattern_type.name(),
            self.resource_name
        )
    }
}

impl AclBinding {
    /// Why Kafka would refuse to store this binding (CreateAcls' INVALID_REQUEST), if it would.
    pub fn invalid_reason(&self) -> Option<String> {
        if matches!(self.resource_type, ResourceType::Any) {
            return Some("resource type ANY is only valid in a filter".into());
        }
        if !matches!(
            self.pattern_type,
            PatternType::Literal | PatternType::Prefixed
        ) {
            return Some(format!(
                "pattern type {} is only valid in a filter",
                self.pattern_type.name()
            ));
        }
        if matches!(self.operation, AclOperation::Any) {
            return Some("operation ANY is only valid in a filter".into());
        }
        if matches!(self.permission, AclPermission::Any) {
            return Some("permission type ANY is only valid in a filter".into());
        }
        if self.resource_name.is_empty() {
            return Some("the resource name must not be empty".into());
        }
        if self.resource_type == ResourceType::Cluster
            && self.resource_name != CLUSTER_RESOURCE_NAME
        {
            return Some(format!(
                "the only CLUSTER resource is '{CLUSTER_RESOURCE_NAME}'"
            ));
        }
        if self.pattern_type == PatternType::Prefixed && self.resource_name == WILDCARD {
            return Some("a PREFIXED pattern cannot be the wildcard '*'".into());
        }
        match self.principal.split_once(':') {
            Some((kind, name)) if !kind.is_empty() && !name.is_empty() => {}
            _ => {
                return Some(format!(
                    "principal '{}' is not of the form Type:name",
                    self.principal
                ))
            }
        }
        if self.host.is_empty() {
            return Some("the host must not be empty (use '*' for any host)".into());
        }
        None
    }

    /// Whether this binding's pattern covers the resource `(resource_type, name)`.
    pub fn covers(&self, resource_type: ResourceType, name: &str) -> bool {
        self.resource_type == resource_type
            && match self.pattern_type {
                PatternType::Literal => {
                    self.resource_name == name || self.resource_name == WILDCARD
                }
                PatternType::Prefixed => name.starts_with(&self.resource_name),
                PatternType::Any | PatternType::Match => false,
            }
    }
}

/// What DescribeAcls and DeleteAcls select. `None` fields match anything; ANY codes match
/// anything; pattern type MATCH selects the bindings that would apply to the named resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AclFilter {
    pub resource_type: ResourceType,
    pub resource_name: Option<String>,
    pub pattern_type: PatternType,
    pub principal: Option<String>,
    pub host: Option<String>,
    pub operation: AclOperation,
    pub permission: AclPermission,
}

impl AclFilter {
    pub fn matches(&self, b: &AclBinding) -> bool {
        let resource_type =
            self.resource_type == ResourceType::Any || self.resource_type == b.resource_type;
        let pattern = match (self.pattern_type, &self.resource_name) {
            (PatternType::Any, None) => true,
            (PatternType::Any, Some(name)) => &b.resource_name == name,
            (PatternType::Match, None) => true,
            (PatternType::Match, Some(name)) => match b.pattern_type {
                PatternType::Literal => &b.resource_name == name || b.resource_name == WILDCARD,
                PatternType::Prefixed => name.starts_with(&b.resource_name),
                _ => false,
            },
            (p, name) => p == b.pattern_type && name.as_ref().is_none_or(|n| n == &b.resource_name),
        };
        let principal = self.principal.as_ref().is_none_or(|p| p == &b.principal);
        let host = self.host.as_ref().is_none_or(|h| h == &b.host);
        let operation = self.operation == AclOperation::Any || self.operation == b.operation;
        let permission = self.permission == AclPermission::Any || self.permission == b.permission;
        resource_type && pattern && principal && host && operation && permission
    }
}

/// How the broker answers authorization questions: the settings plus the bindings, indexed.
#[derive(Debug, Clone, Default)]
pub struct AclIndex {
    /// Every binding, as in the metadata image (compared to know when to rebuild).
    bindings: BTreeMap<Uuid, AclBinding>,
    /// LITERAL bindings by (resource type, name), the wildcard `*` included as a name.
    literal: HashMap<(ResourceType, String), Vec<AclBinding>>,
    /// PREFIXED bindings by resource type, then prefix.
    prefixed: HashMap<ResourceType, BTreeMap<String, Vec<AclBinding>>>,
}

/// The outcome of one check, with the binding that decided it (for the audit log).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allowed(Reason),
    Denied(Reason),
}

impl Decision {
    pub fn is_allowed(&self) -> bool {
        matches!(self, Decision::Allowed(_))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    SuperUser,
    /// No binding applies to the resource; `allow.everyone.if.no.acl.found` decided.
    NoAclFound,
    /// This binding matched.
    Binding(AclBinding),
    /// Bindings exist for the resource, none allows this principal the operation.
    NoMatchingAllow,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::SuperUser => f.write_str("super user"),
            Reason::NoAclFound => f.write_str("no ACL found"),
            Reason::Binding(b) => write!(f, "ACL {b}"),
            Reason::NoMatchingAllow => f.write_str("no ALLOW ACL matched"),
        }
    }
}

impl AclIndex {
    pub fn new(bindings: &BTreeMap<Uuid, AclBinding>) -> AclIndex {
        let mut index = AclIndex {
            bindings: bindings.clone(),
            ..AclIndex::default()
        };
        for b in bindings.values() {
            match b.pattern_type {
                PatternType::Literal => index
                    .literal
                    .entry((b.resource_type, b.resource_name.clone()))
                    .or_default()
                    .push(b.clone()),
                PatternType::Prefixed => index
                    .prefixed
                    .entry(b.resource_type)
                    .or_default()
                    .entry(b.resource_name.clone())
                    .or_default()
                    .push(b.clone()),
                PatternType::Any | PatternType::Match => {}
            }
        }
        index
    }

    /// Whether this index was built from exactly `bindings`.
    pub fn is_built_from(&self, bindings: &BTreeMap<Uuid, AclBinding>) -> bool {
        &self.bindings == bindings
    }

    pub fn is_empty(&self) -> bool {
        self.bindings.is_empty()
    }

    /// Every binding covering the resource, whoever it names.
    fn covering<'a>(
        &'a self,
        resource_type: ResourceType,
        name: &'a str,
    ) -> impl Iterator<Item = &'a AclBinding> + 'a {
        let exact = self
            .literal
            .get(&(resource_type, name.to_owned()))
            .into_iter()
            .flatten();
        let wildcard = (name != WILDCARD)
            .then(|| self.literal.get(&(resource_type, WILDCARD.to_owned())))
            .flatten()
            .into_iter()
            .flatten();
        let prefixed = self
            .prefixed
            .get(&resource_type)
            .into_iter()
            .flat_map(move |by_prefix| {
                // Every prefix of `name` (at char boundaries) that has bindings.
                name.char_indices()
                    .map(|(i, c)| i + c.len_utf8())
                    .filter_map(move |end| by_prefix.get(&name[..end]))
                    .flatten()
            });
        exact.chain(wildcard).chain(prefixed)
    }

    /// Decides one request: may `principal`, connecting from `host`, do `operation` to the
    /// resource `(resource_type, name)`?
    pub fn authorize(
        &self,
        settings: &AuthorizerSettings,
        principal: &str,
        host: &str,
        operation: AclOperation,
        resource_type: ResourceType,
        name: &str,
    ) -> Decision {
        if settings.super_users.iter().any(|s| s == principal) {
            return Decision::Allowed(Reason::SuperUser);
        }
        let mut any_binding = false;
        let mut allow: Option<&AclBinding> = None;
        for b in self.covering(resource_type, name) {
            any_binding = true;
            let applies = (b.principal == principal || b.principal == WILDCARD_PRINCIPAL)
                && (b.host == host || b.host == WILDCARD);
            if !applies {
                continue;
            }
            match b.permission {
                AclPermission::Deny if b.operation.denies(operation) => {
                    return Decision::Denied(Reason::Binding(b.clone()))
                }
                AclPermission::Allow if allow.is_none() && b.operation.allows(operation) => {
                    allow = Some(b)
                }
                _ => {}
            }
        }
        match allow {
            Some(b) => Decision::Allowed(Reason::Binding(b.clone())),
            None if !any_binding && settings.allow_everyone_if_no_acl_found => {
                Decision::Allowed(Reason::NoAclFound)
            }
            None if !any_binding => Decision::Denied(Reason::NoAclFound),
            None => Decision::Denied(Reason::NoMatchingAllow),
        }
    }

    /// Whether `principal` may do `operation` to at least one resource of `resource_type`
    /// (Kafka's `authorizeByResourceType`, used for idempotent producers and CreateTopics by
    /// prefix): an ALLOW on some pattern that no DENY of a wider or equal pattern cancels.
    pub fn authorize_any(
        &self,
        settings: &AuthorizerSettings,
        principal: &str,
        host: &str,
        operation: AclOperation,
        resource_type: ResourceType,
    ) -> bool {
        if settings.super_users.iter().any(|s| s == principal) {
            return true;
        }
        let applies = |b: &AclBinding| {
            b.resource_type == resource_type
                && (b.principal == principal || b.principal == WILDCARD_PRINCIPAL)
                && (b.host == host || b.host == WILDCARD)
        };
        let denied = |b: &AclBinding| {
            self.bindings.values().any(|d| {
                applies(d)
                    && d.permission == AclPermission::Deny
                    && d.operation.denies(operation)
                    && match d.pattern_type {
                        PatternType::Literal => {
                            d.resource_name == WILDCARD
                                || (b.pattern_type == PatternType::Literal
                                    && d.resource_name == b.resource_name)
                        }
                        PatternType::Prefixed => b.resource_name.starts_with(&d.resource_name),
                        _ => false,
                    }
            })
        };
        self.bindings.values().any(|b| {
            applies(b)
                && b.permission == AclPermission::Allow
                && b.operation.allows(operation)
                && !denied(b)
        })
    }
}

/// `super.users` and `allow.everyone.if.no.acl.found`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthorizerSettings {
    pub super_users: Vec<String>,
    pub allow_everyone_if_no_acl_found: bool,
}

impl AuthorizerSettings {
    /// Parses Kafka's `super.users` (principals separated by `;`).
    pub fn parse_super_users(value: &str) -> Vec<String> {
        value
            .split(';')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    }
}

#[cfg(test)]
mod tests;
