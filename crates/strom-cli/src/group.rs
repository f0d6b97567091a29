//! `strom group list|describe|delete|reset-offsets|status`, like kafka-consumer-groups:
//! describe shows each partition's committed offset, log end offset and lag with its owner;
//! reset-offsets is a dry run unless `--execute`, and needs the group to be empty; status is
//! the broker console's Burrow-style evaluation (OK, WARN, ERR; per partition STOP, STALL,
//! REWIND) over its window of polls.

use std::collections::BTreeMap;

use anyhow::{bail, Result};
use serde_json::json;
use strom_client::{Admin, TopicPartition, EARLIEST, LATEST};

use crate::output::{block_on, ConnArgs, Table};

#[derive(Debug, clap::Args)]
pub(crate) struct GroupArgs {
    #[command(flatten)]
    conn: ConnArgs,
    #[command(subcommand)]
    command: GroupCmd,
}

#[derive(Debug, clap::Subcommand)]
enum GroupCmd {
    /// List consumer groups.
    List,
    /// Per-partition committed offset, log end offset and lag, with the owning member.
    Describe { group: String },
    /// Delete groups (they must have no members).
    Delete {
        #[arg(required = true)]
        groups: Vec<String>,
    },
    /// Move a group's committed offsets (dry run unless --execute).
    ResetOffsets(ResetArgs),
    /// Lag status of every partition, as the broker's lag monitor evaluates it over its
    /// window of polls (Burrow's rules), read from its HTTP listener.
    Status {
        group: String,
        /// The broker's HTTP listener (http.listeners).
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        http: String,
        /// The lag monitor's cluster name (console.cluster.name).
        #[arg(long, default_value = "local")]
        cluster: String,
    },
}

#[derive(Debug, clap::Args)]
struct ResetArgs {
    group: String,
    /// Topic, or TOPIC:P1,P2 for some partitions (repeatable).
    #[arg(long, required_unless_present = "all_topics")]
    topic: Vec<String>,
    /// Every topic the group has committed offsets for.
    #[arg(long = "all-topics")]
    all_topics: bool,
    #[arg(long = "to-earliest", group = "target")]
    to_earliest: bool,
    #[arg(long = "to-latest", group = "target")]
    to_latest: bool,
    #[arg(long = "to-offset", group = "target")]
    to_offset: Option<i64>,
    /// First offset with a timestamp >= this (ms since the epoch).
    #[arg(long = "to-datetime", group = "target")]
    to_datetime: Option<i64>,
    #[arg(long = "shift-by", group = "target", allow_hyphen_values = true)]
    shift_by: Option<i64>,
    /// Apply the change (otherwise only print it).
    #[arg(long)]
    execute: bool,
}

pub(crate) fn run(args: GroupArgs) -> Result<()> {
    if let GroupCmd::Status {
        group,
        http,
        cluster,
    } = &args.command
    {
        // Read from the broker's HTTP listener: no Kafka connection needed.
        let format = args.conn.output;
        return block_on(async {
            status(http, cluster, group).await?.print(format);
            Ok(())
        });
    }
    block_on(async move {
        let admin = Admin::new(args.conn.client_config()?).await?;
        let format = args.conn.output;
        match args.command {
            GroupCmd::List => {
                let mut table = Table::new(&["GROUP", "PROTOCOL-TYPE", "STATE"]);
                for g in admin.list_groups().await? {
                    table.row(vec![
                        json!(g.group_id),
                        json!(g.protocol_type),
                        json!(g.state),
                    ]);
                }
                table.print(format);
            }
            GroupCmd::Describe { group } => describe(&admin, &group).await?.print(format),
            GroupCmd::Delete { groups } => {
                let mut table = Table::new(&["GROUP", "STATUS"]);
                for (g, r) in admin.delete_groups(&groups).await? {
                    r?;
                    table.row(vec![json!(g), json!("deleted")]);
                }
                table.print(format);
            }
            GroupCmd::ResetOffsets(r) => reset(&admin, r).await?.print(format),
            GroupCmd::Status { .. } => {} // answered above, without a Kafka connection
        }
        Ok(())
    })
}

/// The lag monitor's status of `group` (Burrow's `/lag`: every partition), one row per
/// partition, the group's status and total lag in a last row.
async fn status(http: &str, cluster: &str, group: &str) -> Result<Table> {
    use strom_registry::http_client::{request, Method};
    let path = format!("/v3/kafka/{cluster}/consumer/{group}/lag");
    let (code, body) = request(http, Method::GET, &path, None).await.map_err(|e| {
        anyhow::anyhow!("{e} (is the broker's HTTP listener at {http}? --http URL)")
    })?;
    let body: serde_json::Value = serde_json::from_slice(&body)
        .map_err(|e| anyhow::anyhow!("{http}{path}: not a JSON answer ({e})"))?;
    if !code.is_success() {
        let message = body["message"].as_str().unwrap_or("error");
        bail!("{group}: {message} (HTTP {code})");
    }
    let s = &body["status"];
    let mut table = Table::new(&[
        "TOPIC",
        "PARTITION",
        "STATUS",
        "LAG",
        "OFFSET",
        "OWNER",
        "COMPLETE",
    ]);
    for p in s["partitions"].as_array().into_iter().flatten() {
        table.row(vec![
            p["topic"].clone(),
            p["partition"].clone(),
            p["status"].clone(),
            p["current_lag"].clone(),
            p["end"]["offset"].clone(),
            p["owner"].clone(),
            p["complete"].clone(),
        ]);
    }
    table.row(vec![
        json!(format!("(group {group})")),
        json!(""),
        s["status"].clone(),
        s["totallag"].clone(),
        json!(""),
        json!(""),
        s["complete"].clone(),
    ]);
    Ok(table)
}

