//! Unit tests of the production extensions: pre-vote, check-quorum, leadership transfer,
//! ReadIndex and lease reads. One rule each; names end with the thesis section they defend
//! (Ongaro's dissertation, "Consensus: Bridging Theory and Practice").

use std::collections::BTreeMap;

use raft::message::{AppendEntriesReply, RequestVote, RequestVoteReply, TimeoutNow};
use raft::{
    Config, Envelope, Features, LogIndex, Message, NodeId, NotLeader, Raft, ReadState, Role, Term,
    TransferError,
};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::common;
use common::{env, out};

// ---------------------------------------------------------------------------------------------
// Helpers

const PRE_VOTE: Features = Features {
    pre_vote: true,
    check_quorum: false,
    lease_reads: false,
};
const CHECK_QUORUM: Features = Features {
    pre_vote: false,
    check_quorum: true,
    lease_reads: false,
};
const BOTH: Features = Features {
    pre_vote: true,
    check_quorum: true,
    lease_reads: false,
};
const LEASE: Features = Features {
    pre_vote: true,
    check_quorum: true,
    lease_reads: true,
};
const NONE: Features = Features {
    pre_vote: false,
    check_quorum: false,
    lease_reads: false,
};

fn node(id: u64, n: u64, features: Features) -> Raft {
    let peers = (1..=n).map(NodeId).collect();
    let config = Config::lab(NodeId(id), peers).with(features);
    Raft::new(config, &[], Vec::new(), ChaCha8Rng::seed_from_u64(id)).expect("fresh node")
}

fn pre_vote(term: u64, last: (u64, u64)) -> Message {
    Message::PreVote(RequestVote {
        term: Term(term),
        last_log_index: LogIndex(last.0),
        last_log_term: Term(last.1),
        transfer: false,
    })
}

fn request_vote(term: u64, last: (u64, u64), transfer: bool) -> Message {
    Message::RequestVote(RequestVote {
        term: Term(term),
        last_log_index: LogIndex(last.0),
        last_log_term: Term(last.1),
        transfer,
    })
}

/// The one reply `r` produced, which must be a vote or pre-vote reply: (term, granted).
fn vote_reply(r: &mut Raft) -> (u64, bool) {
    let o = out(r);
    assert_eq!(o.replies.len(), 1, "one reply: {:?}", o.replies);
    match &o.replies[0].msg {
        Message::RequestVoteReply(RequestVoteReply { term, vote_granted })
        | Message::PreVoteReply(RequestVoteReply { term, vote_granted }) => (term.0, *vote_granted),
        m => panic!("not a vote reply: {m:?}"),
    }
}

/// Cores wired by a queue in which messages wait until delivered; `cut` nodes lose everything
/// sent to or from them.
struct Net {
    nodes: BTreeMap<u64, Raft>,
    queue: Vec<Envelope>,
    cut: Vec<u64>,
    reads: Vec<(u64, ReadState)>,
}

impl Net {
    fn new(n: u64, features: Features) -> Net {
        Net {
            nodes: (1..=n).map(|i| (i, node(i, n, features))).collect(),
            queue: Vec::new(),
            cut: Vec::new(),
            reads: Vec::new(),
        }
    }

    fn get(&mut self, id: u64) -> &mut Raft {
        self.nodes.get_mut(&id).expect("node")
    }

    /// Collects every node's output into the queue.
    fn flush(&mut self) {
        for (id, r) in &mut self.nodes {
            let o = out(r);
            self.reads.extend(o.reads.into_iter().map(|s| (*id, s)));
            for e in o.replies.into_iter().chain(o.messages) {
                if !self.cut.contains(&e.from.0) && !self.cut.contains(&e.to.0) {
                    self.queue.push(e);
                }
            }
        }
    }

    /// Delivers until nothing is left (or 1000 messages, to catch loops).
    fn stabilize(&mut self) {
        self.flush();
        let mut budget = 1000;
        while !self.queue.is_empty() {
            let e = self.queue.remove(0);
            if let Some(r) = self.nodes.get_mut(&e.to.0) {
                r.step(e);
            }
            self.flush();
            budget -= 1;
            assert!(budget > 0, "no quiescence");
        }
    }

