//! The Raft suite's search tests (part 3X): bounded model checking of the node's protocol core
//! with `raftcheck::search`, the safety monitor judging every state.
//!
//! Each test starts from a set-up situation (scenario commands, like DSLabs' search tests) and
//! explores every interleaving of deliveries, drops, duplications, reorderings, timeouts,
//! heartbeats, proposals, crashes and restarts within its bounds, breadth-first. It passes
//! when the whole bounded space was explored without a violation; a violation fails it with
//! the shortest scenario script that reproduces it (which replays with `raftcheck::scenario`).

use std::time::Duration;

use raftcheck::search::{Bounds, Outcome, search};

/// Wall-clock budget of one search test: a correct core explores its space in a few seconds.
pub const SEARCH_TIME_LIMIT: Duration = Duration::from_secs(120);

/// Runs a search test. `RAFTLAB_PLANT` applies here too (the suite's own checks).
pub fn search_test(name: &str, bounds: Bounds) {
    crate::verdict::arm();
    let _plant = crate::plant_from_env();
    let bounds = Bounds {
        time_limit: SEARCH_TIME_LIMIT,
        ..bounds
    };
    let outcome = search(&bounds, |_| {});
    match outcome {
        Outcome::Exhausted(stats) => {
            println!("  ... Passed -- {name}: {stats}");
            crate::verdict::passed();
        }
        Outcome::Unfinished(stats) => {
            panic!("{name}: the bounded space was not fully explored within the budget ({stats})")
        }
        Outcome::Setup(e) => panic!("{name}: the set-up script failed: {e}"),
        Outcome::Violation {
            violation,
            script,
            stats,
        } => {
            let path = std::env::temp_dir().join(format!("raftlab-search-{name}.txt"));
            let saved = match std::fs::write(&path, &script) {
                Ok(()) => format!("written to {}", path.display()),
                Err(e) => format!("could not be written: {e}"),
            };
            println!("{script}");
            panic!(
                "{violation}\n[search {name}: found after {stats}; the counterexample script is above and {saved}]"
            )
        }
    }
}

fn lines(script: &str) -> Vec<String> {
    script
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(String::from)
        .collect()
}

/// Elections from a fresh 3-node cluster: timeouts anywhere, one proposal, one crash, one
/// drop, one duplicate, one reordering, one heartbeat round, up to term 3.
pub fn elections() -> Bounds {
    Bounds {
        max_term: 3,
        proposals: 1,
        crashes: 1,
        drops: 1,
        duplicates: 1,
        reorders: 1,
        heartbeats: 1,
        max_depth: 6,
        ..Bounds::default()
    }
}

/// Figure 8's beginning: leader 1 of term 1 has replicated `a` to node 2 only. Elections,
/// deliveries and faults from there.
pub fn old_term_entry() -> Bounds {
    Bounds {
        setup: lines(
            "campaign 1
             deliver 1->2 RequestVote
             deliver 2->1 RequestVoteReply
             propose 1 a
             deliver 1->2 AppendEntries",
        ),
        max_term: 3,
        proposals: 1,
        crashes: 1,
        drops: 1,
        duplicates: 1,
        reorders: 1,
        heartbeats: 1,
        max_depth: 5,
        ..Bounds::default()
    }
}

/// Node 3 holds an entry of term 1 nobody else has; leader 1 of term 2 commits `a` at the same
/// index with node 2, while its messages to node 3 are still on their way.
pub fn stale_follower() -> Bounds {
    Bounds {
        setup: lines(
            "campaign 3
             deliver 3->2 RequestVote
             deliver 2->3 RequestVoteReply
             propose 3 y
             drop 3->* AppendEntries
             deliver 3->1 RequestVote
             drop 1->3 RequestVoteReply
             campaign 1
             deliver 1->2 RequestVote
             deliver 2->1 RequestVoteReply
             propose 1 a
             deliver 1->2 AppendEntries
             deliver 2->1 AppendEntriesReply",
        ),
        max_term: 3,
        proposals: 0,
        crashes: 0,
        drops: 1,
        duplicates: 1,
        reorders: 1,
        heartbeats: 1,
        max_depth: 6,
        ..Bounds::default()
    }
}

/// Leader 1 has committed `a` with node 2 and compacted its log; node 3 has seen nothing.
pub fn snapshot() -> Bounds {
    Bounds {
        setup: lines(
            "campaign 1
             deliver 1->2 RequestVote
             deliver 2->1 RequestVoteReply
             propose 1 a
             deliver 1->2 AppendEntries
             deliver 2->1 AppendEntriesReply
             compact 1 1",
        ),
        max_term: 2,
        proposals: 0,
        crashes: 1,
        drops: 1,
        duplicates: 1,
        reorders: 1,
        heartbeats: 1,
        compactions: 1,
        max_depth: 6,
        ..Bounds::default()
    }
}

