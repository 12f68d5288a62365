//! A group's replicated state: its current and previous configuration and its shards.
//!
//! Everything that changes it goes through the group's log as a [`Command`], so every replica
//! sees the same configuration changes and shard arrivals at the same points between client
//! operations:
//!
//! - `Config(n + 1)`, only when every shard is settled: shards we gain become `Pulling` (or
//!   `Serving` at once when nobody had them), shards we lose become `Leaving` (frozen).
//! - `Insert`: a `Pulling` shard's data and duplicate table arrived; it is served from now on
//!   (`Collecting`) while the previous owner is told to delete its copy.
//! - `Delete`, at the previous owner: the new owner has the shard; drop it (`Absent`).
//! - `Collected`: the previous owner confirmed the delete; the shard is plainly `Serving`.
//!
//! A client operation applies only to a shard that is `Serving` or `Collecting` here at that
//! point of the log; otherwise it is answered [`KvError::WrongGroup`]. So exactly one group
//! applies operations to a shard at a time, in configuration order.

use std::collections::BTreeMap;

use labrpc::planted;
use serde::{Deserialize, Serialize};
use tracing::info;

use crate::common::{KvError, MigrationError, Op, PullReply, Reply, key2shard};
use crate::ctrler::{Config, Gid, NSHARDS};
use crate::shard::{Shard, ShardData, ShardStatus};
use rsm::{CorruptSnapshot, StateMachine};

/// What goes into a group's log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    Client(Op),
    Config(Config),
    Insert {
        config_num: u64,
        shards: BTreeMap<usize, ShardData>,
    },
    Delete {
        config_num: u64,
        shards: Vec<usize>,
    },
    Collected {
        config_num: u64,
        shards: Vec<usize>,
    },
    /// Commits the entries of earlier terms (Raft commits them only through one of its own).
    Noop,
}

/// Shards to fetch from, or to confirm to, one other group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transfer {
    pub gid: Gid,
    pub servers: Vec<String>,
    pub config_num: u64,
    pub shards: Vec<usize>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupState {
    gid: Gid,
    /// Which replica of the group this is (for log lines only; not part of the state).
    #[serde(skip)]
    replica: usize,
    config: Config,
    prev: Config,
    shards: Vec<Shard>,
}

