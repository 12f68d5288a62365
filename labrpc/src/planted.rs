//! Planted bugs: classic student mistakes that the reference solutions can be switched into, one
//! at a time, to prove that the graded suites catch them (`tests/tests/suite_checks.rs`).
//!
//! A hook in the reference code reads `planted!(VoteTwice)`: `false` unless the crate is built
//! with the `planted-bugs` feature **and** that bug was switched on for the current thread with
//! [`set`] (a simulated run is one thread). The hooks sit inside the SOLUTION regions, so a
//! handout, which replaces those regions with stubs, carries none of them.
//!
//! The test harness switches a bug on for a run from `RAFTLAB_PLANT=<name>`
//! ([`Bug::from_name`]); the grader never sets it.

use std::cell::Cell;

macro_rules! bugs {
    ($($(#[doc = $doc:literal])* $name:ident => $text:literal,)*) => {
        /// Every bug that can be planted, named after the mistake.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Bug {
            $($(#[doc = $doc])* $name,)*
        }

        impl Bug {
            /// Every bug, in declaration order.
            pub const ALL: &'static [Bug] = &[$(Bug::$name,)*];

            /// The name used in `RAFTLAB_PLANT` (the variant's name).
            pub fn name(self) -> &'static str {
                match self {
                    $(Bug::$name => stringify!($name),)*
                }
            }

            /// What the mistake is, in one line.
            pub fn description(self) -> &'static str {
                match self {
                    $(Bug::$name => $text,)*
                }
            }
        }
    };
}

bugs! {
    // Raft: votes (section 5.2, 5.4.1).
    VoteIgnoresLog => "grants votes without the election restriction (candidate's log at least as up-to-date, 5.4.1)",
    VoteComparesLengthOnly => "judges the candidate's log up-to-date by its length alone, ignoring the last entry's term",
    VoteTwice => "grants a vote in the current term even after voting for another candidate",
    VoteNotPersisted => "does not persist votedFor when granting a vote",
    TermNotPersisted => "does not persist currentTerm when adopting a higher term",
    StaleVoteCounted => "counts vote replies from earlier terms",
    // Raft: replication and commitment (5.3, 5.4.2).
    EntriesNotPersisted => "a follower does not persist the entries it appends before acknowledging them",
    AppendAcceptsStaleTerm => "a follower accepts AppendEntries from a leader of an older term",
    TruncateMatchingSuffix => "a follower deletes everything after prevLogIndex, even entries that match",
    MatchIndexFromOwnLog => "a follower takes its whole log as matching (to commit and to acknowledge), not just what the request proved",
    StaleAppendReplyCounted => "a leader counts AppendEntries replies from earlier terms",
    CommitOldTerm => "a leader commits entries of earlier terms by counting replicas (the Figure 8 mistake)",
    CommitWithoutMajority => "a leader's commit quorum is one node short",
    // Raft: snapshots (section 7).
    SnapshotRollsBack => "a follower installs a snapshot older than its commit index",
    SnapshotNotPersisted => "installing a snapshot does not persist the snapshot itself",
    SnapshotWrongTerm => "compaction records the current term as the snapshot's last term instead of the entry's",
    // Raft: rules that no invariant sees in the suites' runs (the rule monitor's, raftcheck::rules).
    GrantKeepsTimer => "a voter does not reset its election timer when it grants a vote",
    StaleAppendResetsTimer => "a follower resets its election timer on an AppendEntries of an older term",
    ReplyTermIgnored => "a leader ignores a higher term in an AppendEntries reply and keeps leading",
    CommitOneAtATime => "a leader advances its commit index by one entry per acknowledgement, not to the highest N on a majority",
    HeartbeatTooSlow => "a leader sends heartbeats every two heartbeat intervals",
    NoHeartbeatOnElection => "a new leader waits for its heartbeat timer instead of sending AppendEntries at once",
    RetryWaitsForHeartbeat => "a leader that moves nextIndex back after a refusal waits for the next heartbeat to retry",
    VoteRefusedToSameCandidate => "a voter refuses a repeated RequestVote from the candidate it already voted for",
    ApplyOneAtATime => "hands the service at most one committed entry per Ready",
    AppendKeepsTimer => "a follower does not reset its election timer on an AppendEntries from its leader that it refuses for its log",
    ElectionTooEarly => "a node starts an election once half its election timeout has elapsed",
    VoteLeaseIgnored => "with check-quorum, a voter that hears from a live leader still adopts the term of a RequestVote and may grant it (thesis 4.2.3)",
    CandidateForgetsOwnVote => "a candidate votes for itself but does not count its own vote",
    VoteRequestCarriesTerm => "a RequestVote carries the candidate's current term as lastLogTerm instead of its last entry's term",
    AppendPrevTermIsCurrentTerm => "an AppendEntries carries the leader's current term as prevLogTerm instead of the term of the entry at prevLogIndex",
    RemovedLeaderKeepsLeading => "a leader whose removal committed keeps leading (thesis 4.2.2)",
    PreVoteGrantResetsTimer => "granting a pre-vote resets the voter's election timer (hashicorp/raft #609)",
    CheckQuorumStepsDownEarly => "check-quorum counts contact over half an election timeout, so a leader steps down while it hears from a majority",
    // Raft extensions (pre-vote, check-quorum, transfer, ReadIndex).
    PreVoteBumpsTerm => "a pre-candidate increments its term (and persists it), as a real candidate would",
    CheckQuorumNeverStepsDown => "a leader that hears from no majority keeps leading (check-quorum never steps down)",
    TransferBeforeCaughtUp => "a leader sends TimeoutNow before the transfer target caught up, and the target campaigns with its stale log",
    InflightNeverCleared => "a leader never clears a follower's in-flight mark on an acknowledgement, so new entries reach that follower only with acknowledgements and heartbeats, not when proposed",
    TransferWaitsForHeartbeat => "a leader that begins a transfer to a lagging target leaves its entries to the next heartbeat instead of sending them at once (thesis 3.10)",
    ReadWithoutConfirmation => "a leader answers ReadIndex reads from its commit index without a round of heartbeats",
    ReadBeforeOwnTermCommit => "a new leader answers ReadIndex reads before an entry of its own term commits",
    LeaseTooLong => "a lease read is served for a whole election timeout after the heartbeat a majority acknowledged, with no margin for clock drift (thesis 6.4.1)",
    LeaseFromAck => "a lease is counted from the tick the majority's acknowledgement arrived, not from the tick the heartbeat was sent (thesis 6.4.1)",
    LeaseNeverHeld => "acknowledged heartbeats never extend the lease: with lease reads on, every read still waits for a round of heartbeats (thesis 6.4.1)",
    // Raft membership changes (thesis chapter 4).
    ConfChangeBeforeOwnTermCommit => "a new leader changes the configuration before an entry of its own term has committed (the single-server bug of raft-dev, 2015)",
    ConfChangeWhileUncommitted => "a leader starts a configuration change while the previous one is still uncommitted (thesis 4.1: one change at a time)",
    ConfChangeWithoutJoint => "a change of several voters at once goes straight to the new configuration, without the joint one",
    LearnerVoteCounted => "a candidate counts learners' votes: a majority of all members, not of the voters",
    JointNeverLeft => "a leader never leaves a committed joint configuration",
    JointLeftBeforeCommit => "a leader appends the final configuration right after the joint one, before the joint one commits",
    SnapshotForgetsMembership => "a snapshot does not carry the configuration it covers (a restarted or new server falls back to its bootstrap one)",
    // rsm.
    RsmLocalRead => "rsm: a replica that believes it leads answers a linearizable read from its machine at once, without a read index",
    // kvraft.
    KvNoDuplicateDetection => "kvraft: applies a retried client request twice",
    KvWrongLeaderAnswer => "kvraft: answers a client when any entry commits at the index it was given, not only its own",
    KvSnapshotWithoutDedup => "kvraft: snapshots the data but not the duplicate table",
    KvStaleLocalRead => "kvraft: answers Get from local state without going through the log",
    // shardkv.
    ShardServesUnownedShard => "shardkv: checks that the group owns a key's shard when the request arrives, not where it applies in the log",
    ShardMigrationWithoutDedup => "shardkv: moves a shard's data without its duplicate table",
    ShardConfigSkipsMigration => "shardkv: serves a shard it gains at once, empty, instead of pulling it from its previous owner",
    ShardAppliesStaleConfig => "shardkv: applies a configuration that is not the next one (a re-proposed current one, before the shards are settled)",
}

impl Bug {
    /// The bug named `name` (its variant name), if there is one.
    pub fn from_name(name: &str) -> Option<Bug> {
        Bug::ALL.iter().copied().find(|b| b.name() == name)
    }
}

thread_local! {
    static ACTIVE: Cell<Option<Bug>> = const { Cell::new(None) };
}

/// Switches `bug` on (or every bug off) for the current thread; returns the previous setting.
pub fn set(bug: Option<Bug>) -> Option<Bug> {
    ACTIVE.with(|a| a.replace(bug))
}

/// The bug switched on for the current thread.
pub fn active() -> Option<Bug> {
    ACTIVE.with(|a| a.get())
}

/// True when planted bugs are compiled in (the `planted-bugs` feature).
pub const COMPILED_IN: bool = cfg!(feature = "planted-bugs");

/// Is `bug` switched on? Always false without the `planted-bugs` feature.
#[inline]
pub fn is(bug: Bug) -> bool {
    COMPILED_IN && active() == Some(bug)
}

/// `planted!(Name)`: true when planted bug `Name` is on (see the module documentation).
#[macro_export]
macro_rules! planted {
    ($bug:ident) => {
        $crate::planted::is($crate::planted::Bug::$bug)
    };
}