/// Five nodes: leader 1 of term 1 replicated four entries to node 2, whose acknowledgement is
/// still on its way; leader 3 of term 2 overwrote node 1's log; node 1 then won term 3 and
/// replicated a new entry to node 4. The old acknowledgement arrives.
pub fn stale_acknowledgement() -> Bounds {
    Bounds {
        nodes: 5,
        setup: lines(
            "campaign 1
             deliver 1->2 RequestVote
             deliver 1->3 RequestVote
             deliver 2->1 RequestVoteReply
             deliver 3->1 RequestVoteReply
             propose 1 a
             propose 1 b
             propose 1 c
             propose 1 d
             drop 1->3 AppendEntries
             drop 1->4 AppendEntries
             drop 1->5 AppendEntries
             drop 1->* RequestVote
             deliver 1->2 AppendEntries
             deliver 2->1 AppendEntriesReply
             deliver 1->2 AppendEntries
             campaign 3
             deliver 3->4 RequestVote
             deliver 3->5 RequestVote
             deliver 4->3 RequestVoteReply
             deliver 5->3 RequestVoteReply
             propose 3 x
             drop 3->* RequestVote
             drop 3->2 AppendEntries
             deliver 3->1 AppendEntries
             deliver 1->3 AppendEntriesReply
             deliver 3->1 AppendEntries
             campaign 1
             deliver 1->4 RequestVote
             deliver 1->5 RequestVote
             deliver 4->1 RequestVoteReply
             deliver 5->1 RequestVoteReply
             propose 1 w
             drop 1->* RequestVote
             deliver 1->4 AppendEntries
             deliver 4->1 AppendEntriesReply",
        ),
        max_term: 3,
        proposals: 0,
        crashes: 0,
        drops: 0,
        duplicates: 0,
        reorders: 1,
        heartbeats: 0,
        max_depth: 3,
        ..Bounds::default()
    }
}

/// Part 3E: elections from a fresh 3-node cluster with pre-vote and check-quorum: every
/// interleaving of pre-votes, votes, faults and one check-quorum timeout.
pub fn prevote_checkquorum() -> Bounds {
    Bounds {
        options: "prevote checkquorum".into(),
        quorum_checks: 1,
        ..elections()
    }
}

/// Part 3F: leader 1 of term 1 has committed `a` with node 2; node 3 lags. One leadership
/// transfer (to either node), one proposal and the usual faults.
pub fn transfer() -> Bounds {
    Bounds {
        options: "prevote checkquorum".into(),
        setup: lines(
            "campaign 1
             deliver 1->2 PreVote
             deliver 2->1 PreVoteReply
             deliver 1->2 RequestVote
             deliver 2->1 RequestVoteReply
             propose 1 a
             deliver 1->2 AppendEntries
             deliver 2->1 AppendEntriesReply",
        ),
        max_term: 3,
        proposals: 1,
        transfers: 1,
        crashes: 1,
        drops: 1,
        duplicates: 0,
        reorders: 1,
        heartbeats: 1,
        max_depth: 6,
        ..Bounds::default()
    }
}

/// The setup several searches start from: node 1 leads term 1 and has committed `a` with
/// node 2 (which does not know it is committed yet).
fn leader_1_committed_a() -> Vec<String> {
    lines(
        "campaign 1
         deliver 1->2 RequestVote
         deliver 2->1 RequestVoteReply
         propose 1 a
         deliver 1->2 AppendEntries
         deliver 2->1 AppendEntriesReply",
    )
}

/// Part 4C: leader 1 of term 1 has committed `a` with node 2 (node 2 does not know it yet);
/// reads at any leader, elections and faults from there. Every read must cover `a`.
pub fn read_index() -> Bounds {
    Bounds {
        setup: leader_1_committed_a(),
        max_term: 3,
        proposals: 0,
        reads: 2,
        crashes: 0,
        drops: 1,
        duplicates: 1,
        reorders: 1,
        heartbeats: 1,
        max_depth: 6,
        ..Bounds::default()
    }
}

/// Part 3G: leader 1 of term 1 has committed `a` with node 2, so it may change the
/// configuration at once. Exactly one configuration change is made in each run, asked of any
/// leader at any moment: node 3's removal (single-server) or the replacement of {1, 2, 3} by
/// {1} (through the joint configuration, left by the leader once it commits); among elections,
/// a crash and restart, a drop, a reordering and a heartbeat round. Besides the
/// monitor, every state is checked for two configurations in use at once whose majorities do
/// not intersect (`raftcheck::search::overlap_violation`).
pub fn membership() -> Bounds {
    Bounds {
        setup: leader_1_committed_a(),
        max_term: 3,
        proposals: 0,
        changes: vec!["remove 3".into(), "replace 1".into()],
        conf_changes: 1,
        check_configurations: true,
        crashes: 1,
        drops: 1,
        duplicates: 0,
        reorders: 1,
        heartbeats: 1,
        max_depth: 6,
        ..Bounds::default()
    }
}

/// Part 3G, two changes: leader 1 of term 1 has committed `a` with node 2; two configuration
/// changes are asked in each run, of any leader at any moment (node 3's removal, node 2's
/// removal, node 3 back as a voter), among elections, a drop, a reordering and a heartbeat round. A
/// leader must refuse the second while the first is uncommitted (thesis 4.1: one change at a
/// time; the rule monitor judges every configuration entry appended). The check of
/// configurations with disjoint majorities stays off here: after two committed changes a
/// server removed by the first still holds the configuration of two steps back, whose majority
/// need not meet the newest one, and is harmless because it cannot win a vote (the servers
/// that could vote for it hold the longer log); the safety monitor judges what it could break.
pub fn two_changes() -> Bounds {
    Bounds {
        setup: leader_1_committed_a(),
        max_term: 2,
        proposals: 0,
        changes: vec!["remove 3".into(), "remove 2".into(), "add-voter 3".into()],
        conf_changes: 2,
        check_configurations: false,
        crashes: 0,
        drops: 1,
        duplicates: 0,
        reorders: 1,
        heartbeats: 1,
        max_depth: 6,
        ..Bounds::default()
    }
}
