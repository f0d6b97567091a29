//! `strom topic create|list|describe|delete|alter`: topic administration through
//! strom-client's admin API (works against any Kafka-protocol broker).

use anyhow::{bail, Result};
use serde_json::json;
use strom_client::admin::{AlterOp, ConfigResource};
use strom_client::{Admin, NewTopic};

use crate::output::{block_on, split_kv, ConnArgs, Table};

#[derive(Debug, clap::Args)]
pub(crate) struct TopicArgs {
    #[command(flatten)]
    conn: ConnArgs,
    #[command(subcommand)]
    command: TopicCmd,
}

#[derive(Debug, clap::Subcommand)]
enum TopicCmd {
    /// Create a topic.
    Create {
        name: String,
        /// Number of partitions (the broker's num.partitions when omitted).
        #[arg(long, short = 'p')]
        partitions: Option<i32>,
        /// Replication factor (the broker's default when omitted).
        #[arg(long = "replication-factor", short = 'r')]
        replication_factor: Option<i16>,
        /// A topic config, e.g. --config retention.ms=3600000 (repeatable).
        #[arg(long = "config", short = 'c', value_name = "KEY=VALUE")]
        configs: Vec<String>,
        /// Succeed quietly when the topic already exists.
        #[arg(long = "if-not-exists")]
        if_not_exists: bool,
    },
    /// List topics.
    List {
        /// Include internal topics (__consumer_offsets, ...).
        #[arg(long)]
        internal: bool,
    },
    /// Describe topics: partitions, leaders, replicas, ISR (all topics when none given).
    Describe { names: Vec<String> },
    /// Delete topics.
    Delete {
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Add partitions or change topic configs.
    Alter {
        name: String,
        /// New total number of partitions.
        #[arg(long, short = 'p')]
        partitions: Option<i32>,
        /// Set a topic config (repeatable).
        #[arg(long = "config", short = 'c', value_name = "KEY=VALUE")]
        configs: Vec<String>,
        /// Remove a topic config override (repeatable).
        #[arg(long = "delete-config", value_name = "KEY")]
        delete_configs: Vec<String>,
    },
}

pub(crate) fn run(args: TopicArgs) -> Result<()> {
    block_on(async move {
        let admin = Admin::new(args.conn.client_config()?).await?;
        let format = args.conn.output;
        match args.command {
            TopicCmd::Create {
                name,
                partitions,
                replication_factor,
                configs,
                if_not_exists,
            } => {
                let mut t = NewTopic::new(
                    name.clone(),
                    partitions.unwrap_or(-1),
                    replication_factor.unwrap_or(-1),
                );
                t.configs = configs.iter().map(|c| split_kv(c)).collect::<Result<_>>()?;
                for (_, r) in admin.create_topics(&[t], false).await? {
                    match r {
                        Err(e)
                            if if_not_exists
                                && e.code()
                                    == Some(strom_client::KafkaCode::TopicAlreadyExists) => {}
                        r => r?,
                    }
                }
                let mut table = Table::new(&["TOPIC", "STATUS"]);
                table.row(vec![json!(name), json!("created")]);
                table.print(format);
            }
            TopicCmd::List { internal } => {
                let mut table = Table::new(&["TOPIC", "PARTITIONS", "TOPIC-ID"]);
                for t in admin.list_topics(internal).await? {
                    table.row(vec![
                        json!(t.name),
                        json!(t.partitions.len()),
                        json!(t.topic_id),
                    ]);
                }
                table.print(format);
            }
            TopicCmd::Describe { names } => {
                let topics = if names.is_empty() {
                    admin.list_topics(false).await?
                } else {
                    admin.describe_topics(&names).await?
                };
                let mut table = Table::new(&[
                    "TOPIC",
                    "PARTITION",
                    "LEADER",
                    "LEADER-EPOCH",
                    "REPLICAS",
                    "ISR",
                ]);
                for t in topics {
                    for p in &t.partitions {
                        table.row(vec![
                            json!(t.name),
                            json!(p.partition),
                            json!(p.leader),
                            json!(p.leader_epoch),
                            json!(p.replicas),
                            json!(p.isr),
                        ]);
                    }
                }
                table.print(format);
            }
            TopicCmd::Delete { names } => {
                let mut table = Table::new(&["TOPIC", "STATUS"]);
                let mut first_err = None;
                for (name, r) in admin.delete_topics(&names).await? {
                    match r {
                        Ok(()) => table.row(vec![json!(name), json!("deleted")]),
                        Err(e) => first_err = first_err.or(Some(e)),
                    }
                }
                if let Some(e) = first_err {
                    return Err(e.into());
                }
                table.print(format);
            }
            TopicCmd::Alter {
                name,
                partitions,
                configs,
                delete_configs,
            } => {
                if partitions.is_none() && configs.is_empty() && delete_configs.is_empty() {
                    bail!("nothing to alter: give --partitions, --config or --delete-config");
                }
                if let Some(n) = partitions {
                    admin.create_partitions(&name, n).await?;
                }
                let mut ops = Vec::new();
                for c in &configs {
                    let (k, v) = split_kv(c)?;
                    ops.push((k, AlterOp::Set, Some(v)));
                }
                ops.extend(
                    delete_configs
                        .into_iter()
                        .map(|k| (k, AlterOp::Delete, None)),
                );
                if !ops.is_empty() {
                    admin
                        .alter_configs(&ConfigResource::Topic(name.clone()), &ops)
                        .await?;
                }
                let mut table = Table::new(&["TOPIC", "STATUS"]);
                table.row(vec![json!(name), json!("altered")]);
                table.print(format);
            }
        }
        Ok(())
    })
}