    fn tick(&mut self, ids: &[u64], n: u32) {
        for _ in 0..n {
            for id in ids {
                self.get(*id).tick();
            }
            self.stabilize();
        }
    }

    /// Node 1 becomes leader (through the pre-vote when it is on) and every node hears from it.
    fn elect_1(n: u64, features: Features) -> Net {
        let mut net = Net::new(n, features);
        net.get(1).campaign();
        net.stabilize();
        assert!(net.get(1).is_leader());
        net
    }

    fn commit_one(&mut self, leader: u64, cmd: &str) -> LogIndex {
        let (index, _) = self
            .get(leader)
            .propose(cmd.as_bytes().to_vec())
            .expect("leader");
        self.stabilize();
        // Followers learn the commit index with the next heartbeat.
        let heartbeat = self.get(leader).config().heartbeat_ticks;
        self.tick(&[leader], heartbeat);
        index
    }

    fn take_reads(&mut self) -> Vec<(u64, ReadState)> {
        std::mem::take(&mut self.reads)
    }
}

/// Ticks a lone follower until its role changes; returns how many ticks that took.
fn ticks_until_timeout(r: &mut Raft) -> u32 {
    let role = r.role();
    for t in 1..1000 {
        r.tick();
        if r.role() != role {
            return t;
        }
    }
    panic!("never timed out");
}

// ---------------------------------------------------------------------------------------------
// Pre-vote (thesis 9.6)

#[test]
fn pre_candidate_keeps_its_term_and_vote_and_persists_nothing_9_6() {
    let mut r = node(1, 3, PRE_VOTE);
    let _ = out(&mut r);
    ticks_until_timeout(&mut r);
    assert_eq!(r.role(), Role::PreCandidate);
    assert_eq!(r.term(), Term(0));
    assert_eq!(r.status().voted_for, None);
    let ready = r.ready();
    assert!(
        ready.pending_persist().is_none(),
        "a pre-vote saves nothing"
    );
    let o = ready.persist(|_| Ok::<(), ()>(())).expect("persist");
    let kinds: Vec<(u64, &str, Term)> = o
        .messages
        .iter()
        .map(|e| (e.to.0, e.msg.kind(), e.msg.term()))
        .collect();
    assert_eq!(
        kinds,
        vec![(2, "PreVote", Term(0)), (3, "PreVote", Term(0))],
        "PreVote carries the current term"
    );
}

#[test]
fn pre_vote_majority_starts_the_real_election_9_6() {
    let mut net = Net::new(3, PRE_VOTE);
    net.get(1).campaign();
    assert_eq!(net.get(1).role(), Role::PreCandidate);
    net.stabilize();
    assert!(net.get(1).is_leader());
    assert_eq!(net.get(1).term(), Term(1), "one real election, one term");
}

#[test]
fn answering_a_pre_vote_changes_nothing_on_the_voter_9_6() {
    // hashicorp/raft #609: granting a pre-vote must not reset the voter's election timer, nor
    // touch its term or vote.
    let mut a = node(2, 3, PRE_VOTE);
    for _ in 0..5 {
        a.tick();
    }
    let mut b = a.clone();
    b.step(env(1, 2, pre_vote(0, (0, 0))));
    assert_eq!(vote_reply(&mut b), (0, true));
    assert_eq!((b.term(), b.status().voted_for), (Term(0), None));
    assert_eq!(
        ticks_until_timeout(&mut a),
        ticks_until_timeout(&mut b),
        "the voter's timer was not reset"
    );
}

#[test]
fn pre_vote_refused_while_the_voter_hears_from_a_leader_9_6() {
    let mut net = Net::elect_1(3, PRE_VOTE);
    let last = (
        net.get(3).log().last_index().0,
        net.get(3).log().last_term().0,
    );
    let r = net.get(2);
    r.step(env(3, 2, pre_vote(1, last)));
    assert_eq!(vote_reply(r), (1, false), "node 2 heard from leader 1");
    let leader = net.get(1);
    leader.step(env(3, 1, pre_vote(1, last)));
    assert_eq!(vote_reply(leader), (1, false), "the leader itself refuses");
}

