//! `cluster status` (each node's state and contact) and `cluster transfer`.

use super::*;

/// Every node's status (`None`: no answer).
pub(super) async fn statuses(file: &ClusterFile) -> Vec<Option<NodeStatus>> {
    let mut out = Vec::new();
    for (_, addr, _) in &file.nodes {
        out.push(query(*addr, file.cluster_id).await);
    }
    out
}

pub(super) fn secs(ms: u64) -> String {
    format!("{:.2} s", ms as f64 / 1000.0)
}

/// A node's contact, in words: a leader's with each peer, anyone else's with its leader.
pub(super) fn contact(s: &NodeStatus) -> String {
    if s.role == "leader" {
        let peers: Vec<String> = s
            .peers
            .iter()
            .map(|p| match (p.unreachable_ms, p.heard_ms_ago) {
                (Some(u), Some(h)) => format!(
                    "{}: UNREACHABLE for {} (heard {} ago)",
                    p.id,
                    secs(u),
                    secs(h)
                ),
                (Some(u), None) => format!("{}: UNREACHABLE for {}", p.id, secs(u)),
                (None, Some(h)) => format!("{}: heard {} ago", p.id, secs(h)),
                (None, None) => format!("{}: never heard", p.id),
            })
            .collect();
        let transfer = s
            .transferring_to
            .map_or(String::new(), |t| format!("; transferring to node {t}"));
        format!("peers {}{transfer}", peers.join(", "))
    } else {
        match s.leader_contact {
            Some((l, ms)) => format!("leader {l}, heard {} ago", secs(ms)),
            None => "no leader heard from since start".to_owned(),
        }
    }
}

pub(super) fn status(dir: &Path) -> anyhow::Result<ExitCode> {
    let Some(file) = ClusterFile::read(dir)? else {
        bail!("no cluster in {} (no cluster.txt)", dir.display());
    };
    let rt = runtime()?;
    let statuses = rt.block_on(statuses(&file));
    let features = match statuses.iter().flatten().next() {
        Some(s) => Features {
            pre_vote: s.pre_vote,
            check_quorum: s.check_quorum,
            lease_reads: s.lease_reads,
        },
        None => file.features.features()?,
    };
    println!("cluster {:016x} ({})", file.cluster_id, describe(features));
    let roster = super::membership::Roster::read(dir)?;
    // The configuration as the leader sees it, or else the latest any node has.
    let seen_by = current_leader(&file, &statuses)
        .map(|(i, _)| i)
        .or_else(|| {
            statuses
                .iter()
                .enumerate()
                .filter_map(|(i, s)| s.as_ref().map(|s| (i, s.membership.index)))
                .max_by_key(|(_, index)| *index)
                .map(|(i, _)| i)
        });
    let conf = seen_by.and_then(|i| statuses[i].as_ref().map(|s| (file.nodes[i].0, s)));
    match conf {
        Some((by, s)) => println!(
            "configuration: {} (entry {}, as {} {by} sees it)",
            s.membership,
            s.membership.index,
            if s.role == "leader" { "leader" } else { "node" }
        ),
        None => println!("configuration: unknown (no node answered)"),
    }
    let member = |id: u64| {
        if roster.removed.contains(&id) {
            "removed"
        } else {
            conf.map_or("?", |(_, s)| s.membership.role_of(id))
        }
    };
    println!(
        "{:>4}  {:<21} {:>8}  {:<7}  {:<12} {:>5} {:>6} {:>8} {:>8} {:>8} {:>10}  contact",
        "node",
        "address",
        "pid",
        "member",
        "role",
        "term",
        "leader",
        "commit",
        "applied",
        "entries",
        "log bytes"
    );
    let mut up = 0;
    for ((id, addr, pid), s) in file.nodes.iter().zip(&statuses) {
        match s {
            Some(s) => {
                up += 1;
                println!(
                    "{:>4}  {:<21} {:>8}  {:<7}  {:<12} {:>5} {:>6} {:>8} {:>8} {:>8} {:>10}  {}",
                    id,
                    addr.to_string(),
                    s.pid,
                    member(*id),
                    s.role,
                    s.term,
                    s.leader.map_or("-".to_owned(), |l| l.to_string()),
                    s.commit,
                    s.applied,
                    s.last_index - s.snapshot_index,
                    s.log_bytes,
                    contact(s)
                );
            }
            None => println!(
                "{:>4}  {:<21} {:>8}  {:<7}  {:<12}",
                id,
                addr.to_string(),
                pid.map_or("-".to_owned(), |p| p.to_string()),
                member(*id),
                if roster.removed.contains(id) {
                    "stopped"
                } else {
                    "DOWN (no answer)"
                }
            ),
        }
    }
    println!("{up} of {} nodes answered", file.nodes.len());
    Ok(ExitCode::SUCCESS)
}

