//! `strom acl` and `strom user`: ACLs as `kafka-acls.sh` manages them (add, remove, list,
//! with its flags) and SCRAM users as `kafka-configs.sh --entity-type users` does, over
//! strom-client (which speaks TLS and SASL with `--command-config`).

use anyhow::{bail, Result};
use serde_json::json;
use strom_client::{acl_code, Acl, AclFilter, Admin};

use crate::output::{block_on, ConnArgs, Table};

#[derive(Debug, clap::Args)]
pub(crate) struct AclArgs {
    #[command(flatten)]
    conn: ConnArgs,
    #[command(subcommand)]
    command: AclCmd,
}

#[derive(Debug, clap::Subcommand)]
enum AclCmd {
    /// Add ACLs: each principal and operation on the resource.
    Add(AclSpec),
    /// Remove the ACLs matching the flags (all of them for a resource without
    /// --operation/--principal).
    Remove(AclSpec),
    /// List ACLs (every ACL without a resource; --resource-pattern-type match lists what
    /// applies to a resource).
    List(AclSpec),
}

/// kafka-acls.sh's flags.
#[derive(Debug, clap::Args)]
struct AclSpec {
    #[arg(long)]
    topic: Option<String>,
    #[arg(long)]
    group: Option<String>,
    #[arg(long = "transactional-id")]
    transactional_id: Option<String>,
    #[arg(long)]
    cluster: bool,
    /// literal, prefixed (add, remove, list), match or any (remove, list).
    #[arg(long = "resource-pattern-type")]
    pattern: Option<String>,
    #[arg(long = "allow-principal")]
    allow: Vec<String>,
    #[arg(long = "deny-principal")]
    deny: Vec<String>,
    /// The principal to list or remove ACLs of.
    #[arg(long)]
    principal: Option<String>,
    /// READ, WRITE, CREATE, DELETE, ALTER, DESCRIBE, CLUSTER_ACTION, DESCRIBE_CONFIGS,
    /// ALTER_CONFIGS, IDEMPOTENT_WRITE, ALL (repeatable).
    #[arg(long)]
    operation: Vec<String>,
    #[arg(long, default_value = "*")]
    host: String,
}

impl AclSpec {
    /// The resource: (type, name); `None` when no resource flag is given.
    fn resource(&self) -> Result<Option<(&'static str, String)>> {
        let given: Vec<(&'static str, String)> = [
            self.topic.clone().map(|t| ("TOPIC", t)),
            self.group.clone().map(|g| ("GROUP", g)),
            self.transactional_id
                .clone()
                .map(|t| ("TRANSACTIONAL_ID", t)),
            self.cluster
                .then(|| ("CLUSTER", "kafka-cluster".to_owned())),
        ]
        .into_iter()
        .flatten()
        .collect();
        match given.len() {
            0 => Ok(None),
            1 => Ok(given.into_iter().next()),
            _ => bail!("give one resource: --topic, --group, --transactional-id or --cluster"),
        }
    }

    fn pattern(&self, default: &'static str) -> &str {
        self.pattern.as_deref().unwrap_or(default)
    }

    /// The filters selecting what this spec names (remove, list).
    fn filters(&self) -> Result<Vec<AclFilter>> {
        let (resource_type, name) = match self.resource()? {
            Some((t, n)) => (acl_code("resource type", t)?, Some(n)),
            None => (1, None),
        };
        let pattern_type = acl_code(
            "pattern type",
            self.pattern(if name.is_some() { "literal" } else { "any" }),
        )?;
        let operations: Vec<i8> = if self.operation.is_empty() {
            vec![1]
        } else {
            self.operation
                .iter()
                .map(|o| acl_code("operation", o))
                .collect::<std::result::Result<_, _>>()?
        };
        let principals: Vec<(Option<String>, i8)> = {
            let mut p: Vec<(Option<String>, i8)> = self
                .allow
                .iter()
                .map(|a| (Some(a.clone()), 3))
                .chain(self.deny.iter().map(|d| (Some(d.clone()), 2)))
                .collect();
            if p.is_empty() {
                p.push((self.principal.clone(), 1));
            }
            p
        };
        let host = (self.host != "*").then(|| self.host.clone());
        Ok(principals
            .into_iter()
            .flat_map(|(principal, permission)| {
                let name = name.clone();
                let host = host.clone();
                operations.iter().map(move |op| AclFilter {
                    resource_type,
                    resource_name: name.clone(),
                    pattern_type,
                    principal: principal.clone(),
                    host: host.clone(),
                    operation: *op,
                    permission,
                })
            })
            .collect())
    }

    /// The ACLs this spec adds.
    fn acls(&self) -> Result<Vec<Acl>> {
        let Some((resource_type, name)) = self.resource()? else {
            bail!("add needs a resource: --topic, --group, --transactional-id or --cluster");
        };
        if self.operation.is_empty() {
            bail!("add needs at least one --operation");
        }
        if self.allow.is_empty() && self.deny.is_empty() {
            bail!("add needs --allow-principal or --deny-principal");
        }
        let pattern = self.pattern("literal").to_ascii_uppercase();
        let pattern: &'static str = match pattern.as_str() {
            "LITERAL" => "LITERAL",
            "PREFIXED" => "PREFIXED",
            other => bail!("ACLs are added LITERAL or PREFIXED, not {other}"),
        };
        let mut acls = Vec::new();
        for (principals, permission) in [(&self.allow, "ALLOW"), (&self.deny, "DENY")] {
            for principal in principals {
                for op in &self.operation {
                    let operation = operation_name(op)?;
                    acls.push(Acl {
                        resource_type,
                        resource_name: name.clone(),
                        pattern_type: pattern,
                        principal: principal.clone(),
                        host: self.host.clone(),
                        operation,
                        permission,
                    });
                }
            }
        }
        Ok(acls)
    }
}