#[test]
fn pre_vote_refused_to_a_less_up_to_date_log_9_6() {
    let mut net = Net::elect_1(3, PRE_VOTE);
    net.commit_one(1, "a");
    // Node 2 has not heard from a leader for an election timeout, but node 3's log is behind.
    net.cut = vec![1];
    net.tick(&[2], 30);
    let r = net.get(2);
    r.step(env(3, 2, pre_vote(1, (0, 0))));
    assert_eq!(vote_reply(r), (1, false));
}

#[test]
fn pre_vote_refusal_carries_the_higher_term_and_the_pre_candidate_adopts_it_9_6() {
    // etcd #8243, openraft #1796: a node with the best log but a smaller term must still win.
    let mut lagging = node(1, 3, PRE_VOTE);
    lagging.campaign();
    let _ = out(&mut lagging);
    lagging.step(env(
        2,
        1,
        Message::PreVoteReply(RequestVoteReply {
            term: Term(5),
            vote_granted: false,
        }),
    ));
    assert_eq!((lagging.role(), lagging.term()), (Role::Follower, Term(5)));
    // And a voter in a higher term than the pre-candidate answers with it.
    let mut voter = node(2, 3, PRE_VOTE);
    voter.step(env(3, 2, request_vote(5, (0, 0), false)));
    let _ = out(&mut voter);
    voter.step(env(1, 2, pre_vote(1, (9, 1))));
    assert_eq!(vote_reply(&mut voter), (5, false));
}

#[test]
fn pre_vote_granted_by_a_voter_behind_the_pre_candidate_counts_9_6() {
    let mut r = node(1, 3, PRE_VOTE);
    r.step(env(2, 1, request_vote(4, (0, 0), false)));
    let _ = out(&mut r);
    r.campaign();
    let _ = out(&mut r);
    // Node 3 is still in term 0 and would vote for node 1 in term 5.
    r.step(env(
        3,
        1,
        Message::PreVoteReply(RequestVoteReply {
            term: Term(0),
            vote_granted: true,
        }),
    ));
    assert_eq!((r.role(), r.term()), (Role::Candidate, Term(5)));
}

#[test]
fn partitioned_node_does_not_raise_its_term_with_pre_vote_9_6() {
    let mut net = Net::elect_1(3, PRE_VOTE);
    net.cut = vec![3];
    net.tick(&[1, 2, 3], 300);
    assert_eq!(net.get(3).term(), Term(1));
    net.cut.clear();
    net.tick(&[1, 2, 3], 20);
    assert!(net.get(1).is_leader(), "the leader was not disturbed");
    assert_eq!(net.get(1).term(), Term(1));
    assert_eq!(net.get(3).status().leader, Some(NodeId(1)));
}

#[test]
fn without_pre_vote_a_partitioned_node_raises_its_term() {
    // The baseline the feature changes (the labs' behaviour).
    let mut net = Net::elect_1(3, NONE);
    net.cut = vec![3];
    net.tick(&[1, 2, 3], 300);
    assert!(net.get(3).term() > Term(2));
}

// ---------------------------------------------------------------------------------------------
// Check-quorum (thesis 6.2) and the vote lease (thesis 4.2.3)

#[test]
fn leader_without_contact_with_a_majority_steps_down_within_two_election_timeouts_6_2() {
    let mut net = Net::elect_1(5, CHECK_QUORUM);
    net.cut = vec![3, 4, 5];
    let mut ticks = 0;
    while net.get(1).is_leader() {
        net.tick(&[1], 1);
        ticks += 1;
        assert!(ticks <= 60, "still leader after two election timeouts");
    }
    assert_eq!(net.get(1).role(), Role::Follower);
    assert_eq!(net.get(1).term(), Term(1), "stepping down keeps the term");
    assert_eq!(net.get(1).status().leader, None);
    assert!(
        matches!(net.get(1).propose(b"x".to_vec()), Err(NotLeader { .. })),
        "it accepts no more proposals"
    );
}

#[test]
fn leader_hearing_from_a_majority_keeps_leading_6_2() {
    let mut net = Net::elect_1(5, CHECK_QUORUM);
    net.cut = vec![4, 5];
    net.tick(&[1, 2, 3], 300);
    assert!(net.get(1).is_leader());
}

