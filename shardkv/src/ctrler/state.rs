//! The controller's replicated state: the sequence of configurations and the table that makes
//! Join, Leave and Move exactly-once.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::common::{Config, CtrlerError, CtrlerOp, CtrlerReply, NSHARDS, Request};
use super::rebalance::rebalance;
use crate::rsm::{CorruptSnapshot, StateMachine};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Configs {
    /// `configs[n]` is configuration `n`; there is always configuration 0.
    configs: Vec<Config>,
    /// The highest request number applied for each client.
    last_seq: BTreeMap<u64, u64>,
}

impl Default for Configs {
    fn default() -> Self {
        Configs {
            configs: vec![Config::default()],
            last_seq: BTreeMap::new(),
        }
    }
}

impl Configs {
    pub fn latest(&self) -> &Config {
        // `configs` is never empty (it starts with configuration 0 and only grows).
        &self.configs[self.configs.len() - 1]
    }

    /// Configuration `num` if it exists.
    pub fn get(&self, num: u64) -> Option<&Config> {
        usize::try_from(num).ok().and_then(|i| self.configs.get(i))
    }

    /// The Query semantics: configuration `num`, or the latest for `None` or a number past it.
    pub fn query(&self, num: Option<u64>) -> &Config {
        num.and_then(|n| self.get(n))
            .unwrap_or_else(|| self.latest())
    }

    pub fn is_duplicate(&self, client_id: u64, seq: u64) -> bool {
        self.last_seq.get(&client_id).is_some_and(|s| seq <= *s)
    }

    fn push(&mut self, shards: [u64; NSHARDS], groups: BTreeMap<u64, Vec<String>>) {
        let num = self.latest().num + 1;
        self.configs.push(Config {
            num,
            shards,
            groups,
        });
    }
}

impl StateMachine for Configs {
    type Command = CtrlerOp;
    type Output = CtrlerReply;

    fn apply(&mut self, op: CtrlerOp) -> CtrlerReply {
        if let Request::Query(num) = op.request {
            return Ok(Some(self.query(num).clone()));
        }
        if self.is_duplicate(op.client_id, op.seq) {
            return Ok(None);
        }
        self.last_seq.insert(op.client_id, op.seq);
        let latest = self.latest().clone();
        match op.request {
            Request::Join(new) => {
                let mut groups = latest.groups;
                groups.extend(new);
                let gids: BTreeSet<u64> = groups.keys().copied().collect();
                self.push(rebalance(&latest.shards, &gids), groups);
            }
            Request::Leave(gone) => {
                let mut groups = latest.groups;
                for g in &gone {
                    groups.remove(g);
                }
                let gids: BTreeSet<u64> = groups.keys().copied().collect();
                self.push(rebalance(&latest.shards, &gids), groups);
            }
            Request::Move { shard, gid } => {
                if shard >= NSHARDS {
                    return Err(CtrlerError::BadShard);
                }
                let mut shards = latest.shards;
                shards[shard] = gid;
                self.push(shards, latest.groups);
            }
            Request::Query(_) => {}
        }
        Ok(None)
    }

    fn snapshot(&self) -> Vec<u8> {
        // Serializing vectors and maps of integers and strings into memory cannot fail.
        postcard::to_stdvec(self).unwrap_or_default()
    }

    fn restore(&mut self, snapshot: &[u8]) -> Result<(), CorruptSnapshot> {
        let restored: Configs =
            postcard::from_bytes(snapshot).map_err(|e| CorruptSnapshot::new(snapshot, e))?;
        if restored.configs.is_empty() {
            return Err(CorruptSnapshot::new(snapshot, "no configuration 0"));
        }
        *self = restored;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(client_id: u64, seq: u64, request: Request) -> CtrlerOp {
        CtrlerOp {
            client_id,
            seq,
            request,
        }
    }

    #[test]
    fn join_leave_move_query_exactly_once() {
        let mut c = Configs::default();
        let join = Request::Join([(1, vec!["a".to_owned()])].into_iter().collect());
        assert_eq!(c.apply(op(9, 1, join.clone())), Ok(None));
        assert_eq!(c.apply(op(9, 1, join)), Ok(None)); // a retry
        assert_eq!(c.latest().num, 1);
        assert_eq!(c.latest().shards, [1; NSHARDS]);
        let join2 = Request::Join([(2, vec!["b".to_owned()])].into_iter().collect());
        assert_eq!(c.apply(op(9, 2, join2)), Ok(None));
        assert_eq!(c.latest().shards_of(2).len(), 5);
        assert_eq!(
            c.apply(op(9, 3, Request::Move { shard: 0, gid: 2 })),
            Ok(None)
        );
        assert_eq!(c.latest().shards[0], 2);
        assert_eq!(
            c.apply(op(9, 4, Request::Move { shard: 99, gid: 2 })),
            Err(CtrlerError::BadShard)
        );
        assert_eq!(c.apply(op(9, 5, Request::Leave(vec![2]))), Ok(None));
        assert_eq!(c.latest().shards, [1; NSHARDS]);
        let q = c.apply(op(3, 1, Request::Query(Some(1))));
        assert_eq!(q.ok().flatten().map(|c| c.num), Some(1));
        let q = c.apply(op(3, 1, Request::Query(Some(1000))));
        assert_eq!(q.ok().flatten().map(|c| c.num), Some(4));
        let bytes = c.snapshot();
        let mut d = Configs::default();
        d.restore(&bytes).expect("round trip");
        assert_eq!(c, d);
        assert!(d.restore(&bytes[..bytes.len() / 2]).is_err());
    }
}
