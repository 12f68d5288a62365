//! `raftlab diff A.jsonl B.jsonl`: the first event where two runs diverge (the same seed before
//! and after a change, or a passing and a failing seed), with every node's state there.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;

use super::{Event, Model, describe, load};

#[derive(Debug, clap::Args)]
pub struct DiffArgs {
    a: PathBuf,
    b: PathBuf,
}

/// The index of the first event that differs (`None`: the traces are equal).
pub fn first_difference(a: &[Event], b: &[Event]) -> Option<usize> {
    let n = a.len().min(b.len());
    (0..n)
        .find(|&i| a[i].v != b[i].v)
        .or((a.len() != b.len()).then_some(n))
}

fn state_lines(events: &[Event], upto: usize) -> Vec<String> {
    let mut m = Model::default();
    for e in events.iter().take(upto) {
        m.apply(e);
    }
    m.nodes
        .iter()
        .map(|(id, n)| {
            format!(
                "node {id}: {} term={} vote={} leader={} commit={} applied={} log={:?}",
                if n.up { n.role.as_str() } else { "down" },
                n.term,
                n.vote.map_or("-".into(), |v| v.to_string()),
                n.leader.map_or("-".into(), |v| v.to_string()),
                n.commit,
                n.applied,
                n.terms
            )
        })
        .collect()
}

pub fn run(args: DiffArgs) -> Result<ExitCode> {
    let a = load(&args.a)?;
    let b = load(&args.b)?;
    let Some(i) = first_difference(&a, &b) else {
        println!("the traces are the same ({} events)", a.len());
        return Ok(ExitCode::SUCCESS);
    };
    println!("the runs diverge at event #{i}:");
    let show = |name: &PathBuf, ev: &[Event]| match ev.get(i) {
        Some(e) => println!(
            "  {}: t={:.3}s {}",
            name.display(),
            e.t_us as f64 / 1e6,
            describe(e)
        ),
        None => println!("  {}: (ends after {} events)", name.display(), ev.len()),
    };
    show(&args.a, &a);
    show(&args.b, &b);
    println!("every node just before it (the same in both runs):");
    for l in state_lines(&a, i) {
        println!("  {l}");
    }
    Ok(ExitCode::from(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::parse;

    #[test]
    fn finds_the_first_divergence() {
        let a = parse("{\"t_us\":0,\"kind\":\"x\"}\n{\"t_us\":1,\"kind\":\"y\"}").unwrap();
        let b = parse("{\"t_us\":0,\"kind\":\"x\"}\n{\"t_us\":2,\"kind\":\"y\"}").unwrap();
        assert_eq!(first_difference(&a, &a), None);
        assert_eq!(first_difference(&a, &b), Some(1));
        assert_eq!(first_difference(&a, &a[..1]), Some(1));
    }
}