/// Kafka's name of an operation given in any case (`Read`, `describe-configs`).
fn operation_name(op: &str) -> Result<&'static str> {
    const NAMES: [&str; 12] = [
        "ALL",
        "READ",
        "WRITE",
        "CREATE",
        "DELETE",
        "ALTER",
        "DESCRIBE",
        "CLUSTER_ACTION",
        "DESCRIBE_CONFIGS",
        "ALTER_CONFIGS",
        "IDEMPOTENT_WRITE",
        "CREATE_TOKENS",
    ];
    let want = op.trim().to_ascii_uppercase().replace('-', "_");
    NAMES
        .iter()
        .find(|n| **n == want)
        .copied()
        .ok_or_else(|| anyhow::anyhow!("unknown operation '{op}'"))
}

fn acl_table(acls: &[Acl]) -> Table {
    let mut t = Table::new(&[
        "RESOURCE-TYPE",
        "NAME",
        "PATTERN",
        "PRINCIPAL",
        "HOST",
        "OPERATION",
        "PERMISSION",
    ]);
    for a in acls {
        t.row(vec![
            json!(a.resource_type),
            json!(a.resource_name),
            json!(a.pattern_type),
            json!(a.principal),
            json!(a.host),
            json!(a.operation),
            json!(a.permission),
        ]);
    }
    t
}

pub(crate) fn run_acl(args: AclArgs) -> Result<()> {
    block_on(async move {
        let admin = Admin::new(args.conn.client_config()?).await?;
        let format = args.conn.output;
        match args.command {
            AclCmd::Add(spec) => {
                let acls = spec.acls()?;
                admin.create_acls(&acls).await?;
                acl_table(&acls).print(format);
            }
            AclCmd::Remove(spec) => {
                if spec.resource()?.is_none() && spec.principal.is_none() {
                    bail!("remove needs a resource or --principal (refusing to remove every ACL)");
                }
                let removed = admin.delete_acls(&spec.filters()?).await?;
                acl_table(&removed).print(format);
            }
            AclCmd::List(spec) => {
                let mut all = Vec::new();
                for f in spec.filters()? {
                    all.extend(admin.describe_acls(&f).await?);
                }
                all.sort();
                all.dedup();
                acl_table(&all).print(format);
            }
        }
        Ok(())
    })
}

#[derive(Debug, clap::Args)]
pub(crate) struct UserArgs {
    #[command(flatten)]
    conn: ConnArgs,
    #[command(subcommand)]
    command: UserCmd,
}

#[derive(Debug, clap::Subcommand)]
enum UserCmd {
    /// Set a user's SCRAM credential (the password is salted and hashed here; only the
    /// keys reach the broker).
    Set {
        user: String,
        #[arg(long)]
        password: String,
        #[arg(long, default_value = "SCRAM-SHA-256")]
        mechanism: String,
        #[arg(long, default_value_t = 8192)]
        iterations: i32,
    },
    /// Delete a user's SCRAM credential for one mechanism.
    Delete {
        user: String,
        #[arg(long, default_value = "SCRAM-SHA-256")]
        mechanism: String,
    },
    /// List users with SCRAM credentials (all, or those named).
    List { users: Vec<String> },
}

pub(crate) fn run_user(args: UserArgs) -> Result<()> {
    block_on(async move {
        let admin = Admin::new(args.conn.client_config()?).await?;
        let format = args.conn.output;
        match args.command {
            UserCmd::Set {
                user,
                password,
                mechanism,
                iterations,
            } => {
                admin
                    .set_scram_credential(&user, &mechanism, &password, iterations)
                    .await?;
                let mut t = Table::new(&["USER", "MECHANISM", "STATUS"]);
                t.row(vec![
                    json!(user),
                    json!(mechanism.to_ascii_uppercase()),
                    json!("set"),
                ]);
                t.print(format);
            }
            UserCmd::Delete { user, mechanism } => {
                admin.delete_scram_credential(&user, &mechanism).await?;
                let mut t = Table::new(&["USER", "MECHANISM", "STATUS"]);
                t.row(vec![
                    json!(user),
                    json!(mechanism.to_ascii_uppercase()),
                    json!("deleted"),
                ]);
                t.print(format);
            }
            UserCmd::List { users } => {
                let mut t = Table::new(&["USER", "MECHANISM", "ITERATIONS"]);
                for u in admin.describe_scram_users(&users).await? {
                    for (mechanism, iterations) in u.credentials {
                        t.row(vec![json!(u.user), json!(mechanism), json!(iterations)]);
                    }
                }
                t.print(format);
            }
        }
        Ok(())
    })
}