#[test]
fn check_quorum_off_leader_in_minority_keeps_leading() {
    let mut net = Net::elect_1(5, NONE);
    net.cut = vec![3, 4, 5];
    net.tick(&[1], 300);
    assert!(net.get(1).is_leader());
}

#[test]
fn vote_refused_and_term_kept_while_hearing_from_a_leader_4_2_3() {
    let mut net = Net::elect_1(3, CHECK_QUORUM);
    let r = net.get(2);
    r.step(env(3, 2, request_vote(2, (0, 0), false)));
    assert_eq!(vote_reply(r), (1, false));
    assert_eq!(r.term(), Term(1), "the disruptive term is not adopted");
    // Once the lease ran out (an election timeout without the leader), the vote is granted.
    net.cut = vec![1];
    net.tick(&[2], 30);
    let r = net.get(2);
    r.step(env(3, 2, request_vote(2, (0, 0), false)));
    assert_eq!(vote_reply(r), (2, true));
}

#[test]
fn stuck_candidate_with_a_higher_term_is_freed_through_the_leader_4_2_3() {
    // etcd #8334: the leader's heartbeat is refused with the higher term; the leader adopts
    // it and steps down, and the cluster elects a leader at the higher term.
    let mut net = Net::elect_1(3, CHECK_QUORUM);
    net.get(3).campaign();
    net.stabilize();
    assert_eq!(net.get(3).term(), Term(2));
    assert!(net.get(1).is_leader(), "votes refused in the lease");
    net.tick(&[1], 10);
    assert!(!net.get(1).is_leader());
    assert_eq!(net.get(1).term(), Term(2));
    net.tick(&[1, 2, 3], 200);
    let leaders: Vec<u64> = (1..=3).filter(|i| net.get(*i).is_leader()).collect();
    assert_eq!(leaders.len(), 1);
}

// ---------------------------------------------------------------------------------------------
// Leadership transfer (thesis 3.10)

#[test]
fn transfer_to_an_up_to_date_follower_sends_timeout_now_and_it_wins_3_10() {
    let mut net = Net::elect_1(3, BOTH);
    net.commit_one(1, "a");
    net.get(1).transfer_leadership(NodeId(3)).expect("transfer");
    let o = out(net.get(1));
    let timeout_now: Vec<&Envelope> = o
        .messages
        .iter()
        .filter(|e| matches!(e.msg, Message::TimeoutNow(_)))
        .collect();
    assert_eq!(timeout_now.len(), 1);
    assert_eq!(timeout_now[0].to, NodeId(3));
    net.queue.extend(o.messages);
    net.stabilize();
    assert!(net.get(3).is_leader());
    assert_eq!(net.get(3).term(), Term(2));
    assert_eq!(net.get(1).status().leader, Some(NodeId(3)));
}

#[test]
fn transfer_brings_a_lagging_target_up_to_date_first_3_10() {
    let mut net = Net::elect_1(3, BOTH);
    net.cut = vec![3];
    for k in 0..5 {
        net.commit_one(1, &format!("c{k}"));
    }
    net.cut.clear();
    net.get(1).transfer_leadership(NodeId(3)).expect("transfer");
    let o = out(net.get(1));
    assert!(
        o.messages
            .iter()
            .all(|e| !matches!(e.msg, Message::TimeoutNow(_))),
        "no TimeoutNow before the target caught up"
    );
    net.queue.extend(o.messages);
    net.stabilize();
    assert!(
        net.get(3).is_leader(),
        "the lagging target caught up and won"
    );
    assert_eq!(net.get(3).log().last_index(), LogIndex(5));
}

#[test]
fn proposals_and_reads_refused_during_a_transfer_3_10() {
    let mut net = Net::elect_1(3, NONE);
    net.cut = vec![3];
    net.get(1).transfer_leadership(NodeId(3)).expect("transfer");
    assert_eq!(
        net.get(1).propose(b"x".to_vec()),
        Err(NotLeader {
            leader: Some(NodeId(3))
        })
    );
    assert!(net.get(1).read_index(1).is_err());
    assert_eq!(
        net.get(1).transfer_leadership(NodeId(2)),
        Err(TransferError::InProgress(NodeId(3)))
    );
}

