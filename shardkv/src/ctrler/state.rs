//! The controller's replicated state: the sequence of configurations. Join, Leave and Move are
//! exactly-once through the `rsm` layer's sessions.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::common::{Config, CtrlerError, CtrlerReply, NSHARDS, Request};
use super::rebalance::rebalance;
use rsm::{CorruptSnapshot, StateMachine};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Configs {
    /// `configs[n]` is configuration `n`; there is always configuration 0.
    configs: Vec<Config>,
}

impl Default for Configs {
    fn default() -> Self {
        Configs {
            configs: vec![Config::default()],
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
    type Command = Request;
    type Output = CtrlerReply;

    fn apply(&mut self, request: Request) -> CtrlerReply {
        if let Request::Query(num) = request {
            return Ok(Some(self.query(num).clone()));
        }
        let latest = self.latest().clone();
        match request {
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
        rsm::encode_state(self)
    }

    fn restore(&mut self, snapshot: &[u8]) -> Result<(), CorruptSnapshot> {
        let restored: Configs = rsm::decode_state(snapshot)?;
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

    fn op(_client_id: u64, _seq: u64, request: Request) -> Request {
        request
    }

    #[test]
    fn join_leave_move_query() {
        let mut c = Configs::default();
        let join = Request::Join([(1, vec!["a".to_owned()])].into_iter().collect());
        assert_eq!(c.apply(op(9, 1, join)), Ok(None));
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
