//! The leader's rules: a new leader's state and heartbeats, matchIndex and nextIndex, the exact
//! commit rule, heartbeat intervals, check-quorum (6.2), transfers (3.10), proposals, reads
//! confirmed, and membership (4.2.2, 4.3).

use raft::{Envelope, LogIndex, Message, NodeId, Raft, Role};

use super::{Before, Lead, Rules, Seen};
use crate::monitor::Property;

impl Rules {
    /// The leader's rules: a new leader's state and heartbeat, matchIndex and nextIndex, the
    /// exact commit rule, heartbeats, check-quorum, transfers and proposals.
    pub(super) fn leader(&mut self, core: &Raft, b: &Before, s: &raft::Status, sent: &[Envelope]) {
        let id = core.id();
        let cfg = core.config();
        let (et, hb) = (cfg.election_ticks.max(1), cfg.heartbeat_ticks.max(1));
        let v = self.nodes.entry(id).or_default();
        let ticks = v.ticks;
        let was = v
            .lead
            .take()
            .filter(|l| l.term == s.term && b.role == Role::Leader);
        let mut found: Vec<(Property, Vec<NodeId>, String)> = Vec::new();
        // Check-quorum's step-down, judged on the leadership that ended.
        if let Some(l) = &was
            && s.role != Role::Leader
            && s.term == b.term
            && cfg.features.check_quorum
            && matches!(b.seen, Seen::Tick)
            && s.membership.is_voter(id)
            && s.membership.is_quorum(|n| {
                n == id
                    || l.answered
                        .get(&n)
                        .is_some_and(|h| *h + u64::from(et) >= ticks)
            })
        {
            found.push((Property::CheckQuorum, vec![id], format!(
                "leader {id} of term {} stepped down on a tick although it heard from a majority within the last election timeout ({et} ticks): thesis 6.2 steps down only without one", s.term)));
        }
        if s.role != Role::Leader {
            self.report(found);
            return;
        }
        let new = was.is_none();
        let mut l = was.unwrap_or(Lead {
            term: s.term,
            since: ticks,
            ..Lead::default()
        });
        let log = core.log();
        let last = log.last_index();
        let members: Vec<NodeId> = s
            .membership
            .members()
            .into_iter()
            .filter(|p| *p != id)
            .collect();
        if new {
            for p in &members {
                match core.progress().get(p) {
                    Some(pr) if pr.matched == LogIndex(0) && pr.next == b.last.1.next() => {}
                    other => found.push((Property::Elections, vec![id, *p], format!(
                        "node {id} became leader of term {} with progress {other:?} for {p}: nextIndex starts just past its log ({}), matchIndex at 0 (Figure 2, Leaders)",
                        s.term, b.last.1.next()))),
                }
                if !replicates_to(sent, *p) {
                    found.push((Property::Elections, vec![id, *p], format!(
                        "node {id} became leader of term {} and sent {p} no AppendEntries: upon election a leader sends heartbeats to each server at once (Figure 2, Leaders)", s.term)));
                }
            }
        }
        l.matched.retain(|p, _| members.contains(p));
        l.unsent.retain(|p, _| members.contains(p));
        // Acknowledgements: the monitor's own matchIndex, and the leader's.
        match &b.seen {
            Seen::AppendReply {
                from,
                term,
                success,
                match_index,
                round,
                next_before,
            } if *term == s.term && b.role == Role::Leader => {
                if let Some(&at) = l.rounds.get(round)
                    && l.lease_floor.is_none_or(|f| at > f)
                    && members.contains(from)
                {
                    let a = l.lease_acked.entry(*from).or_insert(at);
                    *a = (*a).max(at);
                }
                let p = core.progress().get(from).copied();
                if *success && members.contains(from) {
                    let m = l.matched.entry(*from).or_default();
                    *m = (*m).max((*match_index).min(last));
                    let m = *m;
                    if p.is_some_and(|p| p.matched < m || p.next <= p.matched) {
                        found.push((Property::Replication, vec![id, *from], format!(
                            "leader {id} has matchIndex {} and nextIndex {} for {from} after it acknowledged index {m}: a success moves matchIndex to the acknowledged index (never back) and nextIndex past it (Figure 2, Leaders)",
                            p.map_or(0, |p| p.matched.0), p.map_or(0, |p| p.next.0))));
                    }
                } else if !success && let (Some(p), Some(nb)) = (p, next_before) {
                    if p.next > *nb {
                        found.push((Property::Replication, vec![id, *from], format!(
                            "leader {id} moved nextIndex for {from} forward from {nb} to {} on a refusal (Figure 2: decrement nextIndex and retry)", p.next)));
                    } else if p.next < *nb && !sent.iter().any(|e| e.to == *from) {
                        found.push((Property::Replication, vec![id, *from], format!(
                            "leader {id} moved nextIndex for {from} back to {} on a refusal and did not retry (Figure 2: decrement nextIndex and retry)", p.next)));
                    }
                }
            }
            Seen::SnapshotReply { from, term, index }
                if *term == s.term && b.role == Role::Leader && members.contains(from) =>
            {
                let m = l.matched.entry(*from).or_default();
                *m = (*m).max((*index).min(last));
            }
            _ => {}
        }
        let sender = match &b.seen {
            Seen::PreVote { from, .. } => Some(*from),
            other => other.message().map(|m| m.0),
        };
        if let Some(from) = sender {
            l.heard.insert(from, ticks);
        }
        match &b.seen {
            Seen::AppendReply { from, term, .. } | Seen::SnapshotReply { from, term, .. }
                if *term == s.term =>
            {
                l.answered.insert(*from, ticks);
            }
            _ => {}
        }
        // The commit rule, exactly: the highest N stored on a majority with log[N] of this term.
        let n = s.membership.quorum_value(|p| {
            if p == id {
                last
            } else {
                l.matched.get(&p).copied().unwrap_or_default()
            }
        });
        if let Some(n) = n
            && n > s.commit
            && log.term_at(n) == Some(s.term)
        {
            found.push((Property::CommitRule, vec![id], format!(
                "leader {id} of term {} has entry {n} of its term on a majority (matchIndex by the acknowledgements it stepped: {:?}) but its commitIndex is {}: Figure 2, Leaders, sets commitIndex = N",
                s.term, l.matched, s.commit)));
        }
        // Heartbeats: every member hears from the leader every heartbeat interval.
        let tick = matches!(b.seen, Seen::Tick) && !new;
        for p in &members {
            let u = l.unsent.entry(*p).or_default();
            if tick {
                *u += 1;
            }
            if replicates_to(sent, *p) {
                *u = 0;
            }
            if *u >= hb {
                found.push((Property::Timers, vec![id, *p], format!(
                    "leader {id} of term {} sent {p} nothing for {} ticks: heartbeats go out every {hb} ticks during idle periods (Figure 2, Leaders)", s.term, *u)));
                *u = 0;
            }
        }
        // Check-quorum: a leader that heard from no majority for two election timeouts is gone.
        if cfg.features.check_quorum
            && ticks > l.since + 2 * u64::from(et)
            && !s.membership.is_quorum(|p| {
                p == id
                    || l.heard
                        .get(&p)
                        .is_some_and(|h| *h + 2 * u64::from(et) >= ticks)
            })
        {
            found.push((Property::CheckQuorum, vec![id], format!(
                "leader {id} of term {} heard from no majority for {} ticks and still leads: thesis 6.2 steps down after an election timeout ({et} ticks) without one", s.term, 2 * et + 1)));
            l.since = ticks;
        }
        // Transfers (thesis 3.10).
        if s.transferring_to.is_some() {
            if tick {
                l.transfer_ticks += 1;
            }
            if l.transfer_ticks > et {
                found.push((Property::Transfer, vec![id], format!(
                    "leader {id}'s transfer to {:?} has lasted {} ticks: it is aborted after an election timeout ({et} ticks) (thesis 3.10)", s.transferring_to, l.transfer_ticks)));
                l.transfer_ticks = 0;
            }
        } else {
            l.transfer_ticks = 0;
        }
        for e in sent {
            if let Message::TimeoutNow(_) = e.msg
                && l.matched.get(&e.to).copied().unwrap_or_default() < last
            {
                found.push((Property::Transfer, vec![id, e.to], format!(
                    "leader {id} sent TimeoutNow to {} whose log it knows only through {} of {last}: the target must be caught up first (thesis 3.10)",
                    e.to, l.matched.get(&e.to).copied().unwrap_or_default())));
            }
        }
        // Thesis 3.10: a target that lacks entries is sent them as the transfer begins (normal
        // replication); leaving it to the next heartbeat only delays the handover.
        if !b.transferring
            && let Some(to) = s.transferring_to
            && l.matched.get(&to).copied().unwrap_or_default() < last
            && !sent.iter().any(|e| {
                e.to == to
                    && matches!(
                        e.msg,
                        Message::AppendEntries(_)
                            | Message::InstallSnapshot(_)
                            | Message::TimeoutNow(_)
                    )
            })
        {
            found.push((Property::Transfer, vec![id, to], format!(
                "leader {id} began a transfer to {to}, whose log it knows only through {} of {last}, and sent it nothing: the target is sent the entries it lacks at once (thesis 3.10)",
                l.matched.get(&to).copied().unwrap_or_default())));
        }
        // Figure 2, Leaders: a new command is sent to the followers at once. A leader may hold
        // a follower back while a batch to it is unacknowledged (pacing), but not one to which
        // everything sent has been acknowledged: that one would wait for the next heartbeat.
        if matches!(b.seen, Seen::Propose)
            && b.role == Role::Leader
            && !b.transferring
            && last == b.last.1.next()
        {
            for p in &members {
                // Judged when the Ready leaves (`released`): it may carry the message instead.
                if l.settled(*p) && !replicates_to(sent, *p) {
                    l.owed.insert(*p, last);
                }
            }
        }
        for e in sent {
            l.note_sent(e);
        }
        if matches!(b.seen, Seen::Propose) && b.role == Role::Leader {
            let ok = if b.transferring {
                last == b.last.1
            } else {
                last == b.last.1.next() && log.term_at(last) == Some(s.term)
            };
            if !ok {
                found.push((Property::Replication, vec![id], format!(
                    "leader {id} of term {} went from log end {} to {last} on a proposal{}", s.term, b.last.1,
                    if b.transferring { " during a transfer: a leader stops accepting proposals while it hands over (thesis 3.10)" } else { ": the command is appended to its log as one entry of its term (Figure 2, Leaders)" })));
            }
        }
        // Reads waiting are confirmed by replies of this term that arrive after them.
        if let Seen::AppendReply { from, term, .. } = &b.seen
            && *term == s.term
        {
            let v = self.nodes.entry(id).or_default();
            for r in v.reads.values_mut() {
                r.confirmed.insert(*from);
            }
        }
        self.nodes.entry(id).or_default().lead = Some(l);
        self.report(found);
    }

