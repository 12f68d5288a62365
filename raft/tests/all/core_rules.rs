//! Unit tests of the protocol core, one paper rule each.
//!
//! Every test drives a [`Raft`] core by hand (ticks, messages, proposals), collects what it
//! produced through `ready().persist(..)`, and asserts the exact messages, replies and applies.
//! Test names end with the section or figure of the Raft paper (extended version) they check.

use std::sync::Arc;

use raft::message::{
    AppendEntries, AppendEntriesReply, InstallSnapshot, InstallSnapshotReply, RequestVote,
    RequestVoteReply,
};
use raft::{Apply, Config, Entry, LogIndex, Message, NodeId, NotLeader, Raft, Role, Term};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::common;
use common::{env, out};

// ---------------------------------------------------------------------------------------------
// Helpers

fn ids(peers: &[u64]) -> Vec<NodeId> {
    peers.iter().map(|p| NodeId(*p)).collect()
}

fn config(id: u64, peers: &[u64]) -> Config {
    Config::lab(NodeId(id), ids(peers))
}

fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

/// A fresh node, never persisted anything.
fn node(id: u64, peers: &[u64]) -> Raft {
    Raft::new(config(id, peers), &[], Vec::new(), rng(id)).expect("fresh node")
}

fn entries(terms: &[u64]) -> Vec<Entry> {
    terms
        .iter()
        .enumerate()
        .map(|(k, t)| Entry::new(Term(*t), format!("c{}", k + 1).into_bytes()))
        .collect()
}

fn ae(term: u64, prev: (u64, u64), terms: &[u64], commit: u64) -> Message {
    ae_entries(term, prev, entries(terms), commit)
}

fn ae_entries(term: u64, prev: (u64, u64), entries: Vec<Entry>, commit: u64) -> Message {
    Message::AppendEntries(AppendEntries {
        term: Term(term),
        prev_log_index: LogIndex(prev.0),
        prev_log_term: Term(prev.1),
        entries,
        leader_commit: LogIndex(commit),
        round: 0,
    })
}

fn ae_ok(term: u64, match_index: u64) -> Message {
    Message::AppendEntriesReply(AppendEntriesReply {
        term: Term(term),
        success: true,
        match_index: LogIndex(match_index),
        conflict_term: None,
        conflict_index: LogIndex(0),
        round: 0,
    })
}

fn ae_reject(term: u64, conflict_term: Option<u64>, conflict_index: u64) -> Message {
    Message::AppendEntriesReply(AppendEntriesReply {
        term: Term(term),
        success: false,
        match_index: LogIndex(0),
        conflict_term: conflict_term.map(Term),
        conflict_index: LogIndex(conflict_index),
        round: 0,
    })
}

fn rv(term: u64, last: (u64, u64)) -> Message {
    Message::RequestVote(RequestVote {
        term: Term(term),
        last_log_index: LogIndex(last.0),
        last_log_term: Term(last.1),
        transfer: false,
    })
}

fn vote(term: u64, granted: bool) -> Message {
    Message::RequestVoteReply(RequestVoteReply {
        term: Term(term),
        vote_granted: granted,
    })
}

fn log_terms(r: &Raft) -> Vec<u64> {
    r.log().entries().iter().map(|e| e.term.0).collect()
}

/// A follower `id` whose log holds entries of `terms`, put there by leader `leader` of `term`
/// (nothing committed).
fn follower_with_log(id: u64, peers: &[u64], leader: u64, term: u64, terms: &[u64]) -> Raft {
    let mut r = node(id, peers);
    r.step(env(leader, id, ae(term, (0, 0), terms, 0)));
    let o = out(&mut r);
    assert_eq!(
        o.replies,
        vec![env(id, leader, ae_ok(term, terms.len() as u64))]
    );
    assert_eq!(log_terms(&r), terms);
    r
}

/// Node `id` with a log of `terms` (appended in term `log_term`), elected leader for term
/// `log_term + 1` with votes from everyone. Its initial heartbeats are discarded.
fn leader_with_log(id: u64, peers: &[u64], log_term: u64, terms: &[u64]) -> Raft {
    let other = *peers.iter().find(|p| **p != id).expect("a peer");
    let mut r = if terms.is_empty() {
        node(id, peers)
    } else {
        follower_with_log(id, peers, other, log_term, terms)
    };
    r.campaign();
    let term = r.term().0;
    let _ = out(&mut r);
    for p in peers.iter().filter(|p| **p != id) {
        r.step(env(*p, id, vote(term, true)));
    }
    assert_eq!(r.role(), Role::Leader);
    let _ = out(&mut r);
    r
}

