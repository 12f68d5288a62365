//! `raftlab log`: a trace in the terminal, one column per node (in the style of dslogs), with
//! the tester's and the network's events on the left; event numbers match the web page's.

use std::collections::BTreeSet;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;

use super::{Event, describe, load_trace_or_narration};

#[derive(Debug, clap::Args)]
pub struct LogArgs {
    /// The trace (RAFTLAB_TRACE), or a run's output with RUST_LOG=info narration.
    trace: PathBuf,
    /// Only these nodes' events (comma-separated ids).
    #[arg(long, value_delimiter = ',')]
    node: Vec<u64>,
    /// Only events whose kind starts with one of these (e.g. `node.state,test`).
    #[arg(long, value_delimiter = ',')]
    kind: Vec<String>,
    /// From this virtual time on, in seconds.
    #[arg(long, value_name = "SECS")]
    from: Option<f64>,
    /// Up to this virtual time, in seconds.
    #[arg(long, value_name = "SECS")]
    to: Option<f64>,
    /// Width of one node's column.
    #[arg(long, default_value_t = 44)]
    width: usize,
    /// Colour by event kind.
    #[arg(long, default_value = "auto", value_parser = ["auto", "always", "never"])]
    color: String,
    /// Include the runs' narration (`log` events) and network bookkeeping (`net.*`).
    #[arg(long)]
    all: bool,
}

fn colour(kind: &str) -> &'static str {
    match kind {
        k if k.starts_with("test.fail") || k.starts_with("test.violation") => "\x1b[1;31m",
        k if k.starts_with("test.") => "\x1b[1;37m",
        "node.state" => "\x1b[33m",
        "node.log" | "node.snapshot" => "\x1b[32m",
        "rpc.call" => "\x1b[36m",
        "rpc.return" => "\x1b[34m",
        k if k.starts_with("rpc.") => "\x1b[35m",
        k if k.starts_with("kv.") => "\x1b[95m",
        _ => "\x1b[90m",
    }
}

/// Renders the selected events as lines.
pub fn render(events: &[Event], args: &LogArgs, colour_on: bool) -> Vec<String> {
    // A run's narration alone (RUST_LOG=info output) is all `log` events: show them.
    let narration_only = events.iter().all(|e| e.kind == "log");
    let nodes: BTreeSet<u64> = events
        .iter()
        .filter(|e| e.kind.starts_with("node.") || (narration_only && e.kind == "log"))
        .filter_map(Event::subject)
        .collect();
    let nodes: Vec<u64> = nodes.into_iter().collect();
    let w = args.width.max(10);
    let mut out = Vec::new();
    let mut header = format!("{:>7} {:>9}  {:<w$}", "#", "t (s)", "tester / network");
    for n in &nodes {
        header.push_str(&format!(" | {:<w$}", format!("node {n}")));
    }
    out.push(header);
    for e in events {
        let secs = e.t_us as f64 / 1e6;
        if args.from.is_some_and(|f| secs < f) || args.to.is_some_and(|t| secs > t) {
            continue;
        }
        if !args.all && !narration_only && (e.kind == "log" || e.kind.starts_with("net.")) {
            continue;
        }
        if !args.kind.is_empty() && !args.kind.iter().any(|k| e.kind.starts_with(k.as_str())) {
            continue;
        }
        let subject = e.subject();
        if !args.node.is_empty() && !subject.is_some_and(|s| args.node.contains(&s)) {
            continue;
        }
        let mut text = describe(e);
        if text.chars().count() > w {
            text = text.chars().take(w - 1).collect::<String>() + "…";
        }
        let col = subject
            .filter(|_| !e.kind.starts_with("test."))
            .and_then(|s| nodes.iter().position(|n| *n == s));
        let mut line = format!("{:>7} {:>9.3}  ", format!("#{}", e.n), secs);
        let cell = |t: &str| format!("{t:<w$}");
        let painted = |t: String| {
            if colour_on {
                format!("{}{t}\x1b[0m", colour(&e.kind))
            } else {
                t
            }
        };
        match col {
            None => {
                line.push_str(&painted(cell(&text)));
                for _ in &nodes {
                    line.push_str(&format!(" | {}", cell("")));
                }
            }
            Some(c) => {
                line.push_str(&cell(""));
                for i in 0..nodes.len() {
                    let t = if i == c {
                        painted(cell(&text))
                    } else {
                        cell("")
                    };
                    line.push_str(&format!(" | {t}"));
                }
            }
        }
        out.push(line.trim_end().to_owned());
    }
    out
}

pub fn run(args: LogArgs) -> Result<ExitCode> {
    let events = load_trace_or_narration(&args.trace)?;
    let colour_on = match args.color.as_str() {
        "always" => true,
        "never" => false,
        _ => std::io::stdout().is_terminal(),
    };
    let mut out = std::io::stdout().lock();
    for line in render(&events, &args, colour_on) {
        // A closed pipe (`| head`) ends the output, quietly.
        if writeln!(out, "{line}").is_err() {
            break;
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::parse;

    #[test]
    fn one_column_per_node_and_filters() {
        let text = r#"{"t_us":0,"kind":"test.begin","name":"x"}
{"t_us":1000,"kind":"node.state","id":0,"role":"candidate","term":1,"commit":0,"applied":0}
{"t_us":2000,"kind":"node.state","id":1,"role":"follower","term":1,"commit":0,"applied":0}"#;
        let events = parse(text).unwrap();
        let args = LogArgs {
            trace: "x".into(),
            node: vec![],
            kind: vec![],
            from: None,
            to: None,
            width: 30,
            color: "never".into(),
            all: false,
        };
        let lines = render(&events, &args, false);
        assert!(lines[0].contains("node 0") && lines[0].contains("node 1"));
        assert!(lines[1].starts_with("     #0"));
        // Node 1's event is in the third column.
        let cols: Vec<&str> = lines[3].split(" | ").collect();
        assert!(cols[2].starts_with("follower term=1"), "{lines:?}");
        let only0 = LogArgs {
            node: vec![0],
            ..args
        };
        assert_eq!(render(&events, &only0, false).len(), 2);
    }
}