#[test]
fn transfer_aborts_after_an_election_timeout_3_10() {
    let mut net = Net::elect_1(3, NONE);
    net.cut = vec![3];
    net.get(1).transfer_leadership(NodeId(3)).expect("transfer");
    net.tick(&[1], 29);
    assert_eq!(net.get(1).status().transferring_to, Some(NodeId(3)));
    net.tick(&[1], 1);
    assert_eq!(net.get(1).status().transferring_to, None);
    assert!(net.get(1).is_leader());
    assert!(net.get(1).propose(b"x".to_vec()).is_ok(), "proposals again");
}

#[test]
fn transfer_refused_to_itself_unknown_peers_and_by_followers_3_10() {
    let mut net = Net::elect_1(3, NONE);
    assert_eq!(
        net.get(1).transfer_leadership(NodeId(1)),
        Err(TransferError::AlreadyLeader(NodeId(1)))
    );
    assert_eq!(
        net.get(1).transfer_leadership(NodeId(9)),
        Err(TransferError::UnknownPeer(NodeId(9)))
    );
    assert!(matches!(
        net.get(2).transfer_leadership(NodeId(3)),
        Err(TransferError::NotLeader(_))
    ));
}

#[test]
fn timeout_now_skips_the_pre_vote_and_the_lease_3_10() {
    let mut net = Net::elect_1(3, BOTH);
    let term = net.get(3).term().0;
    let r = net.get(3);
    r.step(env(
        1,
        3,
        Message::TimeoutNow(TimeoutNow {
            term: Term(term),
            last_log_index: LogIndex(0),
        }),
    ));
    assert_eq!(r.role(), Role::Candidate, "no pre-vote round");
    let o = out(r);
    let votes: Vec<bool> = o
        .messages
        .iter()
        .filter_map(|e| match &e.msg {
            Message::RequestVote(m) => Some(m.transfer),
            _ => None,
        })
        .collect();
    assert_eq!(votes, vec![true, true], "RequestVotes marked as a transfer");
    // Node 2 hears from leader 1, yet grants a transfer's vote.
    let v = net.get(2);
    v.step(env(3, 2, request_vote(term + 1, (0, 0), true)));
    assert_eq!(vote_reply(v), (term + 1, true));
}

#[test]
fn stale_timeout_now_starts_no_election_3_10() {
    // raft-rs #234: a TimeoutNow of an earlier term, from a node that is not the leader, or
    // asking for entries the target lacks, is ignored.
    let mut net = Net::elect_1(3, NONE);
    net.commit_one(1, "a");
    let term = net.get(3).term().0;
    for (from, t, last) in [(1, term - 1, 1), (2, term, 1), (1, term, 5)] {
        let r = net.get(3);
        r.step(env(
            from,
            3,
            Message::TimeoutNow(TimeoutNow {
                term: Term(t),
                last_log_index: LogIndex(last),
            }),
        ));
        assert_eq!(r.role(), Role::Follower, "from {from} term {t} last {last}");
        let o = out(r);
        assert!(matches!(
            o.replies[0].msg,
            Message::TimeoutNowReply(raft::message::TimeoutNowReply {
                campaigning: false,
                ..
            })
        ));
    }
}

// ---------------------------------------------------------------------------------------------
// ReadIndex (thesis 6.4) and lease reads (6.4.1)

#[test]
fn read_is_answered_after_a_majority_acknowledges_its_round_6_4() {
    let mut net = Net::elect_1(3, NONE);
    let index = net.commit_one(1, "a");
    let _ = net.take_reads();
    net.get(1).read_index(7).expect("leader");
    let o = out(net.get(1));
    assert!(o.reads.is_empty(), "not before the round");
    let rounds: Vec<u64> = o
        .messages
        .iter()
        .filter_map(|e| match &e.msg {
            Message::AppendEntries(m) => Some(m.round),
            _ => None,
        })
        .collect();
    assert_eq!(rounds.len(), 2, "a heartbeat to each follower");
    assert!(rounds.iter().all(|r| *r == rounds[0] && *r > 0));
    net.queue.extend(o.messages);
    net.stabilize();
    assert_eq!(
        net.take_reads(),
        vec![(
            1,
            ReadState {
                id: 7,
                index: Ok(index)
            }
        )]
    );
}