fn applied_commands(apply: &[Apply]) -> Vec<(u64, u64, String)> {
    apply
        .iter()
        .map(|a| match a {
            Apply::Command {
                index,
                term,
                command,
            } => (
                index.0,
                term.0,
                String::from_utf8(command.clone()).expect("utf8"),
            ),
            Apply::Snapshot { .. } | Apply::Membership { .. } => panic!("unexpected {a:?}"),
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Elections (section 5.2) and the election restriction (section 5.4.1)

#[test]
fn election_timeout_is_randomized_within_range_5_2() {
    let mut timeouts = std::collections::BTreeSet::new();
    for seed in 0..40u64 {
        let mut r = Raft::new(config(1, &[1, 2, 3]), &[], Vec::new(), rng(seed)).expect("node");
        let mut ticks = 0;
        loop {
            r.tick();
            ticks += 1;
            let o = out(&mut r);
            if !o.messages.is_empty() {
                assert_eq!(r.role(), Role::Candidate);
                break;
            }
            assert!(ticks < 60, "no election within 2 * election_ticks");
        }
        assert!(
            (30..60).contains(&ticks),
            "timeout {ticks} outside [30, 60)"
        );
        timeouts.insert(ticks);
    }
    // Randomization is what breaks split votes: 40 seeds must not all agree.
    assert!(timeouts.len() >= 10, "timeouts barely vary: {timeouts:?}");
}

#[test]
fn follower_times_out_and_campaigns_with_its_last_log_entry_5_2() {
    let mut r = follower_with_log(1, &[1, 2, 3], 2, 2, &[1, 2]);
    for _ in 0..60 {
        r.tick();
        if r.role() == Role::Candidate {
            break;
        }
    }
    assert_eq!(r.role(), Role::Candidate);
    assert_eq!(r.term(), Term(3));
    assert_eq!(r.status().voted_for, Some(NodeId(1)), "votes for itself");
    let o = out(&mut r);
    assert_eq!(
        o.messages,
        vec![env(1, 2, rv(3, (2, 2))), env(1, 3, rv(3, (2, 2)))]
    );
}

#[test]
fn vote_refused_to_candidate_with_less_up_to_date_log_5_4_1() {
    // The voter's log ends with (index 2, term 2).
    let mut r = follower_with_log(1, &[1, 2, 3], 2, 2, &[1, 2]);
    // A longer log with an older last term is less up-to-date.
    r.step(env(3, 1, rv(3, (5, 1))));
    // Same last term but shorter: less up-to-date.
    r.step(env(3, 1, rv(4, (1, 2))));
    let o = out(&mut r);
    assert_eq!(
        o.replies,
        vec![env(1, 3, vote(3, false)), env(1, 3, vote(4, false))]
    );
    assert_eq!(r.status().voted_for, None);
    // Same last term and as long: at least as up-to-date, granted.
    r.step(env(3, 1, rv(5, (2, 2))));
    let o = out(&mut r);
    assert_eq!(o.replies, vec![env(1, 3, vote(5, true))]);
    assert_eq!(r.status().voted_for, Some(NodeId(3)));
}

#[test]
fn vote_granted_to_candidate_with_later_last_term_5_4_1() {
    let mut r = follower_with_log(1, &[1, 2, 3], 2, 2, &[1, 2, 2, 2]);
    // Shorter, but its last entry has a later term.
    r.step(env(3, 1, rv(4, (1, 3))));
    let o = out(&mut r);
    assert_eq!(o.replies, vec![env(1, 3, vote(4, true))]);
}

#[test]
fn vote_granted_at_most_once_per_term_5_2() {
    let mut r = node(1, &[1, 2, 3]);
    r.step(env(2, 1, rv(1, (0, 0))));
    r.step(env(3, 1, rv(1, (0, 0))));
    // A retransmitted request from the candidate we voted for is granted again.
    r.step(env(2, 1, rv(1, (0, 0))));
    let o = out(&mut r);
    assert_eq!(
        o.replies,
        vec![
            env(1, 2, vote(1, true)),
            env(1, 3, vote(1, false)),
            env(1, 2, vote(1, true)),
        ]
    );
    assert_eq!(r.status().voted_for, Some(NodeId(2)));
    // A new term frees the vote.
    r.step(env(3, 1, rv(2, (0, 0))));
    let o = out(&mut r);
    assert_eq!(o.replies, vec![env(1, 3, vote(2, true))]);
}

#[test]
fn stale_term_request_vote_refused_fig2() {
    let mut r = follower_with_log(1, &[1, 2, 3], 2, 5, &[]);
    r.step(env(3, 1, rv(4, (9, 4))));
    let o = out(&mut r);
    assert_eq!(o.replies, vec![env(1, 3, vote(5, false))]);
    assert_eq!(r.term(), Term(5));
}

#[test]
fn candidate_becomes_leader_with_majority_5_2() {
    let peers = [1, 2, 3, 4, 5];
    let mut r = node(1, &peers);
    r.campaign();
    assert_eq!(r.role(), Role::Candidate);
    let o = out(&mut r);
    assert_eq!(
        o.messages,
        (2..=5)
            .map(|p| env(1, p, rv(1, (0, 0))))
            .collect::<Vec<_>>()
    );
    // Self + one vote + a refusal: 2 of 5, not yet.
    r.step(env(2, 1, vote(1, true)));
    r.step(env(3, 1, vote(1, false)));
    assert_eq!(r.role(), Role::Candidate);
    assert!(out(&mut r).messages.is_empty());
    // A duplicate of a vote already counted does not count twice.
    r.step(env(2, 1, vote(1, true)));
    assert_eq!(r.role(), Role::Candidate);
    // Third vote: a majority of 5. The new leader asserts itself with empty AppendEntries.
    r.step(env(4, 1, vote(1, true)));
    assert_eq!(r.role(), Role::Leader);
    let o = out(&mut r);
    assert_eq!(
        o.messages,
        [2, 3, 4, 5]
            .iter()
            .map(|p| env(1, *p, ae(1, (0, 0), &[], 0)))
            .collect::<Vec<_>>()
    );
    assert_eq!(r.status().leader, Some(NodeId(1)));
}

#[test]
fn vote_reply_from_an_older_term_is_not_counted_5_2() {
    let mut r = node(1, &[1, 2, 3]);
    r.campaign(); // term 1
    r.campaign(); // term 2 (the first election timed out)
    let _ = out(&mut r);
    r.step(env(2, 1, vote(1, true)));
    assert_eq!(
        r.role(),
        Role::Candidate,
        "a term-1 vote elects nobody in term 2"
    );
    r.step(env(2, 1, vote(2, true)));
    assert_eq!(r.role(), Role::Leader);
}

#[test]
fn candidate_steps_down_for_leader_of_same_term_5_2() {
    let mut r = node(1, &[1, 2, 3]);
    r.campaign();
    let _ = out(&mut r);
    r.step(env(2, 1, ae(1, (0, 0), &[1], 0)));
    assert_eq!(r.role(), Role::Follower);
    assert_eq!(r.term(), Term(1));
    assert_eq!(r.status().leader, Some(NodeId(2)));
    assert_eq!(
        r.status().voted_for,
        Some(NodeId(1)),
        "the vote of this term stays"
    );
    let o = out(&mut r);
    assert_eq!(o.replies, vec![env(1, 2, ae_ok(1, 1))]);
}

#[test]
fn higher_term_makes_leader_step_down_fig2() {
    let mut r = leader_with_log(1, &[1, 2, 3], 0, &[]);
    assert_eq!(r.term(), Term(1));
    // A follower answers with a newer term: the leader is out of date.
    r.step(env(2, 1, ae_reject(3, None, 0)));
    assert_eq!(r.role(), Role::Follower);
    assert_eq!(r.term(), Term(3));
    assert_eq!(r.status().voted_for, None);
    assert!(r.progress().is_empty());
    assert_eq!(r.propose(b"x".to_vec()), Err(NotLeader { leader: None }));
    let o = out(&mut r);
    assert!(o.messages.is_empty() && o.replies.is_empty());
    // No more heartbeats.
    for _ in 0..20 {
        r.tick();
    }
    assert!(out(&mut r).messages.is_empty());
}

#[test]
fn leader_sends_heartbeats_every_heartbeat_interval() {
    let mut r = leader_with_log(1, &[1, 2, 3], 0, &[]);
    for round in 1..=3 {
        for _ in 0..9 {
            r.tick();
            assert!(out(&mut r).messages.is_empty());
        }
        r.tick();
        let o = out(&mut r);
        assert_eq!(
            o.messages,
            vec![
                env(1, 2, ae(1, (0, 0), &[], 0)),
                env(1, 3, ae(1, (0, 0), &[], 0)),
            ],
            "heartbeat round {round}"
        );
    }
    // A leader never times out into an election.
    for _ in 0..200 {
        r.tick();
    }
    assert_eq!(r.role(), Role::Leader);
    assert_eq!(r.term(), Term(1));
}

#[test]
fn propose_on_follower_returns_not_leader_with_leader_hint() {
    let mut r = follower_with_log(1, &[1, 2, 3], 2, 1, &[]);
    assert_eq!(
        r.propose(b"x".to_vec()),
        Err(NotLeader {
            leader: Some(NodeId(2))
        })
    );
    assert_eq!(r.log().last_index(), LogIndex(0));
    // A fresh node knows no leader.
    let mut fresh = node(3, &[1, 2, 3]);
    assert_eq!(
        fresh.propose(b"x".to_vec()),
        Err(NotLeader { leader: None })
    );
}

// ---------------------------------------------------------------------------------------------
// Log replication (section 5.3)

#[test]
fn stale_term_append_entries_rejected_fig2() {
    let mut r = follower_with_log(1, &[1, 2, 3], 2, 3, &[1, 1]);
    r.step(env(3, 1, ae(2, (2, 1), &[2], 2)));
    let o = out(&mut r);
    assert_eq!(o.replies, vec![env(1, 3, ae_reject(3, None, 0))]);
    assert_eq!(log_terms(&r), [1, 1], "log untouched");
    assert_eq!(r.status().commit, LogIndex(0), "commit untouched");
    assert_eq!(
        r.status().leader,
        Some(NodeId(2)),
        "the old leader is not believed"
    );
}

#[test]
fn append_entries_consistency_check_rejects_missing_prev_5_3() {
    let mut r = follower_with_log(1, &[1, 2, 3], 2, 1, &[1]);
    r.step(env(2, 1, ae(1, (3, 1), &[1], 3)));
    let o = out(&mut r);
    // Too short: no conflict term, the hint is the follower's log length + 1.
    assert_eq!(o.replies, vec![env(1, 2, ae_reject(1, None, 2))]);
    assert_eq!(log_terms(&r), [1]);
    assert_eq!(r.status().commit, LogIndex(0));
}

#[test]
fn follower_truncates_conflicting_suffix_5_3() {
    let mut r = follower_with_log(1, &[1, 2, 3], 2, 2, &[1, 1, 2, 2]);
    r.step(env(3, 1, ae(3, (2, 1), &[3], 0)));
    let o = out(&mut r);
    assert_eq!(o.replies, vec![env(1, 3, ae_ok(3, 3))]);
    assert_eq!(log_terms(&r), [1, 1, 3], "entries 3.. of term 2 are gone");
    assert!(o.apply.is_empty());
}

#[test]
fn stale_reordered_append_does_not_truncate_5_3() {
    let mut r = node(1, &[1, 2, 3]);
    // The leader sent [1] then [1 1 1]; they arrive in the opposite order.
    r.step(env(2, 1, ae(1, (0, 0), &[1, 1, 1], 0)));
    r.step(env(2, 1, ae(1, (0, 0), &[1], 0)));
    let o = out(&mut r);
    assert_eq!(
        o.replies,
        vec![env(1, 2, ae_ok(1, 3)), env(1, 2, ae_ok(1, 1))],
        "the stale one only vouches for index 1"
    );
    assert_eq!(log_terms(&r), [1, 1, 1], "matching entries are not deleted");
}

#[test]
fn fast_backtracking_uses_conflict_term() {
    // Follower side: its entry at prev has another term; it names that term and the first
    // index it holds for it.
    let mut f = follower_with_log(2, &[1, 2, 3], 3, 3, &[1, 1, 3, 3, 3]);
    f.step(env(1, 2, ae(5, (5, 4), &[], 0)));
    let o = out(&mut f);
    assert_eq!(o.replies, vec![env(2, 1, ae_reject(5, Some(3), 3))]);

    // Leader side. Its log: 1 1 2 4 4 (term 5 now).
    let mut l = leader_with_log(1, &[1, 2, 3], 4, &[1, 1, 2, 4, 4]);
    assert_eq!(l.term(), Term(5));
    // Follower 2 has term 3 from index 3: the leader has no term-3 entry, so it jumps straight
    // to the follower's first index of that term (3), not one entry at a time.
    l.step(env(2, 1, ae_reject(5, Some(3), 3)));
    let o = out(&mut l);
    assert_eq!(
        o.messages,
        vec![env(
            1,
            2,
            ae_entries(5, (2, 1), entries(&[1, 1, 2, 4, 4])[2..].to_vec(), 0)
        )]
    );
    // Follower 3 has term 2 from index 3 up to (and past) the leader's prev: the leader has
    // term 2, and resends from just past its own last entry of that term (index 4).
    l.step(env(3, 1, ae_reject(5, Some(2), 3)));
    let o = out(&mut l);
    assert_eq!(
        o.messages,
        vec![env(
            1,
            3,
            ae_entries(5, (3, 2), entries(&[1, 1, 2, 4, 4])[3..].to_vec(), 0)
        )]
    );
    assert_eq!(l.progress()[&NodeId(3)].next, LogIndex(4));
    // A follower whose log is too short gives its length: next goes right there.
    let mut l = leader_with_log(1, &[1, 2, 3], 4, &[1, 1, 2, 4, 4]);
    l.step(env(2, 1, ae_reject(5, None, 2)));
    let o = out(&mut l);
    assert_eq!(
        o.messages,
        vec![env(
            1,
            2,
            ae_entries(5, (1, 1), entries(&[1, 1, 2, 4, 4])[1..].to_vec(), 0)
        )]
    );
}

#[test]
fn leader_progress_ignores_reordered_success_replies_5_3() {
    let mut l = leader_with_log(1, &[1, 2, 3], 0, &[]);
    for c in ["a", "b", "c"] {
        l.propose(c.as_bytes().to_vec()).expect("leader");
    }
    let _ = out(&mut l);
    l.step(env(2, 1, ae_ok(1, 3)));
    l.step(env(2, 1, ae_ok(1, 1))); // an older reply, late
    assert_eq!(l.progress()[&NodeId(2)].matched, LogIndex(3));
    assert_eq!(l.progress()[&NodeId(2)].next, LogIndex(4));
    assert_eq!(l.status().commit, LogIndex(3));
}

#[test]
fn commit_index_min_of_leader_commit_and_last_new_entry_fig2() {
    // Entries 3..5 came from an old leader and may not survive.
    let mut r = follower_with_log(1, &[1, 2, 3], 2, 1, &[1, 1, 1, 1, 1]);
    // The new leader has only proved that entries up to 2 match its log.
    r.step(env(3, 1, ae(2, (2, 1), &[], 4)));
    let o = out(&mut r);
    assert_eq!(o.replies, vec![env(1, 3, ae_ok(2, 2))]);
    assert_eq!(
        r.status().commit,
        LogIndex(2),
        "not 4: entries 3-4 were not checked"
    );
    assert_eq!(
        applied_commands(&o.apply),
        vec![(1, 1, "c1".into()), (2, 1, "c2".into())]
    );
    // Now it sends entry 3 (of its own term): the old 3..5 go, commit = min(5, 3).
    let mut e = entries(&[1, 1, 2]);
    e[2].command = b"new3".to_vec();
    r.step(env(3, 1, ae_entries(2, (2, 1), e[2..].to_vec(), 5)));
    let o = out(&mut r);
    assert_eq!(o.replies, vec![env(1, 3, ae_ok(2, 3))]);
    assert_eq!(log_terms(&r), [1, 1, 2]);
    assert_eq!(r.status().commit, LogIndex(3));
    assert_eq!(applied_commands(&o.apply), vec![(3, 2, "new3".into())]);
}

// ---------------------------------------------------------------------------------------------
// Commitment (section 5.4.2, Figure 8)

#[test]
fn leader_does_not_count_replicas_of_old_term_entries_fig8_5_4_2() {
    // Node 1 holds an uncommitted entry from term 2 and wins the election for term 3.
    let mut l = leader_with_log(1, &[1, 2, 3, 4, 5], 2, &[1, 2]);
    assert_eq!(l.term(), Term(3));
    // Followers 2 and 3 report they hold it too: index 2 is on 3 of 5 servers...
    l.step(env(2, 1, ae_ok(3, 2)));
    l.step(env(3, 1, ae_ok(3, 2)));
    assert_eq!(l.progress()[&NodeId(2)].matched, LogIndex(2));
    // ...but it is from term 2, so counting replicas does not commit it.
    assert_eq!(l.status().commit, LogIndex(0));
    let o = out(&mut l);
    assert!(o.apply.is_empty());
    // An entry of the current term, once on a majority, commits itself and everything before.
    assert_eq!(l.propose(b"x".to_vec()), Ok((LogIndex(3), Term(3))));
    let o = out(&mut l);
    assert_eq!(
        o.messages,
        [2, 3, 4, 5]
            .iter()
            .map(|p| {
                env(
                    1,
                    *p,
                    ae_entries(3, (2, 2), vec![Entry::new(Term(3), b"x".to_vec())], 0),
                )
            })
            .collect::<Vec<_>>()
    );
    l.step(env(2, 1, ae_ok(3, 3)));
    assert_eq!(l.status().commit, LogIndex(0), "2 of 5");
    l.step(env(3, 1, ae_ok(3, 3)));
    assert_eq!(
        l.status().commit,
        LogIndex(3),
        "3 of 5, of the current term"
    );
    let o = out(&mut l);
    assert_eq!(
        applied_commands(&o.apply),
        vec![(1, 1, "c1".into()), (2, 2, "c2".into()), (3, 3, "x".into())]
    );
}

#[test]
fn single_node_cluster_commits_on_its_own() {
    let mut r = node(1, &[1]);
    r.campaign();
    assert_eq!(r.role(), Role::Leader, "its own vote is a majority of one");
    assert_eq!(r.term(), Term(1));
    assert_eq!(r.propose(b"a".to_vec()), Ok((LogIndex(1), Term(1))));
    assert_eq!(r.propose(b"b".to_vec()), Ok((LogIndex(2), Term(1))));
    let o = out(&mut r);
    assert!(o.messages.is_empty());
    assert_eq!(
        applied_commands(&o.apply),
        vec![(1, 1, "a".into()), (2, 1, "b".into())]
    );
    assert_eq!(r.status().commit, LogIndex(2));
}

#[test]
fn applies_are_in_order_exactly_once() {
    let mut l = leader_with_log(1, &[1, 2, 3], 0, &[]);
    for c in ["a", "b", "c", "d"] {
        l.propose(c.as_bytes().to_vec()).expect("leader");
    }
    let _ = out(&mut l);
    l.step(env(2, 1, ae_ok(1, 2)));
    let first = out(&mut l);
    // Duplicate and stale acknowledgements change nothing.
    l.step(env(2, 1, ae_ok(1, 2)));
    l.step(env(3, 1, ae_ok(1, 1)));
    let none = out(&mut l);
    l.step(env(3, 1, ae_ok(1, 4)));
    let rest = out(&mut l);
    let o = out(&mut l);
    assert_eq!(
        applied_commands(&first.apply),
        vec![(1, 1, "a".into()), (2, 1, "b".into())]
    );
    assert!(none.apply.is_empty());
    assert_eq!(
        applied_commands(&rest.apply),
        vec![(3, 1, "c".into()), (4, 1, "d".into())]
    );
    assert!(o.apply.is_empty());
    assert_eq!(l.status().applied, LogIndex(4));
}

#[test]
fn every_request_gets_exactly_one_reply_in_order() {
    let mut r = node(1, &[1, 2, 3]);
    r.step(env(2, 1, rv(1, (0, 0))));
    r.step(env(3, 1, vote(0, false))); // a reply: gets no reply
    r.step(env(2, 1, ae(1, (0, 0), &[1], 0)));
    r.step(env(3, 1, ae(0, (0, 0), &[], 0))); // stale: still answered
    r.step(env(
        2,
        1,
        Message::InstallSnapshot(InstallSnapshot {
            term: Term(1),
            last_included_index: LogIndex(0),
            last_included_term: Term(0),
            membership: None,
            data: vec![],
        }),
    ));
    let o = out(&mut r);
    let kinds: Vec<(u64, &str)> = o.replies.iter().map(|e| (e.to.0, e.msg.kind())).collect();
    assert_eq!(
        kinds,
        vec![
            (2, "RequestVoteReply"),
            (2, "AppendEntriesReply"),
            (3, "AppendEntriesReply"),
            (2, "InstallSnapshotReply"),
        ]
    );
    assert!(o.messages.is_empty());
}

// ---------------------------------------------------------------------------------------------
// Persistence (Figure 2: "Updated on stable storage before responding to RPCs")

#[test]
fn vote_and_term_are_persisted_before_reply() {
    let mut r = node(1, &[1, 2, 3]);
    r.step(env(2, 1, rv(5, (0, 0))));
    let ready = r.ready();
    let pending = ready.pending_persist().expect("the vote must be persisted");
    let hs = raft::persist::decode(&pending.raft_state()).expect("decodes");
    assert_eq!(hs.term, Term(5));
    assert_eq!(hs.voted_for, Some(NodeId(2)));
    // If saving fails, the grant is never released.
    let failed = ready.persist(|_| Err::<(), &str>("disk full"));
    assert_eq!(failed.err(), Some("disk full"));

    // Same for accepting entries: the acknowledgement goes out only with the log saved.
    let mut r = node(1, &[1, 2, 3]);
    r.step(env(2, 1, ae(1, (0, 0), &[1, 1], 0)));
    let ready = r.ready();
    let mut saved = None;
    let o = ready
        .persist(|p| {
            saved = Some(raft::persist::decode(&p.raft_state()).expect("decodes"));
            Ok::<(), ()>(())
        })
        .expect("persist");
    let saved = saved.expect("save was called");
    assert_eq!(saved.term, Term(1));
    assert_eq!(saved.log.last_index(), LogIndex(2));
    assert_eq!(o.replies, vec![env(1, 2, ae_ok(1, 2))]);
    // Nothing changed: nothing to save.
    r.step(env(2, 1, ae(1, (2, 1), &[], 0)));
    assert!(r.ready().pending_persist().is_none());
}

#[test]
fn restart_from_persisted_state_keeps_term_vote_log() {
    let mut r = node(1, &[1, 2, 3]);
    r.step(env(2, 1, ae(2, (0, 0), &[1, 2], 0)));
    r.step(env(3, 1, rv(3, (2, 2))));
    let mut state = Vec::new();
    let _ = r
        .ready()
        .persist(|p| {
            state = p.raft_state();
            Ok::<(), ()>(())
        })
        .expect("persist");
    drop(r);
    let mut r = Raft::new(config(1, &[1, 2, 3]), &state, Vec::new(), rng(9)).expect("restart");
    let s = r.status();
    assert_eq!(
        (s.role, s.term, s.voted_for, s.leader, s.commit, s.applied),
        (
            Role::Follower,
            Term(3),
            Some(NodeId(3)),
            None,
            LogIndex(0),
            LogIndex(0)
        )
    );
    assert_eq!(log_terms(&r), [1, 2]);
    // The vote survives the crash: another candidate of term 3 is refused.
    r.step(env(2, 1, rv(3, (9, 9))));
    let o = out(&mut r);
    assert_eq!(o.replies, vec![env(1, 2, vote(3, false))]);
    // Corrupt state is an error, not a silent empty node.
    assert!(
        Raft::new(
            config(1, &[1, 2, 3]),
            &state[..state.len() - 1],
            Vec::new(),
            rng(9)
        )
        .is_err()
    );
}

// ---------------------------------------------------------------------------------------------
// Log compaction and InstallSnapshot (section 7)

/// A 3-node leader (term 1) that committed and applied `n` entries with follower 2's help.
fn leader_with_applied(n: u64) -> Raft {
    let mut l = leader_with_log(1, &[1, 2, 3], 0, &[]);
    for i in 1..=n {
        l.propose(format!("c{i}").into_bytes()).expect("leader");
    }
    let _ = out(&mut l);
    l.step(env(2, 1, ae_ok(1, n)));
    let o = out(&mut l);
    assert_eq!(o.apply.len() as u64, n);
    l
}

#[test]
fn compact_ignores_stale_or_unapplied_index() {
    let mut l = leader_with_applied(3);
    l.propose(b"c4".to_vec()).expect("leader"); // index 4: not committed, not applied
    let _ = out(&mut l);
    l.compact(LogIndex(4), b"s4".to_vec());
    assert_eq!(
        l.log().snapshot_index(),
        LogIndex(0),
        "index 4 is not applied"
    );
    assert!(l.ready().pending_persist().is_none());
    l.compact(LogIndex(2), b"s2".to_vec());
    assert_eq!(l.log().snapshot_index(), LogIndex(2));
    assert_eq!(l.log().last_index(), LogIndex(4));
    let ready = l.ready();
    let p = ready.pending_persist().expect("snapshot to save");
    assert_eq!(p.snapshot.as_deref().map(Vec::as_slice), Some(&b"s2"[..]));
    let _ = ready.persist(|_| Ok::<(), ()>(()));
    // Stale: at or below the current snapshot.
    l.compact(LogIndex(1), b"s1".to_vec());
    l.compact(LogIndex(2), b"s2 again".to_vec());
    assert_eq!(l.log().snapshot_index(), LogIndex(2));
    assert!(l.ready().pending_persist().is_none());
}

#[test]
fn leader_sends_snapshot_when_follower_needs_compacted_entries_7() {
    let mut l = leader_with_applied(3);
    l.compact(LogIndex(2), b"snap2".to_vec());
    let _ = out(&mut l);
    // Follower 3 never answered: nextIndex[3] is still 1, inside the snapshot. The next
    // heartbeat carries the snapshot instead of entries.
    assert_eq!(l.progress()[&NodeId(3)].next, LogIndex(1));
    for _ in 0..10 {
        l.tick();
    }
    let o = out(&mut l);
    assert_eq!(
        o.messages,
        vec![
            env(1, 2, ae(1, (3, 1), &[], 3)),
            env(
                1,
                3,
                Message::InstallSnapshot(InstallSnapshot {
                    term: Term(1),
                    last_included_index: LogIndex(2),
                    last_included_term: Term(1),
                    // The configuration the snapshot covers (the bootstrap one), always named.
                    membership: Some(raft::Membership::voters([NodeId(1), NodeId(2), NodeId(3)])),
                    data: b"snap2".to_vec(),
                })
            )
        ]
    );
    // Once installed, the leader continues with the entries after the snapshot.
    l.step(env(
        3,
        1,
        Message::InstallSnapshotReply(InstallSnapshotReply {
            term: Term(1),
            last_included_index: LogIndex(2),
        }),
    ));
    assert_eq!(l.progress()[&NodeId(3)].matched, LogIndex(2));
    let o = out(&mut l);
    assert_eq!(
        o.messages,
        vec![env(
            1,
            3,
            ae_entries(1, (2, 1), vec![Entry::new(Term(1), b"c3".to_vec())], 3)
        )]
    );
}

#[test]
fn a_snapshot_on_its_way_is_not_sent_again_for_each_older_reply_7() {
    let snapshots_to_3 = |o: &raft::Persisted| -> Vec<u64> {
        o.messages
            .iter()
            .filter(|m| m.to == NodeId(3))
            .filter_map(|m| match &m.msg {
                Message::InstallSnapshot(s) => Some(s.last_included_index.0),
                _ => None,
            })
            .collect()
    };
    let mut l = leader_with_applied(3);
    l.compact(LogIndex(2), b"snap2".to_vec());
    let _ = out(&mut l);
    for _ in 0..10 {
        l.tick();
    }
    assert_eq!(
        snapshots_to_3(&out(&mut l)),
        vec![2],
        "the heartbeat carries it"
    );
    // Replies to requests sent before it (heartbeats', acknowledging nothing new) come back
    // first: the snapshot is on its way, and none of them sends it again.
    for _ in 0..3 {
        l.step(env(3, 1, ae_ok(1, 0)));
    }
    let o = out(&mut l);
    assert!(
        o.messages.iter().all(|m| m.to != NodeId(3)),
        "sent again: {:?}",
        o.messages
    );
    // A newer snapshot is worth sending at once.
    l.compact(LogIndex(3), b"snap3".to_vec());
    let _ = out(&mut l);
    l.step(env(3, 1, ae_ok(1, 0)));
    assert_eq!(snapshots_to_3(&out(&mut l)), vec![3]);
}

#[test]
fn install_snapshot_replaces_log_and_applies_snapshot_7() {
    let snap = |term: u64, index: u64, data: &[u8]| {
        Message::InstallSnapshot(InstallSnapshot {
            term: Term(2),
            last_included_index: LogIndex(index),
            last_included_term: Term(term),
            membership: None,
            data: data.to_vec(),
        })
    };
    // A conflicting log is discarded entirely (Figure 13, step 7).
    let mut r = follower_with_log(1, &[1, 2, 3], 2, 1, &[1, 1]);
    r.step(env(2, 1, snap(2, 5, b"five")));
    let ready = r.ready();
    let p = ready.pending_persist().expect("persist");
    assert_eq!(p.snapshot.as_deref().map(Vec::as_slice), Some(&b"five"[..]));
    let o = ready.persist(|_| Ok::<(), ()>(())).expect("persist");
    assert_eq!(
        o.replies,
        vec![env(
            1,
            2,
            Message::InstallSnapshotReply(InstallSnapshotReply {
                term: Term(2),
                last_included_index: LogIndex(5),
            })
        )]
    );
    assert_eq!(
        o.apply,
        vec![Apply::Snapshot {
            index: LogIndex(5),
            term: Term(2),
            data: Arc::new(b"five".to_vec()),
        }]
    );
    let s = r.status();
    assert_eq!(
        (s.snapshot_index, s.last_index, s.commit, s.applied),
        (LogIndex(5), LogIndex(5), LogIndex(5), LogIndex(5))
    );
    assert!(r.log().entries().is_empty());
    assert_eq!(r.log().last_term(), Term(2));

    // A log that has the snapshot's last entry keeps what follows it (Figure 13, step 6).
    let mut r = follower_with_log(1, &[1, 2, 3], 2, 2, &[1, 1, 2, 2]);
    r.step(env(2, 1, snap(1, 2, b"two")));
    let o = out(&mut r);
    assert_eq!(o.apply.len(), 1);
    assert_eq!(r.log().snapshot_index(), LogIndex(2));
    assert_eq!(log_terms(&r), [2, 2], "entries 3-4 are kept");
    assert_eq!(r.status().commit, LogIndex(2));
}

#[test]
fn snapshot_older_than_commit_is_not_installed_7() {
    let mut r = follower_with_log(1, &[1, 2, 3], 2, 1, &[1, 1, 1]);
    r.step(env(2, 1, ae(1, (3, 1), &[], 3)));
    let _ = out(&mut r);
    assert_eq!(r.status().commit, LogIndex(3));
    r.step(env(
        2,
        1,
        Message::InstallSnapshot(InstallSnapshot {
            term: Term(1),
            last_included_index: LogIndex(2),
            last_included_term: Term(1),
            membership: None,
            data: b"old".to_vec(),
        }),
    ));
    let o = out(&mut r);
    assert!(o.apply.is_empty(), "would roll the state machine back");
    assert_eq!(o.replies.len(), 1);
    assert_eq!(r.log().snapshot_index(), LogIndex(0));
    assert_eq!(log_terms(&r), [1, 1, 1]);
}

#[test]
fn restart_from_snapshot_starts_commit_and_applied_at_it_7() {
    let mut l = leader_with_applied(3);
    l.compact(LogIndex(2), b"snap2".to_vec());
    let (mut state, mut snapshot) = (Vec::new(), Vec::new());
    let _ = l
        .ready()
        .persist(|p| {
            state = p.raft_state();
            snapshot = p.snapshot.as_deref().cloned().unwrap_or_default();
            Ok::<(), ()>(())
        })
        .expect("persist");
    assert_eq!(snapshot, b"snap2");
    let r = Raft::new(config(1, &[1, 2, 3]), &state, snapshot, rng(3)).expect("restart");
    let s = r.status();
    assert_eq!(
        (
            s.role,
            s.term,
            s.snapshot_index,
            s.last_index,
            s.commit,
            s.applied
        ),
        (
            Role::Follower,
            Term(1),
            LogIndex(2),
            LogIndex(3),
            LogIndex(2),
            LogIndex(2)
        )
    );
}

/// A leader that learns, from a late reply to a request it sent in an older term, that a
/// follower "has" its snapshot, although the follower refused that stale request.
///
/// Scenario (3 nodes):
/// 1. Node 1 leads term 1, commits c1..c3 with node 2, compacts through 3 and sends node 3
///    InstallSnapshot(term 1, last=3). That message is delayed.
/// 2. Node 3, cut off, campaigns into term 2; its RequestVote reaches node 1, which steps down
///    (and refuses: node 3's log is empty).
/// 3. Node 1 wins term 3 with node 2's vote; node 3 grants too and is now at term 3.
/// 4. The delayed term-1 InstallSnapshot reaches node 3, which refuses it (stale term) and
///    replies `InstallSnapshotReply { term: 3, last_included_index: 3 }`.
/// 5. Node 1, leader of term 3, takes that reply as an acknowledgement: matchIndex[3] = 3.
///
/// Node 3 has nothing, yet the leader never sends it the snapshot again: every AppendEntries
/// (prev = 3) is refused with conflict_index = 1 and nextIndex is clamped to matchIndex + 1.
#[test]
fn stale_term_install_snapshot_reply_does_not_advance_match_7() {
    let peers = [1, 2, 3];
    let mut l = leader_with_applied(3);
    let mut f3 = node(3, &peers);
    let mut f2 = node(2, &peers);
    l.compact(LogIndex(3), b"snap3".to_vec());
    let _ = out(&mut l);
    // Node 3 never answered: it needs the snapshot, which the next heartbeat sends.
    for _ in 0..10 {
        l.tick();
    }
    let o = out(&mut l);
    let delayed = o
        .messages
        .into_iter()
        .find(|m| m.to == NodeId(3))
        .expect("a message to node 3");
    assert_eq!(delayed.msg.kind(), "InstallSnapshot");

    // Node 3 campaigns alone into term 2; node 1 hears it and steps down.
    f3.campaign();
    f3.campaign();
    assert_eq!(f3.term(), Term(2));
    let _ = out(&mut f3);
    l.step(env(3, 1, rv(2, (0, 0))));
    assert_eq!(out(&mut l).replies, vec![env(1, 3, vote(2, false))]);
    assert_eq!(l.role(), Role::Follower);

    // Node 1 is elected for term 3; node 3 grants as well.
    l.campaign();
    assert_eq!(l.term(), Term(3));
    let o = out(&mut l);
    for m in o.messages {
        let target = if m.to == NodeId(2) { &mut f2 } else { &mut f3 };
        target.step(m);
        for reply in out(target).replies {
            l.step(reply);
        }
    }
    assert_eq!(l.role(), Role::Leader);
    assert_eq!(f3.term(), Term(3));
    let heartbeats = out(&mut l).messages;

    // The delayed term-1 InstallSnapshot arrives; node 3 refuses it.
    f3.step(delayed);
    let o = out(&mut f3);
    assert!(o.apply.is_empty(), "stale request: not installed");
    assert_eq!(f3.log().last_index(), LogIndex(0));
    let stale_reply = o.replies.into_iter().next().expect("a reply");
    l.step(stale_reply);

    // Run heartbeats for a while between nodes 1 and 3, delivering everything.
    let mut pending = heartbeats
        .into_iter()
        .filter(|m| m.to == NodeId(3))
        .collect::<Vec<_>>();
    for _ in 0..5 {
        for m in std::mem::take(&mut pending) {
            f3.step(m);
            for reply in out(&mut f3).replies {
                l.step(reply);
            }
            pending.extend(
                out(&mut l)
                    .messages
                    .into_iter()
                    .filter(|m| m.to == NodeId(3)),
            );
        }
        for _ in 0..10 {
            l.tick();
        }
        pending.extend(
            out(&mut l)
                .messages
                .into_iter()
                .filter(|m| m.to == NodeId(3)),
        );
    }
    assert_eq!(
        f3.log().last_index(),
        LogIndex(3),
        "node 3 never receives the snapshot: the leader believes matchIndex[3] = {} \
         from the reply to a term-1 request node 3 refused",
        l.progress()[&NodeId(3)].matched
    );
}
