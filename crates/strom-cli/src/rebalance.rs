//! `strom cluster rebalance` and `strom cluster decommission`: plan partition moves with the
//! built-in balancer ([`strom_metadata::balancer`]) from the cluster's metadata and the
//! partition sizes its brokers report (DescribeLogDirs), print the plan, and run it step by
//! step through AlterPartitionReassignments, as `kafka-reassign-partitions.sh` would, with the
//! replication throttle set on the moving replicas only, a progress line, and Ctrl-C
//! cancelling what is in flight. After the moves, a preferred election puts the planned
//! leaders in place; the throttles are removed.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::json;
use strom_client::admin::{AlterOp, ConfigResource};
use strom_client::Admin;
use strom_metadata::balancer::{self, Bounds, BrokerInfo, Move, PartitionInfo, Plan};

use crate::output::{ConnArgs, Format};

#[derive(Debug, clap::Args)]
pub(crate) struct RebalanceArgs {
    #[command(flatten)]
    conn: ConnArgs,
    /// Print the plan and change nothing (the default).
    #[arg(long, conflicts_with_all = ["execute", "cancel"])]
    dry_run: bool,
    /// Run the plan.
    #[arg(long)]
    execute: bool,
    /// Cancel every reassignment in flight (and remove replication throttles).
    #[arg(long, conflicts_with = "execute")]
    cancel: bool,
    #[command(flatten)]
    bounds: BoundsArgs,
}

#[derive(Debug, clap::Args)]
pub(crate) struct DecommissionArgs {
    #[command(flatten)]
    conn: ConnArgs,
    /// The broker to empty and unregister.
    #[arg(long)]
    broker: i32,
    /// Print the plan and change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Leave the broker registered once empty.
    #[arg(long)]
    no_unregister: bool,
    #[command(flatten)]
    bounds: BoundsArgs,
}

#[derive(Debug, clap::Args)]
struct BoundsArgs {
    /// Replication throttle while moving, bytes per second (leader and follower side, on
    /// the moving replicas only); none if unset.
    #[arg(long)]
    throttle: Option<i64>,
    /// Most partitions moving at once.
    #[arg(long, default_value_t = 4)]
    max_concurrent_moves: usize,
    /// Most bytes copied per step.
    #[arg(long)]
    max_bytes_per_step: Option<u64>,
}

pub(crate) fn rebalance(args: RebalanceArgs) -> Result<()> {
    crate::output::block_on(async move {
        let admin = Admin::new(args.conn.client_config()?).await?;
        if args.cancel {
            return cancel_all(&admin).await;
        }
        let bounds = Bounds {
            max_concurrent_moves: args.bounds.max_concurrent_moves.max(1),
            max_bytes_per_step: args.bounds.max_bytes_per_step.unwrap_or(u64::MAX),
            balance_leaders: true,
            balance_replicas: true,
        };
        let (brokers, partitions) = model(&admin, None).await?;
        let plan = balancer::plan(&brokers, &partitions, bounds);
        print_plan(&plan, args.conn.output);
        if args.execute && !plan.is_empty() {
            execute(&admin, &plan, args.bounds.throttle, args.conn.output).await?;
        }
        Ok(())
    })
}

