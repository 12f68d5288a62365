//! A lock service with fencing tokens: the whole of what an application writes to run on
//! raftlab is this [`StateMachine`].
//!
//! `Acquire { lock, owner }` takes a free lock and returns a **fencing token**: a number that
//! grows with every acquisition of any lock, so a storage service that remembers the highest
//! token it has seen can refuse a write from a holder whose lock expired and was taken by
//! someone else (Kleppmann, "How to do distributed locking"). `Release` frees a lock its owner
//! holds. Acquiring a lock you already hold returns your token again.

use std::collections::BTreeMap;

use rsm::{CorruptSnapshot, StateMachine};
use serde::{Deserialize, Serialize};

/// A request to the lock service.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum LockCommand {
    Acquire { lock: String, owner: String },
    Release { lock: String, owner: String },
}

/// The service's answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum LockReply {
    /// The lock is yours; present `token` to whatever the lock protects.
    Acquired {
        token: u64,
    },
    /// Someone else holds it.
    Held {
        owner: String,
        token: u64,
    },
    Released,
    /// A release by someone who does not hold the lock.
    NotHolder,
}

/// Who holds what, and the last token handed out.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockTable {
    held: BTreeMap<String, (String, u64)>,
    last_token: u64,
}

impl StateMachine for LockTable {
    type Command = LockCommand;
    type Output = LockReply;

    fn apply(&mut self, command: LockCommand) -> LockReply {
        match command {
            LockCommand::Acquire { lock, owner } => match self.held.get(&lock) {
                Some((holder, token)) if *holder == owner => LockReply::Acquired { token: *token },
                Some((holder, token)) => LockReply::Held {
                    owner: holder.clone(),
                    token: *token,
                },
                None => {
                    self.last_token += 1;
                    self.held.insert(lock, (owner, self.last_token));
                    LockReply::Acquired {
                        token: self.last_token,
                    }
                }
            },
            LockCommand::Release { lock, owner } => match self.held.get(&lock) {
                Some((holder, _)) if *holder == owner => {
                    self.held.remove(&lock);
                    LockReply::Released
                }
                _ => LockReply::NotHolder,
            },
        }
    }

    fn snapshot(&self) -> Vec<u8> {
        rsm::encode_state(self)
    }

    fn restore(&mut self, bytes: &[u8]) -> Result<(), CorruptSnapshot> {
        *self = rsm::decode_state(bytes)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acquire(lock: &str, owner: &str) -> LockCommand {
        LockCommand::Acquire {
            lock: lock.into(),
            owner: owner.into(),
        }
    }

    fn release(lock: &str, owner: &str) -> LockCommand {
        LockCommand::Release {
            lock: lock.into(),
            owner: owner.into(),
        }
    }

    #[test]
    fn tokens_grow_with_every_acquisition_and_only_the_holder_releases() {
        let mut t = LockTable::default();
        assert_eq!(
            t.apply(acquire("db", "ann")),
            LockReply::Acquired { token: 1 }
        );
        assert_eq!(
            t.apply(acquire("db", "ann")),
            LockReply::Acquired { token: 1 }
        );
        assert_eq!(
            t.apply(acquire("db", "bob")),
            LockReply::Held {
                owner: "ann".into(),
                token: 1
            }
        );
        assert_eq!(t.apply(release("db", "bob")), LockReply::NotHolder);
        assert_eq!(t.apply(release("db", "ann")), LockReply::Released);
        assert_eq!(
            t.apply(acquire("db", "bob")),
            LockReply::Acquired { token: 2 }
        );
        assert_eq!(
            t.apply(acquire("queue", "ann")),
            LockReply::Acquired { token: 3 }
        );
        let mut back = LockTable::default();
        back.restore(&t.snapshot()).expect("round trip");
        assert_eq!(back, t);
    }
}
