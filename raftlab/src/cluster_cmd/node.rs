//! One node process: `raftlab node`, and the narration of its events.

use super::*;

/// Run one node (usually started for you by `raftlab cluster start`).
#[derive(Debug, Args)]
pub struct NodeArgs {
    /// This node's index in --peers.
    #[arg(long)]
    id: u64,
    /// Address to accept connections on (peers and clients).
    #[arg(long)]
    listen: SocketAddr,
    /// Every node's address, this one's included, comma-separated, in id order.
    #[arg(long, value_delimiter = ',', required = true)]
    peers: Vec<SocketAddr>,
    /// Where the node keeps its log, snapshot and cluster id.
    #[arg(long)]
    data_dir: PathBuf,
    /// Cluster id (hex) to adopt if the data directory has none yet.
    #[arg(long, value_parser = parse_hex)]
    cluster_id: Option<u64>,
    /// Snapshot when the write-ahead log reaches this many bytes.
    #[arg(long, default_value_t = 4 << 20)]
    maxraftstate: usize,
    /// Join a running cluster: start with no configuration, never campaign, and wait for the
    /// leader to add this node (`raftlab cluster add-node` does all of it).
    #[arg(long, conflicts_with = "voters")]
    join: bool,
    /// The bootstrap configuration is nodes 0..K (the nodes the cluster was created with;
    /// default: every node of --peers). The log's configuration overrides it once there is one.
    #[arg(long, value_name = "K")]
    voters: Option<usize>,
    #[command(flatten)]
    features: FeatureArgs,
}

/// Logs go to stderr; `RUST_LOG` picks the level (info by default: the election story).
pub(super) fn init_logging() {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|s| s.parse::<tracing_subscriber::filter::Targets>().ok())
        .unwrap_or_else(|| {
            tracing_subscriber::filter::Targets::new()
                .with_default(tracing::level_filters::LevelFilter::INFO)
        });
    use tracing_subscriber::prelude::*;
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_target(false);
    let _ = tracing_subscriber::registry()
        .with(fmt.with_filter(filter))
        .try_init();
}

/// How many events wait for the node's narrator before the node drops (and counts) them.
pub(super) const EVENTS: usize = 1024;

pub fn node(args: NodeArgs) -> anyhow::Result<ExitCode> {
    init_logging();
    let features = args.features.features()?;
    let id = args.id;
    let cfg = NodeConfig {
        id,
        listen: args.listen,
        peers: args.peers,
        data_dir: args.data_dir,
        cluster_id: args.cluster_id,
        maxraftstate: Some(args.maxraftstate),
        features,
        allow_fault_injection: args.features.allow_fault_injection,
    };
    runtime()?.block_on(async move {
        let bootstrap = match (args.join, args.voters) {
            (true, _) => Bootstrap::Join,
            (false, Some(k)) => Bootstrap::Voters(k),
            (false, None) => Bootstrap::AllPeers,
        };
        let node = start_kv_node_with(cfg, bootstrap).await?;
        tokio::spawn(narrate(id, node.raft().subscribe(EVENTS)));
        node.serve().await;
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

/// The node's observer: tells the log, in words, about leaders and peers lost and regained.
pub(super) async fn narrate(id: u64, mut events: Subscription) {
    let mut dropped = 0;
    while let Some(event) = events.recv().await {
        let now_dropped = events.dropped();
        if now_dropped > dropped {
            info!(
                node = id,
                "node {id}: the observer fell behind, {} events dropped ({now_dropped} in all)",
                now_dropped - dropped
            );
            dropped = now_dropped;
        }
        match event {
            Event::LeaderChanged {
                term,
                leader: Some(l),
            } if l.0 == id => info!(node = id, "node {id}: I am leader of term {term}"),
            Event::LeaderChanged {
                term,
                leader: Some(l),
            } => info!(node = id, "node {id}: node {l} is leader of term {term}"),
            Event::LeaderChanged { term, leader: None } => {
                info!(node = id, "node {id}: no known leader in term {term}")
            }
            Event::PeerUnreachable { peer } => {
                info!(node = id, "node {id}: lost contact with node {peer}")
            }
            Event::PeerReachable { peer } => {
                info!(node = id, "node {id}: regained contact with node {peer}")
            }
            Event::Transfer { to: Some(to) } => {
                info!(node = id, "node {id}: handing leadership to node {to}")
            }
            Event::Transfer { to: None } => {
                info!(node = id, "node {id}: leadership transfer over")
            }
            Event::RoleChanged { .. }
            | Event::Voted { .. }
            | Event::Committed { .. }
            | Event::Snapshot { .. } => {}
        }
    }
}
