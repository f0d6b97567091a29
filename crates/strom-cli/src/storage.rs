//! `strom storage format | random-uuid`, as `kafka-storage.sh` (same flag names): formats a
//! node's log directories for a dynamic controller quorum (KIP-853,
//! `controller.quorum.bootstrap.servers`). The work is in `strom_metadata::storage`.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use strom_broker::config::BrokerConfig;
use strom_metadata::storage::{self, FormatRequest, InitialControllers};

#[derive(Debug, clap::Args)]
pub(crate) struct StorageArgs {
    #[command(subcommand)]
    command: StorageCmd,
}

#[derive(Debug, clap::Subcommand)]
enum StorageCmd {
    /// Write meta.properties (and a controller's initial voter set) into every log directory.
    Format(FormatArgs),
    /// Print a random id for --cluster-id (Kafka's base64url Uuid form).
    RandomUuid,
}

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("voters").args(["standalone", "initial_controllers", "no_initial_controllers"])))]
struct FormatArgs {
    /// The node's server.properties.
    #[arg(long, short = 'c', value_name = "FILE")]
    config: PathBuf,
    /// The cluster id (22 characters of base64url; `strom storage random-uuid` makes one).
    #[arg(long = "cluster-id", short = 't', value_name = "ID")]
    cluster_id: String,
    /// This controller is the quorum's only voter; add others later (add-controller).
    #[arg(long, short = 's')]
    standalone: bool,
    /// The initial voters, this node among them: ID@HOST:PORT:DIRECTORY_ID,...
    #[arg(long = "initial-controllers", short = 'I', value_name = "VOTERS")]
    initial_controllers: Option<String>,
    /// This controller joins as an observer and waits to be added (add-controller).
    #[arg(long = "no-initial-controllers", short = 'N')]
    no_initial_controllers: bool,
    /// Leave directories that are already formatted as they are instead of failing.
    #[arg(long = "ignore-formatted", short = 'g')]
    ignore_formatted: bool,
    /// Accepted for kafka-storage compatibility; Strom has one metadata version.
    #[arg(long = "release-version", short = 'r', value_name = "VERSION")]
    release_version: Option<String>,
    /// Accepted for kafka-storage compatibility (e.g. kraft.version=1); ignored.
    #[arg(long = "feature", short = 'f', value_name = "NAME=LEVEL")]
    features: Vec<String>,
}

pub(crate) fn run(args: StorageArgs) -> Result<()> {
    match args.command {
        StorageCmd::Format(args) => format(args),
        StorageCmd::RandomUuid => {
            println!("{}", strom_metadata::controller::random_cluster_id());
            Ok(())
        }
    }
}

fn format(args: FormatArgs) -> Result<()> {
    let (config, warnings) =
        BrokerConfig::load(Some(&args.config), &[]).context("invalid configuration")?;
    for w in warnings {
        eprintln!("warning: {w}");
    }
    if let Some(v) = &args.release_version {
        eprintln!("note: --release-version {v} is ignored (Strom has one metadata version)");
    }
    for f in &args.features {
        eprintln!("note: --feature {f} is ignored");
    }
    let initial_controllers = if args.standalone {
        Some(InitialControllers::Standalone)
    } else if let Some(list) = &args.initial_controllers {
        Some(InitialControllers::Voters(
            storage::parse_initial_controllers(list)?,
        ))
    } else if args.no_initial_controllers {
        Some(InitialControllers::None)
    } else {
        None
    };
    if args.cluster_id.trim().is_empty() {
        bail!("--cluster-id is empty");
    }
    let request = FormatRequest {
        cluster_id: args.cluster_id.trim().to_string(),
        initial_controllers,
        ignore_formatted: args.ignore_formatted,
    };
    let formatted = storage::format(&config, &request)?;
    if formatted.is_empty() {
        println!("All of the log directories are already formatted.");
    }
    for dir in formatted {
        println!(
            "Formatted {} (node.id {}, cluster.id {})",
            dir.display(),
            config.node_id(),
            request.cluster_id
        );
    }
    Ok(())
}
