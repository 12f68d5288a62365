//! `locks`: run the lock service as a real cluster, and talk to it.
//!
//! ```text
//! locks node --id 0 --peers 127.0.0.1:10090,127.0.0.1:10091,127.0.0.1:10092 --data-dir locks-0
//! locks acquire db ann --peers 127.0.0.1:10090,127.0.0.1:10091,127.0.0.1:10092
//! locks release db ann --peers ...
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use cluster::client::Client;
use cluster::server::{Features, NodeConfig, run_node};
use locks::{LockCommand, LockReply, LockTable};

#[derive(Debug, Parser)]
#[command(
    name = "locks",
    about = "A replicated lock service with fencing tokens, on raftlab"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Run one node (until killed).
    Node {
        /// This node's index in --peers.
        #[arg(long)]
        id: u64,
        /// Every node's address, in id order (comma-separated).
        #[arg(long, value_delimiter = ',', required = true)]
        peers: Vec<SocketAddr>,
        /// Where the node keeps its log and snapshots.
        #[arg(long)]
        data_dir: PathBuf,
        /// The cluster's id (the same for every node).
        #[arg(long, default_value_t = 1)]
        cluster_id: u64,
    },
    /// Take a lock; prints the fencing token, or who holds it.
    Acquire {
        lock: String,
        owner: String,
        #[arg(long, value_delimiter = ',', required = true)]
        peers: Vec<SocketAddr>,
    },
    /// Release a lock you hold.
    Release {
        lock: String,
        owner: String,
        #[arg(long, value_delimiter = ',', required = true)]
        peers: Vec<SocketAddr>,
    },
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("locks: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let (command, peers) = match cli.command {
        Cmd::Node {
            id,
            peers,
            data_dir,
            cluster_id,
        } => {
            let _ = tracing_subscriber::fmt()
                .with_writer(std::io::stderr)
                .with_ansi(false)
                .try_init();
            let listen = *peers.get(id as usize).with_context(|| {
                format!("--id {id} is not an index into the {} peers", peers.len())
            })?;
            let cfg = NodeConfig {
                id,
                listen,
                peers,
                data_dir,
                cluster_id: Some(cluster_id),
                maxraftstate: Some(1 << 20),
                features: Features::production(),
                allow_fault_injection: false,
            };
            runtime()?.block_on(run_node(cfg, LockTable::default()))?;
            return Ok(ExitCode::SUCCESS);
        }
        Cmd::Acquire { lock, owner, peers } => (LockCommand::Acquire { lock, owner }, peers),
        Cmd::Release { lock, owner, peers } => (LockCommand::Release { lock, owner }, peers),
    };
    let reply: LockReply = runtime()?.block_on(async {
        let mut client = Client::new(peers);
        client.submit(&command, Duration::from_secs(10)).await
    })?;
    match reply {
        LockReply::Acquired { token } => println!("acquired, fencing token {token}"),
        LockReply::Held { owner, token } => {
            println!("held by {owner} (token {token})");
            return Ok(ExitCode::from(1));
        }
        LockReply::Released => println!("released"),
        LockReply::NotHolder => {
            println!("not held by you");
            return Ok(ExitCode::from(1));
        }
    }
    Ok(ExitCode::SUCCESS)
}