#[test]
fn acknowledgement_of_an_older_round_does_not_confirm_a_read_6_4() {
    let mut net = Net::elect_1(3, NONE);
    net.commit_one(1, "a");
    net.get(1).read_index(1).expect("leader");
    let _ = out(net.get(1));
    let term = net.get(1).term();
    for from in [2, 3] {
        net.get(1).step(env(
            from,
            1,
            Message::AppendEntriesReply(AppendEntriesReply {
                term,
                success: true,
                match_index: LogIndex(1),
                conflict_term: None,
                conflict_index: LogIndex(0),
                round: 0,
            }),
        ));
    }
    assert!(out(net.get(1)).reads.is_empty());
}

#[test]
fn new_leader_serves_no_read_before_an_entry_of_its_term_commits_6_4() {
    // etcd #7331. A fresh leader has no entry of its term: it appends a no-op, and the read
    // waits until that commits.
    let mut net = Net::elect_1(3, NONE);
    let _ = net.take_reads();
    net.get(1).read_index(1).expect("leader");
    assert_eq!(net.get(1).log().last_index(), LogIndex(1), "a no-op entry");
    assert!(
        net.get(1)
            .log()
            .entry(LogIndex(1))
            .is_some_and(|e| e.command.is_empty())
    );
    let o = out(net.get(1));
    assert!(o.reads.is_empty());
    net.queue.extend(o.messages);
    net.stabilize();
    let reads = net.take_reads();
    assert_eq!(reads.len(), 1);
    assert_eq!(reads[0].1.index, Ok(LogIndex(1)));
}

#[test]
fn reads_registered_together_share_one_round_6_4() {
    let mut net = Net::elect_1(3, NONE);
    net.commit_one(1, "a");
    let _ = net.take_reads();
    for id in 1..=5 {
        net.get(1).read_index(id).expect("leader");
    }
    let o = out(net.get(1));
    let heartbeats = o
        .messages
        .iter()
        .filter(|e| matches!(e.msg, Message::AppendEntries(_)))
        .count();
    assert_eq!(heartbeats, 2, "one round for five reads");
    net.queue.extend(o.messages);
    net.stabilize();
    assert_eq!(net.take_reads().len(), 5);
}

#[test]
fn deposed_leader_fails_its_pending_reads_6_4() {
    let mut net = Net::elect_1(3, NONE);
    net.commit_one(1, "a");
    let _ = net.take_reads();
    net.cut = vec![1];
    net.get(1).read_index(1).expect("leader");
    net.flush();
    // A higher term reaches the old leader.
    net.cut.clear();
    net.get(1).step(env(2, 1, request_vote(5, (9, 9), false)));
    net.flush();
    let reads = net.take_reads();
    assert_eq!(reads.len(), 1);
    assert!(reads[0].1.index.is_err());
    assert!(
        net.get(2).read_index(2).is_err(),
        "a follower refuses reads"
    );
}

#[test]
fn lease_read_is_answered_without_a_round_inside_the_lease_6_4_1() {
    let mut net = Net::elect_1(3, LEASE);
    net.commit_one(1, "a");
    let _ = net.take_reads();
    net.get(1).read_index(1).expect("leader");
    let o = out(net.get(1));
    assert_eq!(o.reads.len(), 1, "answered at once");
    assert!(o.messages.is_empty(), "no round of heartbeats");
    // Cut off: the lease runs out before any other leader could be elected.
    net.cut = vec![2, 3];
    net.tick(&[1], 27);
    net.get(1).read_index(2).expect("still leader");
    assert!(
        out(net.get(1)).reads.is_empty(),
        "outside the lease: waits for a round"
    );
}

#[test]
fn lease_reads_need_check_quorum_6_4_1() {
    let features = Features {
        check_quorum: false,
        ..LEASE
    };
    let mut net = Net::elect_1(3, features);
    net.commit_one(1, "a");
    net.get(1).read_index(1).expect("leader");
    assert!(
        out(net.get(1)).reads.is_empty(),
        "no lease without check-quorum"
    );
}