async fn describe(admin: &Admin, group: &str) -> Result<Table> {
    // DescribeGroups answers GROUP_ID_NOT_FOUND for KIP-848 consumer groups: their offsets and
    // lag are still shown, without member columns.
    let members = match admin.describe_groups(&[group.to_owned()]).await {
        Ok(desc) => {
            let Some(d) = desc.into_iter().next() else {
                bail!("GROUP_ID_NOT_FOUND: group '{group}'");
            };
            (d.state != "Dead").then_some(d.members)
        }
        Err(e) if e.code() == Some(strom_client::KafkaCode::GroupIdNotFound) => None,
        Err(e) => return Err(e.into()),
    };
    let committed = admin.list_group_offsets(group).await?;
    if members.is_none() && committed.is_empty() {
        bail!("GROUP_ID_NOT_FOUND: group '{group}' does not exist");
    }
    let mut owners: BTreeMap<TopicPartition, (String, String, String)> = BTreeMap::new();
    for m in members.iter().flatten() {
        for tp in &m.assignment {
            owners.insert(
                tp.clone(),
                (
                    m.member_id.clone(),
                    m.client_host.clone(),
                    m.client_id.clone(),
                ),
            );
        }
    }
    let mut partitions: Vec<TopicPartition> =
        committed.keys().chain(owners.keys()).cloned().collect();
    partitions.sort();
    partitions.dedup();
    let specs: Vec<(TopicPartition, i64)> =
        partitions.iter().map(|tp| (tp.clone(), LATEST)).collect();
    let ends = admin.client().list_offsets(&specs, 0).await?;
    let mut table = Table::new(&[
        "GROUP",
        "TOPIC",
        "PARTITION",
        "CURRENT-OFFSET",
        "LOG-END-OFFSET",
        "LAG",
        "CONSUMER-ID",
        "HOST",
        "CLIENT-ID",
    ]);
    for tp in partitions {
        let current = committed.get(&tp).map(|c| c.offset);
        let end = ends.get(&tp).map(|e| e.0);
        let lag = match (current, end) {
            (Some(c), Some(e)) => Some((e - c).max(0)),
            _ => None,
        };
        let owner = owners.get(&tp);
        table.row(vec![
            json!(group),
            json!(tp.topic),
            json!(tp.partition),
            json!(current),
            json!(end),
            json!(lag),
            json!(owner.map(|o| &o.0)),
            json!(owner.map(|o| &o.1)),
            json!(owner.map(|o| &o.2)),
        ]);
    }
    Ok(table)
}

async fn reset(admin: &Admin, r: ResetArgs) -> Result<Table> {
    let committed = admin.list_group_offsets(&r.group).await?;
    let mut partitions: Vec<TopicPartition> = Vec::new();
    if r.all_topics {
        partitions.extend(committed.keys().cloned());
    }
    for t in &r.topic {
        match t.split_once(':') {
            Some((name, ps)) => {
                for p in ps.split(',') {
                    partitions.push(TopicPartition::new(name, p.trim().parse::<i32>()?));
                }
            }
            None => {
                for info in admin.describe_topics(std::slice::from_ref(t)).await? {
                    partitions.extend(
                        info.partitions
                            .iter()
                            .map(|p| TopicPartition::new(t.clone(), p.partition)),
                    );
                }
            }
        }
    }
    partitions.sort();
    partitions.dedup();
    let spec_of = |spec: i64| -> Vec<(TopicPartition, i64)> {
        partitions.iter().map(|tp| (tp.clone(), spec)).collect()
    };
    let earliest = admin.client().list_offsets(&spec_of(EARLIEST), 0).await?;
    let latest = admin.client().list_offsets(&spec_of(LATEST), 0).await?;
    let by_time = match r.to_datetime {
        Some(ts) => Some(admin.client().list_offsets(&spec_of(ts), 0).await?),
        None => None,
    };
    let mut new = BTreeMap::new();
    for tp in &partitions {
        let (lo, hi) = (earliest[tp].0, latest[tp].0);
        let target = if r.to_earliest {
            lo
        } else if r.to_latest {
            hi
        } else if let Some(o) = r.to_offset {
            o
        } else if let Some(times) = &by_time {
            match times[tp].0 {
                -1 => hi,
                o => o,
            }
        } else if let Some(shift) = r.shift_by {
            committed.get(tp).map_or(lo, |c| c.offset) + shift
        } else {
            bail!("give one of --to-earliest, --to-latest, --to-offset, --to-datetime, --shift-by");
        };
        new.insert(tp.clone(), target.clamp(lo, hi));
    }
    if r.execute {
        admin.alter_group_offsets(&r.group, &new).await?;
    }
    let mut table = Table::new(&["GROUP", "TOPIC", "PARTITION", "NEW-OFFSET", "APPLIED"]);
    for (tp, o) in new {
        table.row(vec![
            json!(r.group),
            json!(tp.topic),
            json!(tp.partition),
            json!(o),
            json!(r.execute),
        ]);
    }
    Ok(table)
}