/// The node that leads the highest term among those that answered: (node, term).
pub(super) fn current_leader(
    file: &ClusterFile,
    statuses: &[Option<NodeStatus>],
) -> Option<(usize, u64)> {
    file.nodes
        .iter()
        .zip(statuses)
        .enumerate()
        .filter_map(|(i, (_, s))| s.as_ref().map(|s| (i, s)))
        .filter(|(_, s)| s.role == "leader")
        .max_by_key(|(_, s)| s.term)
        .map(|(i, s)| (i, s.term))
}

pub(super) fn transfer(dir: &Path, to: u64, timeout: f64) -> anyhow::Result<ExitCode> {
    let Some(file) = ClusterFile::read(dir)? else {
        bail!("no cluster in {} (no cluster.txt)", dir.display());
    };
    if !(timeout.is_finite() && timeout > 0.0) {
        bail!("--timeout must be a positive number of seconds");
    }
    let Some(target) = file.nodes.iter().position(|(id, _, _)| *id == to) else {
        let ids: Vec<String> = file.nodes.iter().map(|(id, _, _)| id.to_string()).collect();
        bail!(
            "unknown node {to}: the cluster in {} has nodes {}",
            dir.display(),
            ids.join(", ")
        );
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs_f64(timeout);
    let rt = runtime()?;
    rt.block_on(async {
        // Ask the leader (retrying while there is none, or it just changed).
        let (from, term) = loop {
            let st = statuses(&file).await;
            match current_leader(&file, &st) {
                Some((l, term)) if l == target => {
                    println!("node {to} already leads term {term}");
                    return Ok(ExitCode::SUCCESS);
                }
                Some((l, term)) => {
                    let (id, addr, _) = file.nodes[l];
                    let answer = match connect(addr).await {
                        Some(c) => tokio::time::timeout(
                            Duration::from_secs(1),
                            c.transfer(ctx(), file.cluster_id, to),
                        )
                        .await
                        .ok()
                        .and_then(|r| r.ok()),
                        None => None,
                    };
                    match answer {
                        Some(Ok(Ok(()))) => break (id, term),
                        Some(Ok(Err(TransferFailure::AlreadyLeader(n)))) => {
                            println!("node {n} already leads term {term}");
                            return Ok(ExitCode::SUCCESS);
                        }
                        Some(Ok(Err(TransferFailure::NotLeader { .. }))) | None => {}
                        Some(Ok(Err(e))) => bail!("node {id} refused the transfer: {e}"),
                        Some(Err(wrong)) => bail!("{wrong}"),
                    }
                }
                None => {}
            }
            if tokio::time::Instant::now() >= deadline {
                bail!("timed out after {timeout} s: no leader to ask for the transfer");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        println!("node {from} (leader of term {term}) is handing its leadership to node {to}");
        loop {
            let st = statuses(&file).await;
            match current_leader(&file, &st) {
                Some((l, t)) if l == target && t > term => {
                    println!("node {to} is now the leader (term {t})");
                    return Ok(ExitCode::SUCCESS);
                }
                Some((l, t))
                    if file.nodes[l].0 == from
                        && t == term
                        && st[l].as_ref().is_some_and(|s| s.transferring_to.is_none()) =>
                {
                    bail!(
                        "node {from} gave the transfer up: node {to} did not take over within \
                         an election timeout (is it up and caught up?); node {from} still leads \
                         term {term}"
                    );
                }
                now => {
                    if tokio::time::Instant::now() >= deadline {
                        let now = match now {
                            Some((l, t)) => {
                                format!("node {} leads term {t}", file.nodes[l].0)
                            }
                            None => "no node leads".to_owned(),
                        };
                        bail!(
                            "timed out after {timeout} s: leadership did not move to node {to} \
                             ({now}; is node {to} up and caught up?)"
                        );
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
}