impl GroupState {
    /// The state of replica `replica` of a group that has seen no configuration yet.
    pub fn new(gid: Gid, replica: usize) -> Self {
        GroupState {
            gid,
            replica,
            config: Config::default(),
            prev: Config::default(),
            shards: vec![Shard::default(); NSHARDS],
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn status(&self, shard: usize) -> ShardStatus {
        self.shards
            .get(shard)
            .map_or(ShardStatus::Absent, |s| s.status)
    }

    /// True when this group reads and writes the shard of `key` now.
    pub fn serves_key(&self, key: &str) -> bool {
        self.status(key2shard(key)).serves()
    }

    /// True when `op` is a write this group already applied (so it committed).
    pub fn is_duplicate(&self, op: &Op) -> bool {
        self.shards
            .get(key2shard(&op.key))
            .is_some_and(|s| s.status.serves() && s.data.is_duplicate(op.client_id, op.seq))
    }

    /// True when every shard is settled, so the group may move to the next configuration.
    pub fn settled(&self) -> bool {
        self.shards.iter().all(|s| s.status.settled())
    }

    /// The shards in `status`, grouped by their owner in the previous configuration.
    fn by_previous_owner(&self, status: ShardStatus) -> Vec<Transfer> {
        let mut out: BTreeMap<Gid, Vec<usize>> = BTreeMap::new();
        for (s, shard) in self.shards.iter().enumerate() {
            if shard.status == status {
                out.entry(self.prev.shards[s]).or_default().push(s);
            }
        }
        out.into_iter()
            .map(|(gid, shards)| Transfer {
                gid,
                servers: self.prev.groups.get(&gid).cloned().unwrap_or_default(),
                config_num: self.config.num,
                shards,
            })
            .collect()
    }

    /// The shards to fetch, by previous owner.
    pub fn pulls(&self) -> Vec<Transfer> {
        self.by_previous_owner(ShardStatus::Pulling)
    }

    /// The shards whose previous owner must still be told to delete them, by previous owner.
    pub fn collections(&self) -> Vec<Transfer> {
        self.by_previous_owner(ShardStatus::Collecting)
    }

    /// The answer to a new owner's pull: the shards it asks for, if this group holds them frozen
    /// as their previous owner in exactly that configuration. Their data no longer changes then
    /// (no operation applies to a `Leaving` shard), so any replica that is there may answer.
    pub fn pull_reply(&self, config_num: u64, shards: &[usize]) -> PullReply {
        if self.config.num != config_num {
            return Err(MigrationError::NotReady);
        }
        let mut out = BTreeMap::new();
        for &s in shards {
            match self.shards.get(s) {
                Some(shard) if shard.status == ShardStatus::Leaving => {
                    out.insert(s, shard.data.clone());
                }
                _ => return Err(MigrationError::NotReady),
            }
        }
        Ok(out)
    }

    fn apply_client(&mut self, op: &Op) -> Reply {
        // SOLUTION BEGIN: apply_client: refuse keys whose shard this group does not serve now; otherwise apply exactly once with the shard's duplicate table
        match self.shards.get_mut(key2shard(&op.key)) {
            Some(shard) if shard.status.serves() || planted!(ShardServesUnownedShard) => {
                Ok(shard.data.apply(op))
            }
            _ => Err(KvError::WrongGroup),
        }
        // SOLUTION END
    }

    fn apply_config(&mut self, next: Config) -> Reply {
        // SOLUTION BEGIN: apply_config: move to the next configuration only when all shards are settled, marking shards to pull in and to hand over
        let stale = if planted!(ShardAppliesStaleConfig) {
            next.num < self.config.num // lets the current one in again, settled or not
        } else {
            next.num != self.config.num + 1 || !self.settled()
        };
        if stale {
            return Ok(String::new()); // a duplicate, or proposed from a stale view
        }
        for (s, shard) in self.shards.iter_mut().enumerate() {
            let (old, new) = (self.config.shards[s], next.shards[s]);
            if new == self.gid && old != self.gid {
                shard.status = if old == 0 || planted!(ShardConfigSkipsMigration) {
                    ShardStatus::Serving // nobody had it: it starts empty
                } else {
                    ShardStatus::Pulling
                };
            } else if old == self.gid && new != self.gid {
                shard.status = ShardStatus::Leaving;
            }
        }
        info!(
            node = format!("{}-{}", self.gid, self.replica),
            config = next.num,
            "server {}-{} moves to configuration {}: group {} serves {:?}",
            self.gid,
            self.replica,
            next.num,
            self.gid,
            next.shards_of(self.gid)
        );
        self.prev = std::mem::replace(&mut self.config, next);
        Ok(String::new())
        // SOLUTION END
    }

    fn apply_insert(&mut self, config_num: u64, shards: BTreeMap<usize, ShardData>) -> Reply {
        // SOLUTION BEGIN: apply_insert: install pulled shards (data and duplicate tables) for the current configuration only
        if config_num == self.config.num {
            let mut installed = Vec::new();
            for (s, data) in shards {
                if let Some(shard) = self.shards.get_mut(s)
                    && shard.status == ShardStatus::Pulling
                {
                    shard.data = if planted!(ShardMigrationWithoutDedup) {
                        ShardData {
                            kv: data.kv,
                            ..ShardData::default()
                        }
                    } else {
                        data
                    };
                    shard.status = ShardStatus::Collecting;
                    installed.push(s);
                }
            }
            if !installed.is_empty() {
                info!(
                    node = format!("{}-{}", self.gid, self.replica),
                    config = config_num,
                    "server {}-{} installs shards {installed:?} of configuration {config_num}",
                    self.gid,
                    self.replica
                );
            }
        }
        Ok(String::new())
        // SOLUTION END
    }

    fn apply_delete(&mut self, config_num: u64, shards: &[usize]) -> Reply {
        // SOLUTION BEGIN: apply_delete: drop shards the new owner has confirmed it holds (garbage collection)
        if config_num < self.config.num {
            return Ok(String::new()); // long done: we moved on only after deleting
        }
        if config_num > self.config.num {
            return Err(KvError::WrongGroup);
        }
        let mut deleted = Vec::new();
        for &s in shards {
            if let Some(shard) = self.shards.get_mut(s)
                && shard.status == ShardStatus::Leaving
            {
                *shard = Shard::default();
                deleted.push(s);
            }
        }
        if !deleted.is_empty() {
            info!(
                node = format!("{}-{}", self.gid, self.replica),
                config = config_num,
                "server {}-{} deletes shards {deleted:?}, which their new owner has",
                self.gid,
                self.replica
            );
        }
        Ok(String::new())
        // SOLUTION END
    }

    fn apply_collected(&mut self, config_num: u64, shards: &[usize]) -> Reply {
        // SOLUTION BEGIN: apply_collected: mark pulled shards as confirmed deleted at their old owner
        if config_num == self.config.num {
            for &s in shards {
                if let Some(shard) = self.shards.get_mut(s)
                    && shard.status == ShardStatus::Collecting
                {
                    shard.status = ShardStatus::Serving;
                }
            }
        }
        Ok(String::new())
        // SOLUTION END
    }
}

impl StateMachine for GroupState {
    type Command = Command;
    /// A client operation's reply. For `Delete`: done, or `WrongGroup` when this group has not
    /// reached that configuration yet. Other commands: always `Ok("")`.
    type Output = Reply;

    fn apply(&mut self, command: Command) -> Reply {
        match command {
            Command::Client(op) => self.apply_client(&op),
            Command::Config(c) => self.apply_config(c),
            Command::Insert { config_num, shards } => self.apply_insert(config_num, shards),
            Command::Delete { config_num, shards } => self.apply_delete(config_num, &shards),
            Command::Collected { config_num, shards } => self.apply_collected(config_num, &shards),
            Command::Noop => Ok(String::new()),
        }
    }

    fn snapshot(&self) -> Vec<u8> {
        rsm::encode_state(self)
    }

    fn restore(&mut self, snapshot: &[u8]) -> Result<(), CorruptSnapshot> {
        let restored: GroupState = rsm::decode_state(snapshot)?;
        if restored.shards.len() != NSHARDS || restored.gid != self.gid {
            return Err(CorruptSnapshot::new(
                snapshot,
                format!(
                    "group {} with {} shards, expected group {} with {NSHARDS}",
                    restored.gid,
                    restored.shards.len(),
                    self.gid
                ),
            ));
        }
        *self = GroupState {
            replica: self.replica,
            ..restored
        };
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::OpKind;

    fn config(num: u64, shards: [Gid; NSHARDS]) -> Config {
        let mut groups = BTreeMap::new();
        for &g in &shards {
            if g != 0 {
                groups.insert(g, vec![format!("server-{g}-0")]);
            }
        }
        Config {
            num,
            shards,
            groups,
        }
    }

    fn ok() -> Reply {
        Ok(String::new())
    }

    fn put(seq: u64, key: &str, value: &str) -> Command {
        Command::Client(Op {
            client_id: 7,
            seq,
            kind: OpKind::Put,
            key: key.into(),
            value: value.into(),
        })
    }

    fn get(key: &str) -> Command {
        Command::Client(Op {
            client_id: 7,
            seq: 0,
            kind: OpKind::Get,
            key: key.into(),
            value: String::new(),
        })
    }

    #[test]
    fn a_shard_moves_with_its_data_and_duplicate_table() {
        let mut a = GroupState::new(1, 0);
        let mut b = GroupState::new(2, 0);
        let c1 = config(1, [1; NSHARDS]);
        let mut shards = [1; NSHARDS];
        shards[key2shard("k")] = 2;
        let c2 = config(2, shards);
        for g in [&mut a, &mut b] {
            assert_eq!(g.apply(Command::Config(c1.clone())), ok());
        }
        assert_eq!(a.apply(put(1, "k", "v")), Ok(String::new()));
        assert_eq!(b.apply(get("k")), Err(KvError::WrongGroup));
        for g in [&mut a, &mut b] {
            assert_eq!(g.apply(Command::Config(c2.clone())), ok());
        }
        // a froze the shard; b waits for it.
        assert_eq!(a.apply(get("k")), Err(KvError::WrongGroup));
        assert_eq!(b.apply(get("k")), Err(KvError::WrongGroup));
        let pulls = b.pulls();
        assert_eq!(pulls.len(), 1);
        assert_eq!((pulls[0].gid, pulls[0].config_num), (1, 2));
        let data = a.pull_reply(2, &pulls[0].shards).expect("a has it frozen");
        assert!(a.pull_reply(1, &pulls[0].shards).is_err());
        let insert = Command::Insert {
            config_num: 2,
            shards: data,
        };
        assert_eq!(b.apply(insert), ok());
        assert_eq!(b.apply(get("k")), Ok("v".to_owned()));
        // The retried Put is a duplicate at its new owner too.
        assert_eq!(b.apply(put(1, "k", "other")), ok());
        assert_eq!(b.apply(get("k")), Ok("v".to_owned()));
        assert!(!b.settled());
        assert!(!a.settled());
        assert_eq!(
            a.apply(Command::Delete {
                config_num: 2,
                shards: vec![key2shard("k")]
            }),
            Ok(String::new())
        );
        assert!(a.settled());
        assert_eq!(a.shards[key2shard("k")], Shard::default());
        let collected = Command::Collected {
            config_num: 2,
            shards: vec![key2shard("k")],
        };
        assert_eq!(b.apply(collected), ok());
        assert!(b.settled());
        let bytes = b.snapshot();
        let mut r = GroupState::new(2, 0);
        r.restore(&bytes).expect("round trip");
        assert_eq!(r, b);
        assert!(GroupState::new(3, 0).restore(&bytes).is_err());
    }

    #[test]
    fn no_configuration_is_skipped_or_taken_unsettled() {
        let mut a = GroupState::new(1, 0);
        assert_eq!(a.apply(Command::Config(config(2, [1; NSHARDS]))), ok());
        assert_eq!(a.config().num, 0, "skipping configuration 1");
        assert_eq!(a.apply(Command::Config(config(1, [1; NSHARDS]))), ok());
        assert_eq!(a.config().num, 1);
        assert_eq!(a.apply(Command::Config(config(2, [2; NSHARDS]))), ok());
        assert_eq!(a.config().num, 2);
        assert_eq!(a.apply(Command::Config(config(3, [1; NSHARDS]))), ok());
        assert_eq!(a.config().num, 2, "moved on with shards still leaving");
    }
}