pub(crate) fn decommission(args: DecommissionArgs) -> Result<()> {
    crate::output::block_on(async move {
        let admin = Admin::new(args.conn.client_config()?).await?;
        let bounds = Bounds {
            max_concurrent_moves: args.bounds.max_concurrent_moves.max(1),
            max_bytes_per_step: args.bounds.max_bytes_per_step.unwrap_or(u64::MAX),
            balance_leaders: false,
            balance_replicas: false,
        };
        let (brokers, partitions) = model(&admin, Some(args.broker)).await?;
        if !brokers.iter().any(|b| b.id == args.broker) {
            bail!(
                "broker {} is not a live broker of this cluster",
                args.broker
            );
        }
        if brokers.iter().filter(|b| !b.excluded).count() == 0 {
            bail!("no other broker can take the replicas");
        }
        let plan = balancer::plan(&brokers, &partitions, bounds);
        let stuck: Vec<String> = partitions
            .iter()
            .zip(plan_targets(&plan, &partitions))
            .filter(|(_, to)| to.contains(&args.broker))
            .map(|(p, _)| format!("{}-{}", p.topic, p.partition))
            .collect();
        if !stuck.is_empty() {
            bail!(
                "no broker can take the replicas of {} (each other broker already hosts one): add a broker or lower their replication factor first",
                stuck.join(", ")
            );
        }
        print_plan(&plan, args.conn.output);
        if args.dry_run {
            return Ok(());
        }
        if !plan.is_empty() {
            execute(&admin, &plan, args.bounds.throttle, args.conn.output).await?;
        }
        // Wait until the broker's replicas are gone from the metadata everywhere.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let left = hosted_on(&admin, args.broker).await?;
            if left == 0 {
                break;
            }
            if Instant::now() > deadline {
                bail!("broker {} still hosts {left} replicas", args.broker);
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        if args.no_unregister {
            println!("Broker {} hosts no replicas.", args.broker);
        } else {
            admin.unregister_broker(args.broker).await?;
            println!(
                "Broker {} hosts no replicas and is unregistered; it can be stopped.",
                args.broker
            );
        }
        Ok(())
    })
}

/// The target replicas of each partition after `plan`.
fn plan_targets(plan: &Plan, partitions: &[PartitionInfo]) -> Vec<Vec<i32>> {
    let moved: BTreeMap<(&str, i32), &Move> = plan
        .moves()
        .map(|m| ((m.topic.as_str(), m.partition), m))
        .collect();
    partitions
        .iter()
        .map(|p| {
            moved
                .get(&(p.topic.as_str(), p.partition))
                .map_or_else(|| p.replicas.clone(), |m| m.to.clone())
        })
        .collect()
}

async fn hosted_on(admin: &Admin, broker: i32) -> Result<usize> {
    let topics = admin.list_topics(true).await?;
    Ok(topics
        .iter()
        .flat_map(|t| &t.partitions)
        .filter(|p| p.replicas.contains(&broker))
        .count())
}

/// The balancer's view of the cluster: live brokers (`exclude` marked), every partition with
/// its leader's size.
async fn model(
    admin: &Admin,
    exclude: Option<i32>,
) -> Result<(Vec<BrokerInfo>, Vec<PartitionInfo>)> {
    let in_flight = admin.list_partition_reassignments(None).await?;
    if !in_flight.is_empty() {
        bail!(
            "{} partition reassignments are in progress; wait for them or cancel them with `strom cluster rebalance --cancel`",
            in_flight.len()
        );
    }
    let cluster = admin.describe_cluster().await?;
    let brokers: Vec<BrokerInfo> = cluster
        .brokers
        .iter()
        .map(|b| BrokerInfo {
            id: b.node_id,
            rack: b.rack.clone(),
            excluded: Some(b.node_id) == exclude,
        })
        .collect();
    let mut sizes: BTreeMap<(String, i32), i64> = BTreeMap::new();
    for b in &cluster.brokers {
        match admin.partition_sizes(b.node_id).await {
            Ok(s) => {
                for (k, v) in s {
                    let e = sizes.entry(k).or_insert(0);
                    *e = (*e).max(v);
                }
            }
            Err(e) => eprintln!("warning: sizes of broker {}: {e}", b.node_id),
        }
    }
    let topics = admin.list_topics(true).await?;
    let mut partitions = Vec::new();
    for t in &topics {
        for p in &t.partitions {
            partitions.push(PartitionInfo {
                topic: t.name.clone(),
                partition: p.partition,
                replicas: p.replicas.clone(),
                bytes: sizes
                    .get(&(t.name.clone(), p.partition))
                    .copied()
                    .unwrap_or(0)
                    .max(0) as u64,
            });
        }
    }
    Ok((brokers, partitions))
}

fn mb(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

fn print_plan(plan: &Plan, format: Format) {
    if format == Format::Json {
        println!(
            "{}",
            json!({
                "steps": plan.steps,
                "moves": plan.moves().count(),
                "bytes": plan.bytes(),
                "before": plan.before,
                "after": plan.after,
            })
        );
        return;
    }
    if plan.is_empty() {
        println!("The cluster is balanced: nothing to move.");
        return;
    }
    println!(
        "Plan: {} partitions in {} steps, {} to copy.\n",
        plan.moves().count(),
        plan.steps.len(),
        mb(plan.bytes())
    );
    let mut t = crate::output::Table::new(&["PARTITION", "FROM", "TO", "COPIES", "STEP"]);
    for (i, step) in plan.steps.iter().enumerate() {
        for m in step {
            t.row(vec![
                json!(format!("{}-{}", m.topic, m.partition)),
                json!(m.from),
                json!(m.to),
                json!(if m.is_reorder() {
                    "leader only".to_string()
                } else {
                    mb(m.bytes)
                }),
                json!(i + 1),
            ]);
        }
    }
    t.print(Format::Table);
    println!("\nExpected result:");
    let mut t = crate::output::Table::new(&[
        "BROKER",
        "REPLICAS",
        "LEADERS",
        "BYTES",
        "→ REPLICAS",
        "→ LEADERS",
        "→ BYTES",
    ]);
    for (id, before) in &plan.before {
        let after = plan.after.get(id).cloned().unwrap_or_default();
        t.row(vec![
            json!(id),
            json!(before.replicas),
            json!(before.leaders),
            json!(mb(before.bytes)),
            json!(after.replicas),
            json!(after.leaders),
            json!(mb(after.bytes)),
        ]);
    }
    t.print(Format::Table);
}

/// Sets the replication throttle for `step`'s moves: the rate on every broker, and per topic
/// the moving partitions' original replicas (leader side) and added ones (follower side).
async fn set_throttle(admin: &Admin, step: &[Move], rate: i64, brokers: &[i32]) -> Result<()> {
    for b in brokers {
        admin
            .alter_configs(
                &ConfigResource::Broker(*b),
                &[
                    (
                        "leader.replication.throttled.rate".into(),
                        AlterOp::Set,
                        Some(rate.to_string()),
                    ),
                    (
                        "follower.replication.throttled.rate".into(),
                        AlterOp::Set,
                        Some(rate.to_string()),
                    ),
                ],
            )
            .await
            .with_context(|| format!("setting the throttle on broker {b}"))?;
    }
    let mut lists: BTreeMap<&str, (Vec<String>, Vec<String>)> = BTreeMap::new();
    for m in step {
        let e = lists.entry(m.topic.as_str()).or_default();
        for r in &m.from {
            e.0.push(format!("{}:{r}", m.partition));
        }
        for r in m.to.iter().filter(|r| !m.from.contains(r)) {
            e.1.push(format!("{}:{r}", m.partition));
        }
    }
    for (topic, (leader, follower)) in lists {
        admin
            .alter_configs(
                &ConfigResource::Topic(topic.to_string()),
                &[
                    (
                        "leader.replication.throttled.replicas".into(),
                        AlterOp::Set,
                        Some(leader.join(",")),
                    ),
                    (
                        "follower.replication.throttled.replicas".into(),
                        AlterOp::Set,
                        Some(follower.join(",")),
                    ),
                ],
            )
            .await
            .with_context(|| format!("setting the throttled replicas of {topic}"))?;
    }
    Ok(())
}

async fn clear_throttle(admin: &Admin, topics: &BTreeSet<String>, brokers: &[i32]) {
    for b in brokers {
        let _ = admin
            .alter_configs(
                &ConfigResource::Broker(*b),
                &[
                    (
                        "leader.replication.throttled.rate".into(),
                        AlterOp::Delete,
                        None,
                    ),
                    (
                        "follower.replication.throttled.rate".into(),
                        AlterOp::Delete,
                        None,
                    ),
                ],
            )
            .await;
    }
    for t in topics {
        let _ = admin
            .alter_configs(
                &ConfigResource::Topic(t.clone()),
                &[
                    (
                        "leader.replication.throttled.replicas".into(),
                        AlterOp::Delete,
                        None,
                    ),
                    (
                        "follower.replication.throttled.replicas".into(),
                        AlterOp::Delete,
                        None,
                    ),
                ],
            )
            .await;
    }
}

/// Runs `plan` step by step; Ctrl-C cancels the step in flight.
async fn execute(admin: &Admin, plan: &Plan, throttle: Option<i64>, format: Format) -> Result<()> {
    let brokers: Vec<i32> = plan.before.keys().copied().collect();
    let topics: BTreeSet<String> = plan.moves().map(|m| m.topic.clone()).collect();
    let total_moves = plan.moves().count();
    let mut done_bytes = 0u64;
    let mut done_moves = 0usize;
    let start = Instant::now();
    let result = async {
        for (i, step) in plan.steps.iter().enumerate() {
            if let Some(rate) = throttle {
                set_throttle(admin, step, rate, &brokers).await?;
            }
            let targets: Vec<strom_client::ReassignmentTarget> = step
                .iter()
                .map(|m| ((m.topic.clone(), m.partition), Some(m.to.clone())))
                .collect();
            for ((t, p), r) in admin.alter_partition_reassignments(&targets, false).await? {
                if let Err(e) = r {
                    bail!("reassigning {t}-{p}: {e}");
                }
            }
            let keys: Vec<(String, i32)> = step
                .iter()
                .map(|m| (m.topic.clone(), m.partition))
                .collect();
            let mut last_line = String::new();
            loop {
                let left = tokio::select! {
                    left = admin.list_partition_reassignments(Some(&keys)) => left?,
                    _ = tokio::signal::ctrl_c() => {
                        let cancel: Vec<strom_client::ReassignmentTarget> =
                            keys.iter().map(|k| (k.clone(), None)).collect();
                        let _ = admin.alter_partition_reassignments(&cancel, false).await;
                        bail!("cancelled: the moves in flight were reverted");
                    }
                };
                let left_bytes: u64 = step
                    .iter()
                    .filter(|m| {
                        left.iter()
                            .any(|l| l.topic == m.topic && l.partition == m.partition)
                    })
                    .map(|m| m.bytes)
                    .sum();
                let step_bytes: u64 = step.iter().map(|m| m.bytes).sum();
                let moved = done_bytes + step_bytes - left_bytes;
                let line = progress_line(
                    i + 1,
                    plan.steps.len(),
                    (step.len() - left.len(), step.len()),
                    (done_moves + step.len() - left.len(), total_moves),
                    (moved, plan.bytes()),
                );
                if line != last_line && format != Format::Json {
                    println!("{line}");
                    last_line = line;
                }
                if left.is_empty() {
                    done_bytes += step_bytes;
                    done_moves += step.len();
                    break;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
        Ok(())
    }
    .await;
    if throttle.is_some() {
        clear_throttle(admin, &topics, &brokers).await;
    }
    result?;
    // Leaders where the plan put them (first replica), where that is not already so.
    let moved: Vec<(String, i32)> = plan
        .moves()
        .map(|m| (m.topic.clone(), m.partition))
        .collect();
    let _ = admin.elect_leaders(false, Some(&moved)).await;
    let secs = start.elapsed().as_secs_f64();
    if format == Format::Json {
        println!(
            "{}",
            json!({"done": true, "bytes": plan.bytes(), "seconds": secs})
        );
    } else {
        println!(
            "Done: {} partitions, {} copied in {secs:.1} s.",
            plan.moves().count(),
            mb(plan.bytes())
        );
    }
    Ok(())
}

/// One progress line: the share done (by bytes, or by partitions when nothing is copied).
fn progress_line(
    step: usize,
    steps: usize,
    (done, of): (usize, usize),
    (all_done, all): (usize, usize),
    (moved, total): (u64, u64),
) -> String {
    let share = if total > 0 {
        moved as f64 / total as f64
    } else {
        all_done as f64 / all.max(1) as f64
    }
    .clamp(0.0, 1.0);
    let filled = (share * 30.0).round() as usize;
    format!(
        "[{}{}] {:>3.0}%  step {step}/{steps}: {done}/{of} partitions  {} of {}",
        "#".repeat(filled),
        ".".repeat(30 - filled),
        share * 100.0,
        mb(moved),
        mb(total)
    )
}

/// `--cancel`: reverts every reassignment in flight.
async fn cancel_all(admin: &Admin) -> Result<()> {
    let in_flight = admin.list_partition_reassignments(None).await?;
    if in_flight.is_empty() {
        println!("No reassignment is in progress.");
        return Ok(());
    }
    let cancel: Vec<strom_client::ReassignmentTarget> = in_flight
        .iter()
        .map(|r| ((r.topic.clone(), r.partition), None))
        .collect();
    for ((t, p), r) in admin.alter_partition_reassignments(&cancel, false).await? {
        if let Err(e) = r {
            eprintln!("cancelling {t}-{p}: {e}");
        }
    }
    let topics: BTreeSet<String> = in_flight.iter().map(|r| r.topic.clone()).collect();
    let brokers: Vec<i32> = admin
        .describe_cluster()
        .await?
        .brokers
        .iter()
        .map(|b| b.node_id)
        .collect();
    clear_throttle(admin, &topics, &brokers).await;
    println!("Cancelled {} reassignments.", in_flight.len());
    Ok(())
}
