//! `raftlab scenario FILE.txt [--html out.html]`: runs a scenario script of `raft/testdata`
//! (Figure 7, Figure 8, split vote, snapshot, ...) and prints its output, or turns the run into
//! a trace and renders it with the viewer, so a textbook case can be stepped through in a
//! browser: one `scenario.cmd` event per command, then the nodes' state, log and snapshot
//! changes and the messages it queued or delivered.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use raftcheck::scenario::{Cluster, commands, fmt_msg};
use serde_json::{Value, json};

use super::parse;

#[derive(Debug, clap::Args)]
pub struct ScenarioArgs {
    /// The scenario script.
    script: PathBuf,
    /// Write the run as a web page (the trace viewer) instead of printing its output.
    #[arg(long, value_name = "FILE")]
    html: Option<PathBuf>,
    /// Also write the run's trace (JSON lines).
    #[arg(long, value_name = "FILE")]
    trace: Option<PathBuf>,
}

/// Runs `text` and returns its output lines and the run as trace lines.
pub fn run_script(text: &str) -> Result<(Vec<String>, Vec<String>)> {
    let saves: Arc<Mutex<Vec<Value>>> = Arc::new(Mutex::new(Vec::new()));
    let sink = saves.clone();
    let mut cluster = Cluster::default();
    cluster.set_tee(Arc::new(move |id, p: &raft::Persist<'_>| {
        let mut out = sink.lock().unwrap_or_else(|e| e.into_inner());
        if p.snapshot.is_some() {
            out.push(json!({"kind": "node.snapshot", "id": id, "index": p.snapshot_index.0, "term": p.snapshot_term.0}));
        }
        if let Some(from) = p.entries_from {
            out.push(json!({"kind": "node.log", "id": id, "from": from.0,
                "terms": p.entries.iter().map(|e| e.term.0).collect::<Vec<_>>()}));
        }
    }));
    let mut output = Vec::new();
    let mut trace: Vec<Value> = Vec::new();
    let mut last: BTreeMap<u64, Value> = BTreeMap::new();
    let mut queued: Vec<(u64, String)> = Vec::new();
    let mut next_id = 0u64;
    for (k, cmd) in commands(text).into_iter().enumerate() {
        let t_us = k as u64 * 1000;
        let first_of_command = trace.len();
        let lines = cluster
            .run(&cmd)
            .map_err(|e| anyhow::anyhow!("command {} `{cmd}`: {e}", k + 1))?;
        output.push(cmd.clone());
        output.extend(lines.iter().map(|l| format!("  {l}")));
        trace.push(json!({"kind": "scenario.cmd", "cmd": cmd, "output": lines}));
        // `restart N` and `log N ...` start node N again from its storage: a new incarnation.
        // `nodes N` starts a fresh cluster: every node is a new incarnation.
        let words: Vec<&str> = cmd.split_whitespace().collect();
        let booted: Vec<u64> = match words[..] {
            ["restart" | "log", id, ..] => id.parse().into_iter().collect(),
            ["nodes", ..] => {
                queued.clear();
                trace.push(json!({"kind": "test.begin", "name": cmd}));
                cluster.ids().to_vec()
            }
            _ => Vec::new(),
        };
        for id in booted {
            let Some(r) = cluster.node(id) else { continue };
            let log = r.log();
            trace.push(json!({"kind": "node.boot", "id": id, "term": r.term().0,
                "snap": log.snapshot_index().0, "snap_term": log.snapshot_term().0,
                "first": log.snapshot_index().0 + 1,
                "terms": log.entries().iter().map(|e| e.term.0).collect::<Vec<_>>()}));
            last.remove(&id);
        }
        trace.append(&mut saves.lock().unwrap_or_else(|e| e.into_inner()));
        for &id in cluster.ids() {
            let state = match cluster.node(id) {
                Some(r) => {
                    let s = r.status();
                    json!({"kind": "node.state", "id": id,
                        "role": format!("{:?}", s.role).to_lowercase(), "term": s.term.0,
                        "vote": s.voted_for.map(|v| v.0), "leader": s.leader.map(|l| l.0),
                        "commit": s.commit.0, "applied": s.applied.0,
                        "last": s.last_index.0, "snap": s.snapshot_index.0})
                }
                None => json!({"kind": "test.crash", "server": id}),
            };
            if last.get(&id) != Some(&state) {
                last.insert(id, state.clone());
                trace.push(state);
            }
        }
        // Messages: those newly queued are sent, those gone were delivered or lost.
        let now: Vec<String> = cluster.queue().iter().map(fmt_msg).collect();
        let mut still = Vec::new();
        for (id, m) in queued.drain(..) {
            if now.contains(&m) {
                still.push((id, m));
            } else {
                trace.push(json!({"kind": "rpc.return", "id": id}));
            }
        }
        for env in cluster.queue() {
            let m = fmt_msg(env);
            if !still.iter().any(|(_, s)| *s == m) {
                trace.push(
                    json!({"kind": "rpc.call", "id": next_id, "msg": raft::trace::describe(env)}),
                );
                still.push((next_id, m));
                next_id += 1;
            }
        }
        queued = still;
        for v in &mut trace[first_of_command..] {
            if let Value::Object(o) = v {
                o.insert("t_us".into(), json!(t_us));
            }
        }
    }
    Ok((output, trace.into_iter().map(|v| v.to_string()).collect()))
}

/// The run of `text` as trace events.
#[cfg(test)]
pub fn events(text: &str) -> Result<Vec<super::Event>> {
    let (_, lines) = run_script(text)?;
    parse(&lines.join("\n"))
}

pub fn run(args: ScenarioArgs) -> Result<ExitCode> {
    let text = std::fs::read_to_string(&args.script)
        .with_context(|| format!("cannot read {}", args.script.display()))?;
    let (output, lines) = run_script(&text)?;
    if let Some(path) = &args.trace {
        std::fs::write(path, lines.join("\n") + "\n")
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    match &args.html {
        Some(path) => {
            let events = parse(&lines.join("\n"))?;
            let title = args
                .script
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            std::fs::write(path, super::view::page(&events, &title))
                .with_context(|| format!("cannot write {}", path.display()))?;
            println!(
                "wrote {} ({} events, {} commands)",
                path.display(),
                events.len(),
                events.iter().filter(|e| e.kind == "scenario.cmd").count()
            );
        }
        None => {
            for l in output {
                println!("{l}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::Model;

    #[test]
    fn a_scenario_becomes_a_trace_the_viewer_replays() {
        let text = "nodes 3\n----\nok\n\ncampaign 1\n----\nok\n\nstabilize\n----\nok\n\npropose 1 a\n----\nok\n\nstabilize\n----\nok\n";
        let events = events(text).unwrap();
        assert_eq!(
            events.iter().filter(|e| e.kind == "scenario.cmd").count(),
            5
        );
        let m = Model::at(&events, events.len() - 1);
        assert_eq!(m.leader().map(|(id, _)| id), Some(1));
        for id in 1..=3 {
            assert_eq!(m.nodes[&id].terms, vec![1], "node {id}");
        }
        assert!(events.iter().any(|e| e.kind == "rpc.call"));
    }
}
