//! The search over the reference core: bounded spaces explored completely, and planted bugs
//! found with a replayable counterexample.

use raftcheck::search::{Bounds, Outcome, search};

#[test]
fn explore_default() {
    let args: Vec<u64> = std::env::var("B")
        .unwrap_or_default()
        .split(',')
        .filter_map(|x| x.parse().ok())
        .collect();
    let mut bounds = Bounds::default();
    if args.len() == 8 {
        bounds.max_term = args[0];
        bounds.proposals = args[1] as u32;
        bounds.crashes = args[2] as u32;
        bounds.drops = args[3] as u32;
        bounds.duplicates = args[4] as u32;
        bounds.reorders = args[5] as u32;
        bounds.heartbeats = args[6] as u32;
        bounds.compactions = args[7] as u32;
    }
    bounds.time_limit = std::time::Duration::from_secs(30);
    if let Ok(f) = std::env::var("SETUP") {
        bounds.setup = std::fs::read_to_string(f)
            .unwrap()
            .lines()
            .map(String::from)
            .collect();
    }
    if let Ok(d) = std::env::var("D") {
        bounds.max_depth = d.parse().unwrap();
    }
    if let Ok(b) = std::env::var("RAFTLAB_PLANT") {
        labrpc::planted::set(labrpc::planted::Bug::from_name(&b));
    }
    let out = search(&bounds, |s| eprintln!("level: {s}"));
    match out {
        Outcome::Violation {
            script,
            stats,
            violation,
        } => {
            eprintln!("FOUND {stats} {violation}");
            if std::env::var("SHOW").is_ok() {
                eprintln!("{script}");
            }
        }
        other => eprintln!("{other:?}"),
    }
}
