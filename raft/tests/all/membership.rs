//! Membership changes (thesis chapter 4), rule by rule, on the scenario cluster of
//! `raftcheck::scenario` (its safety monitor watches every case; the golden scripts
//! `testdata/confchange_*.txt` tell the same stories message by message).

use raft::{NodeId, Role};
use raftcheck::scenario::Cluster;

fn run(c: &mut Cluster, commands: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    for cmd in commands {
        out.extend(c.run(cmd).unwrap_or_else(|e| panic!("{cmd}: {e}")));
    }
    assert!(c.violation().is_none(), "{:?}", c.violation());
    out
}

/// Nodes 1..=n with bootstrap voters `voters`; node 1 leads with an entry of its term
/// committed.
fn cluster(n: u64, voters: &str) -> Cluster {
    let mut c = Cluster::default();
    run(
        &mut c,
        &[
            &format!("nodes {n} voters={voters}"),
            "campaign 1",
            "stabilize",
            "propose 1 a",
            "stabilize",
        ],
    );
    c
}

fn voters(c: &Cluster, id: u64) -> Vec<u64> {
    let node = c.node(id).expect("running");
    node.membership().voters.iter().map(|v| v.0).collect()
}

#[test]
fn learner_never_campaigns_and_its_vote_elects_nobody_4_2_1() {
    let mut c = cluster(3, "1,2");
    run(&mut c, &["conf 1 add-learner 3", "stabilize"]);
    assert!(c.node(3).expect("3").membership().is_learner(NodeId(3)));
    let out = run(&mut c, &["campaign 3"]);
    assert!(
        out.iter().all(|l| !l.contains("RequestVote")),
        "a learner sent vote requests: {out:?}"
    );
    // With the other voter gone, 2 asks both 1 and 3; 3 grants, but {2,3} is no majority of
    // {1,2}.
    let out = run(&mut c, &["crash 1", "campaign 2", "stabilize"]);
    assert!(
        out.iter()
            .any(|l| l.contains("3->2 RequestVoteReply term=2 granted")),
        "the learner answers (etcd #10998): {out:?}"
    );
    assert_eq!(c.node(2).expect("2").role(), Role::Candidate);
}

#[test]
fn new_voter_must_have_caught_up_4_2_1() {
    let mut c = cluster(2, "1");
    for k in 0..70 {
        run(&mut c, &[&format!("propose 1 c{k}")]);
    }
    run(&mut c, &["partition 1 | 2"]);
    let out = run(&mut c, &["conf 1 add-voter 2"]);
    assert!(
        out.iter()
            .any(|l| l.contains("refused") && l.contains("behind")),
        "{out:?}"
    );
    assert_eq!(voters(&c, 1), vec![1]);
    // As a learner it catches up; then it may vote.
    run(
        &mut c,
        &[
            "heal",
            "conf 1 add-learner 2",
            "stabilize",
            "tick 10 1",
            "stabilize",
        ],
    );
    let out = run(&mut c, &["conf 1 add-voter 2", "stabilize"]);
    assert!(
        out.iter().any(|l| l.contains("conf add-voter 2 -> index=")),
        "{out:?}"
    );
    assert_eq!(voters(&c, 2), vec![1, 2]);
}

#[test]
fn one_change_at_a_time_and_only_after_an_entry_of_the_term_commits_4_1() {
    let mut c = Cluster::default();
    run(&mut c, &["nodes 4 voters=1,2,3", "campaign 1", "stabilize"]);
    let out = run(&mut c, &["conf 1 add-learner 4"]);
    assert!(
        out.iter()
            .any(|l| l.contains("no entry of the leader's term")),
        "{out:?}"
    );
    run(&mut c, &["stabilize"]);
    let out = run(&mut c, &["conf 1 add-learner 4", "conf 1 remove 3"]);
    assert!(
        out.iter().any(|l| l.contains("has not committed yet")),
        "{out:?}"
    );
}

#[test]
fn configuration_survives_restart_through_the_snapshot_7() {
    let mut c = cluster(4, "1,2,3");
    run(
        &mut c,
        &[
            "conf 1 add-learner 4",
            "stabilize",
            "propose 1 b",
            "stabilize",
            "tick 10 1",
            "stabilize",
        ],
    );
    // Node 2 compacts through the configuration entry: only its snapshot knows it now.
    run(&mut c, &["compact 2 3", "crash 2", "restart 2"]);
    let node = c.node(2).expect("2");
    assert!(node.log().membership_changes().is_empty());
    assert!(
        node.membership().is_learner(NodeId(4)),
        "{}",
        node.membership()
    );
}

#[test]
fn snapshot_sent_to_a_new_member_carries_the_configuration_7() {
    let mut c = cluster(4, "1,2,3");
    run(&mut c, &["conf 1 add-voter 2", "stabilize"]); // refused: already a voter
    run(&mut c, &["propose 1 b", "stabilize", "compact 1 2"]);
    run(
        &mut c,
        &[
            "conf 1 add-learner 4",
            "stabilize",
            "tick 10 1",
            "stabilize",
        ],
    );
    let node = c.node(4).expect("4");
    assert!(
        node.log().snapshot_index().0 >= 2,
        "4 was caught up by snapshot"
    );
    assert_eq!(
        node.log().snapshot_membership().map(|m| m.voters.len()),
        Some(3)
    );
    assert!(node.membership().is_learner(NodeId(4)));
}

#[test]
fn truncated_configuration_entry_reverts_to_the_previous_configuration_4_1() {
    let mut c = cluster(3, "1,2,3");
    run(&mut c, &["partition 1 | 2,3", "conf 1 remove 3"]);
    assert_eq!(voters(&c, 1), vec![1, 2], "in force on append");
    run(
        &mut c,
        &[
            "campaign 2",
            "stabilize",
            "propose 2 b",
            "stabilize",
            "heal",
            "tick 10 2",
            "stabilize",
        ],
    );
    assert_eq!(voters(&c, 1), vec![1, 2, 3], "the entry was truncated");
    assert_eq!(c.node(1).expect("1").status().membership_index.0, 0);
}

#[test]
fn removed_leader_steps_down_once_its_removal_commits_4_2_2() {
    let mut c = cluster(3, "1,2,3");
    run(&mut c, &["conf 1 remove 1"]);
    assert!(
        c.node(1).expect("1").is_leader(),
        "it leads until the removal commits"
    );
    run(&mut c, &["stabilize"]);
    let node = c.node(1).expect("1");
    assert_eq!(node.role(), Role::Follower);
    let out = run(&mut c, &["tick 200 1"]);
    assert!(out.iter().all(|l| !l.contains("RequestVote")), "{out:?}");
}
