//! The admin client's security calls: ACLs (CreateAcls, DescribeAcls, DeleteAcls, as
//! `kafka-acls.sh`) and SCRAM users (AlterUserScramCredentials and
//! DescribeUserScramCredentials, as `kafka-configs.sh --entity-type users`). ACL fields carry
//! Kafka's codes and names (`TOPIC`, `PREFIXED`, `READ`, `ALLOW`, ...).

use strom_protocol::kafka_protocol::messages::alter_user_scram_credentials_request::{
    ScramCredentialDeletion, ScramCredentialUpsertion,
};
use strom_protocol::kafka_protocol::messages::create_acls_request::AclCreation;
use strom_protocol::kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use strom_protocol::kafka_protocol::messages::describe_user_scram_credentials_request::UserName;
use strom_protocol::kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, ApiKey, CreateAclsRequest, DeleteAclsRequest,
    DescribeAclsRequest, DescribeUserScramCredentialsRequest,
};

use crate::admin::Admin;
use crate::error::{Error, Result};
use crate::util::sb;

/// Kafka's ACL enum names by code: resource types, pattern types, operations, permissions.
const RESOURCE_TYPES: &[(i8, &str)] = &[
    (1, "ANY"),
    (2, "TOPIC"),
    (3, "GROUP"),
    (4, "CLUSTER"),
    (5, "TRANSACTIONAL_ID"),
    (6, "DELEGATION_TOKEN"),
    (7, "USER"),
];
const PATTERN_TYPES: &[(i8, &str)] = &[(1, "ANY"), (2, "MATCH"), (3, "LITERAL"), (4, "PREFIXED")];
const OPERATIONS: &[(i8, &str)] = &[
    (1, "ANY"),
    (2, "ALL"),
    (3, "READ"),
    (4, "WRITE"),
    (5, "CREATE"),
    (6, "DELETE"),
    (7, "ALTER"),
    (8, "DESCRIBE"),
    (9, "CLUSTER_ACTION"),
    (10, "DESCRIBE_CONFIGS"),
    (11, "ALTER_CONFIGS"),
    (12, "IDEMPOTENT_WRITE"),
    (13, "CREATE_TOKENS"),
    (14, "DESCRIBE_TOKENS"),
];
const PERMISSIONS: &[(i8, &str)] = &[(1, "ANY"), (2, "DENY"), (3, "ALLOW")];

/// The code of an ACL enum `name` (case and `-`/`_` insensitive) in `table`.
pub fn acl_code(table: &str, name: &str) -> Result<i8> {
    let list = match table {
        "resource type" => RESOURCE_TYPES,
        "pattern type" => PATTERN_TYPES,
        "operation" => OPERATIONS,
        _ => PERMISSIONS,
    };
    let want = name.trim().to_ascii_uppercase().replace('-', "_");
    list.iter()
        .find(|(_, n)| *n == want)
        .map(|(c, _)| *c)
        .ok_or_else(|| {
            Error::InvalidArgument(format!(
                "unknown {table} '{name}' (one of {})",
                list.iter().map(|(_, n)| *n).collect::<Vec<_>>().join(", ")
            ))
        })
}

