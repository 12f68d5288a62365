//! Exactly-once client sessions: each client's last sequence number and its output.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Who submitted a command: a client and its request number. A client numbers its requests
/// 1, 2, 3, ... and sends one at a time, retrying a request with the same number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    pub client: u64,
    pub seq: u64,
}

/// A log entry of the layer: the command and, for exactly-once clients, its session.
#[derive(Serialize, Deserialize)]
pub(crate) struct Entry<C> {
    pub session: Option<Session>,
    pub command: C,
}

/// The sessions table: per client, the last sequence number applied and its output.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Sessions<O> {
    last: BTreeMap<u64, (u64, O)>,
}

impl<O> Default for Sessions<O> {
    fn default() -> Self {
        Sessions {
            last: BTreeMap::new(),
        }
    }
}

impl<O: Clone> Sessions<O> {
    /// The output of `s` if it was applied already (a retry).
    pub fn applied(&self, s: &Session) -> Option<O> {
        match self.last.get(&s.client) {
            Some((seq, out)) if s.seq == *seq => Some(out.clone()),
            // An older request than the last: the client has moved on and no longer waits for
            // it; its output is gone, but it must not be applied again either. The clone of
            // the last output stands in (nobody reads it).
            Some((seq, out)) if s.seq < *seq => Some(out.clone()),
            _ => None,
        }
    }

    /// Records that `s` was applied with `output`.
    pub fn record(&mut self, s: Session, output: O) {
        self.last.insert(s.client, (s.seq, output));
    }
}

/// What a snapshot of the layer holds: the sessions and the machine's own snapshot.
#[derive(Serialize, Deserialize)]
pub(crate) struct Snapshot<O> {
    pub sessions: Sessions<O>,
    pub machine: Vec<u8>,
}

#[cfg(test)]
mod decode_props;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_retry_gets_the_first_output_and_is_not_applied_again() {
        let mut s: Sessions<String> = Sessions::default();
        let first = Session { client: 7, seq: 1 };
        assert_eq!(s.applied(&first), None);
        s.record(first, "a".into());
        assert_eq!(s.applied(&first).as_deref(), Some("a"));
        let second = Session { client: 7, seq: 2 };
        assert_eq!(s.applied(&second), None);
        s.record(second, "b".into());
        // An old request still counts as applied.
        assert!(s.applied(&first).is_some());
        // Another client is separate.
        assert_eq!(s.applied(&Session { client: 8, seq: 1 }), None);
    }
}