    pub(super) fn report(&mut self, found: Vec<(Property, Vec<NodeId>, String)>) {
        for (p, n, d) in found {
            self.fail(p, &n, d);
        }
    }

    /// Thesis 4.2.2 and 4.3: after every input of a leader. (One change at a time, thesis 4.1,
    /// is the safety monitor's check of every configuration entry appended.)
    pub(super) fn membership(&mut self, core: &Raft, s: &raft::Status) {
        let id = core.id();
        if s.role != Role::Leader || s.membership_index > s.commit {
            return;
        }
        if s.membership.is_joint() {
            self.fail(Property::MembershipRules, &[id], format!(
                "leader {id} holds the committed joint configuration {} (index {}) and has not appended the new one: C_new follows as soon as C_old,new commits (thesis 4.3)", s.membership, s.membership_index));
        } else if !s.membership.is_voter(id) && s.membership_index > LogIndex(0) {
            self.fail(Property::MembershipRules, &[id], format!(
                "leader {id}'s removal (configuration {} at index {}) committed and it still leads: it steps down (thesis 4.2.2)", s.membership, s.membership_index));
        }
    }
}

/// The step sent `p` an AppendEntries or an InstallSnapshot.
fn replicates_to(sent: &[Envelope], p: NodeId) -> bool {
    sent.iter().any(|e| {
        e.to == p
            && matches!(
                e.msg,
                Message::AppendEntries(_) | Message::InstallSnapshot(_)
            )
    })
}