fn name_of(list: &[(i8, &'static str)], code: i8) -> &'static str {
    list.iter()
        .find(|(c, _)| *c == code)
        .map_or("UNKNOWN", |(_, n)| n)
}

/// One ACL, with Kafka's enum names.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Acl {
    pub resource_type: &'static str,
    pub resource_name: String,
    pub pattern_type: &'static str,
    pub principal: String,
    pub host: String,
    pub operation: &'static str,
    pub permission: &'static str,
}

impl Acl {
    fn from_codes(
        (resource_type, resource_name, pattern_type): (i8, String, i8),
        principal: String,
        host: String,
        operation: i8,
        permission: i8,
    ) -> Acl {
        Acl {
            resource_type: name_of(RESOURCE_TYPES, resource_type),
            resource_name,
            pattern_type: name_of(PATTERN_TYPES, pattern_type),
            principal,
            host,
            operation: name_of(OPERATIONS, operation),
            permission: name_of(PERMISSIONS, permission),
        }
    }
}

/// A filter: `None` names match anything; ANY codes match anything; MATCH patterns select
/// the ACLs that apply to the named resource.
#[derive(Debug, Clone)]
pub struct AclFilter {
    pub resource_type: i8,
    pub resource_name: Option<String>,
    pub pattern_type: i8,
    pub principal: Option<String>,
    pub host: Option<String>,
    pub operation: i8,
    pub permission: i8,
}

impl Default for AclFilter {
    /// Everything.
    fn default() -> Self {
        AclFilter {
            resource_type: 1,
            resource_name: None,
            pattern_type: 1,
            principal: None,
            host: None,
            operation: 1,
            permission: 1,
        }
    }
}

/// A SCRAM user as DescribeUserScramCredentials lists it: mechanisms and iterations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScramUser {
    pub user: String,
    pub credentials: Vec<(&'static str, i32)>,
}

impl Admin {
    /// CreateAcls: every binding, or the first refusal.
    pub async fn create_acls(&self, acls: &[Acl]) -> Result<()> {
        let creations = acls
            .iter()
            .map(|a| {
                let mut c = AclCreation::default();
                c.resource_type = acl_code("resource type", a.resource_type)?;
                c.resource_name = sb(&a.resource_name);
                c.resource_pattern_type = acl_code("pattern type", a.pattern_type)?;
                c.principal = sb(&a.principal);
                c.host = sb(&a.host);
                c.operation = acl_code("operation", a.operation)?;
                c.permission_type = acl_code("permission", a.permission)?;
                Ok(c)
            })
            .collect::<Result<Vec<_>>>()?;
        let r = self
            .client()
            .send(None, ApiKey::CreateAcls, |_| {
                CreateAclsRequest::default().with_creations(creations.clone())
            })
            .await?;
        for (acl, result) in acls.iter().zip(&r.results) {
            Error::check(result.error_code, || {
                format!(
                    "CreateAcls {} {} on {}:{}: {}",
                    acl.permission,
                    acl.operation,
                    acl.resource_type,
                    acl.resource_name,
                    result.error_message.as_deref().unwrap_or_default()
                )
            })?;
        }
        Ok(())
    }

    /// DescribeAcls: the ACLs a filter matches.
    pub async fn describe_acls(&self, filter: &AclFilter) -> Result<Vec<Acl>> {
        let r = self
            .client()
            .send(None, ApiKey::DescribeAcls, |_| {
                let mut req = DescribeAclsRequest::default();
                req.resource_type_filter = filter.resource_type;
                req.resource_name_filter = filter.resource_name.as_deref().map(sb);
                req.pattern_type_filter = filter.pattern_type;
                req.principal_filter = filter.principal.as_deref().map(sb);
                req.host_filter = filter.host.as_deref().map(sb);
                req.operation = filter.operation;
                req.permission_type = filter.permission;
                req
            })
            .await?;
        Error::check(r.error_code, || {
            format!(
                "DescribeAcls: {}",
                r.error_message.as_deref().unwrap_or_default()
            )
        })?;
        let mut acls: Vec<Acl> = r
            .resources
            .into_iter()
            .flat_map(|res| {
                let resource = (
                    res.resource_type,
                    res.resource_name.to_string(),
                    res.pattern_type,
                );
                res.acls.into_iter().map(move |a| {
                    Acl::from_codes(
                        resource.clone(),
                        a.principal.to_string(),
                        a.host.to_string(),
                        a.operation,
                        a.permission_type,
                    )
                })
            })
            .collect();
        acls.sort();
        Ok(acls)
    }

    /// DeleteAcls: removes what each filter matches; the removed ACLs.
    pub async fn delete_acls(&self, filters: &[AclFilter]) -> Result<Vec<Acl>> {
        let wire: Vec<DeleteAclsFilter> = filters
            .iter()
            .map(|f| {
                let mut d = DeleteAclsFilter::default();
                d.resource_type_filter = f.resource_type;
                d.resource_name_filter = f.resource_name.as_deref().map(sb);
                d.pattern_type_filter = f.pattern_type;
                d.principal_filter = f.principal.as_deref().map(sb);
                d.host_filter = f.host.as_deref().map(sb);
                d.operation = f.operation;
                d.permission_type = f.permission;
                d
            })
            .collect();
        let r = self
            .client()
            .send(None, ApiKey::DeleteAcls, |_| {
                DeleteAclsRequest::default().with_filters(wire.clone())
            })
            .await?;
        let mut removed = Vec::new();
        for result in r.filter_results {
            Error::check(result.error_code, || {
                format!(
                    "DeleteAcls: {}",
                    result.error_message.as_deref().unwrap_or_default()
                )
            })?;
            removed.extend(result.matching_acls.into_iter().map(|m| {
                Acl::from_codes(
                    (m.resource_type, m.resource_name.to_string(), m.pattern_type),
                    m.principal.to_string(),
                    m.host.to_string(),
                    m.operation,
                    m.permission_type,
                )
            }));
        }
        removed.sort();
        removed.dedup();
        Ok(removed)
    }

    /// Sets `user`'s SCRAM credential for `mechanism` (SCRAM-SHA-256 or -512): the salted
    /// password is computed here (RFC 5802), so the password never leaves the client.
    pub async fn set_scram_credential(
        &self,
        user: &str,
        mechanism: &str,
        password: &str,
        iterations: i32,
    ) -> Result<()> {
        let (id, alg, len) = scram_mechanism(mechanism)?;
        let salt: [u8; 24] = rand::random();
        let mut salted = vec![0u8; len];
        ring::pbkdf2::derive(
            alg,
            std::num::NonZeroU32::new(iterations.max(1) as u32).expect("at least 1"),
            &salt,
            password.as_bytes(),
            &mut salted,
        );
        let mut u = ScramCredentialUpsertion::default();
        u.name = sb(user);
        u.mechanism = id;
        u.iterations = iterations;
        u.salt = salt.to_vec().into();
        u.salted_password = salted.into();
        self.alter_scram(Vec::new(), vec![u]).await
    }

    /// Deletes `user`'s SCRAM credential for `mechanism`.
    pub async fn delete_scram_credential(&self, user: &str, mechanism: &str) -> Result<()> {
        let (id, _, _) = scram_mechanism(mechanism)?;
        let mut d = ScramCredentialDeletion::default();
        d.name = sb(user);
        d.mechanism = id;
        self.alter_scram(vec![d], Vec::new()).await
    }

    async fn alter_scram(
        &self,
        deletions: Vec<ScramCredentialDeletion>,
        upsertions: Vec<ScramCredentialUpsertion>,
    ) -> Result<()> {
        let r = self
            .client()
            .send(None, ApiKey::AlterUserScramCredentials, |_| {
                AlterUserScramCredentialsRequest::default()
                    .with_deletions(deletions.clone())
                    .with_upsertions(upsertions.clone())
            })
            .await?;
        for result in r.results {
            Error::check(result.error_code, || {
                format!(
                    "user {}: {}",
                    result.user,
                    result.error_message.as_deref().unwrap_or_default()
                )
            })?;
        }
        Ok(())
    }

    /// DescribeUserScramCredentials: `users`, or every user with a credential when empty.
    pub async fn describe_scram_users(&self, users: &[String]) -> Result<Vec<ScramUser>> {
        let r = self
            .client()
            .send(None, ApiKey::DescribeUserScramCredentials, |_| {
                let mut req = DescribeUserScramCredentialsRequest::default();
                req.users = (!users.is_empty()).then(|| {
                    users
                        .iter()
                        .map(|u| UserName::default().with_name(sb(u)))
                        .collect()
                });
                req
            })
            .await?;
        Error::check(r.error_code, || {
            format!(
                "DescribeUserScramCredentials: {}",
                r.error_message.as_deref().unwrap_or_default()
            )
        })?;
        r.results
            .into_iter()
            .map(|u| {
                Error::check(u.error_code, || {
                    format!(
                        "user {}: {}",
                        u.user,
                        u.error_message.as_deref().unwrap_or_default()
                    )
                })?;
                Ok(ScramUser {
                    user: u.user.to_string(),
                    credentials: u
                        .credential_infos
                        .iter()
                        .map(|c| {
                            (
                                if c.mechanism == 2 {
                                    "SCRAM-SHA-512"
                                } else {
                                    "SCRAM-SHA-256"
                                },
                                c.iterations,
                            )
                        })
                        .collect(),
                })
            })
            .collect()
    }
}

fn scram_mechanism(name: &str) -> Result<(i8, ring::pbkdf2::Algorithm, usize)> {
    match name.to_ascii_uppercase().as_str() {
        "SCRAM-SHA-256" => Ok((1, ring::pbkdf2::PBKDF2_HMAC_SHA256, 32)),
        "SCRAM-SHA-512" => Ok((2, ring::pbkdf2::PBKDF2_HMAC_SHA512, 64)),
        other => Err(Error::InvalidArgument(format!(
            "unknown SCRAM mechanism {other} (SCRAM-SHA-256 or SCRAM-SHA-512)"
        ))),
    }
}
