//! `strom config get|set`: describe and incrementally alter topic or broker configs.

use anyhow::{bail, Result};
use serde_json::json;
use strom_client::admin::{AlterOp, ConfigResource};
use strom_client::Admin;

use crate::output::{block_on, split_kv, ConnArgs, Table};

#[derive(Debug, clap::Args)]
pub(crate) struct ConfigArgs {
    #[command(flatten)]
    conn: ConnArgs,
    #[command(subcommand)]
    command: ConfigCmd,
}

#[derive(Debug, clap::Args)]
struct Target {
    /// A topic's configs.
    #[arg(long, conflicts_with = "broker")]
    topic: Option<String>,
    /// A broker's configs, by node id.
    #[arg(long)]
    broker: Option<i32>,
}

impl Target {
    fn resource(&self) -> Result<ConfigResource> {
        match (&self.topic, self.broker) {
            (Some(t), None) => Ok(ConfigResource::Topic(t.clone())),
            (None, Some(b)) => Ok(ConfigResource::Broker(b)),
            _ => bail!("give --topic NAME or --broker ID"),
        }
    }
}

#[derive(Debug, clap::Subcommand)]
enum ConfigCmd {
    /// Show configs (all, or only the keys given) with their value and source.
    Get {
        #[command(flatten)]
        target: Target,
        keys: Vec<String>,
    },
    /// Set (KEY=VALUE) or remove (--delete KEY) config overrides.
    Set {
        #[command(flatten)]
        target: Target,
        #[arg(value_name = "KEY=VALUE")]
        pairs: Vec<String>,
        #[arg(long = "delete", value_name = "KEY")]
        delete: Vec<String>,
    },
}

pub(crate) fn run(args: ConfigArgs) -> Result<()> {
    block_on(async move {
        let admin = Admin::new(args.conn.client_config()?).await?;
        let format = args.conn.output;
        match args.command {
            ConfigCmd::Get { target, keys } => {
                let keys = (!keys.is_empty()).then_some(keys);
                let entries = admin
                    .describe_configs(&target.resource()?, keys.as_deref())
                    .await?;
                let mut table = Table::new(&["NAME", "VALUE", "SOURCE", "READ-ONLY"]);
                for e in entries {
                    let value = if e.is_sensitive {
                        json!("(sensitive)")
                    } else {
                        json!(e.value)
                    };
                    table.row(vec![
                        json!(e.name),
                        value,
                        json!(e.source),
                        json!(e.read_only),
                    ]);
                }
                table.print(format);
            }
            ConfigCmd::Set {
                target,
                pairs,
                delete,
            } => {
                if pairs.is_empty() && delete.is_empty() {
                    bail!("nothing to set: give KEY=VALUE or --delete KEY");
                }
                let mut ops = Vec::new();
                for p in &pairs {
                    let (k, v) = split_kv(p)?;
                    ops.push((k, AlterOp::Set, Some(v)));
                }
                ops.extend(delete.into_iter().map(|k| (k, AlterOp::Delete, None)));
                admin.alter_configs(&target.resource()?, &ops).await?;
                let mut table = Table::new(&["NAME", "STATUS"]);
                for (k, op, _) in &ops {
                    let status = if *op == AlterOp::Set {
                        "set"
                    } else {
                        "deleted"
                    };
                    table.row(vec![json!(k), json!(status)]);
                }
                table.print(format);
            }
        }
        Ok(())
    })
}
