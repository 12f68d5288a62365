//! A group server: one replica of a Raft group that serves some of the shards.
//!
//! Client operations go through the group's log ([`crate::state`] decides, at the point where an
//! operation applies, whether the group serves its shard). Background tasks on the leader follow
//! the controller and move shards between groups ([`crate::migration`]).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use labrpc::{ClientEnd, Persister, Service, TaskGroup};
use rand_chacha::ChaCha8Rng;

use crate::common::{DeleteArgs, KvError, Op, OpKind, PullArgs, Reply};
use crate::ctrler::{self, Gid};
use crate::migration;
use crate::state::{Command, GroupState};
use rsm::{Rsm, RsmOptions, StartError, SubmitError};

/// Makes a client end to the server with this name (the tester's `make_end`).
pub type MakeEnd = Arc<dyn Fn(&str) -> ClientEnd + Send + Sync>;

/// Server settings.
#[derive(Clone, Debug)]
pub struct ServerOptions {
    /// Snapshot once Raft's persisted state reaches this many bytes (`None`: never).
    pub maxraftstate: Option<usize>,
    /// How long a request waits for its operation to commit.
    pub commit_timeout: Duration,
    /// The Raft driver's settings.
    pub raft: raft::Options,
    /// The group's bootstrap voters (`None`: all its servers); the others join when added
    /// (see `rsm::RsmOptions::voters`).
    pub voters: Option<Vec<usize>>,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            maxraftstate: None,
            commit_timeout: Duration::from_millis(500),
            raft: raft::Options::default(),
            voters: None,
        }
    }
}

/// Background tasks that talk to another group; at most one of each kind per group at a time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Errand {
    Pull,
    Collect,
}

pub(crate) struct Inner {
    pub(crate) gid: Gid,
    pub(crate) rsm: Rsm<GroupState>,
    make_end: MakeEnd,
    /// Ends to other groups' servers, made once per name.
    ends: Mutex<BTreeMap<String, ClientEnd>>,
    errands: Mutex<BTreeSet<(Errand, Gid)>>,
    pub(crate) tasks: TaskGroup,
}

impl Inner {
    /// The end to the server named `name`.
    pub(crate) fn end(&self, name: &str) -> ClientEnd {
        let mut ends = self.ends.lock().unwrap_or_else(|p| p.into_inner());
        ends.entry(name.to_owned())
            .or_insert_with(|| (self.make_end)(name))
            .clone()
    }

    fn errands(&self) -> MutexGuard<'_, BTreeSet<(Errand, Gid)>> {
        self.errands.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Claims the errand unless one is under way; the claim ends when the guard drops.
    pub(crate) fn claim(self: &Arc<Self>, errand: Errand, gid: Gid) -> Option<ErrandGuard> {
        self.errands().insert((errand, gid)).then(|| ErrandGuard {
            inner: self.clone(),
            key: (errand, gid),
        })
    }
}

pub(crate) struct ErrandGuard {
    inner: Arc<Inner>,
    key: (Errand, Gid),
}

impl Drop for ErrandGuard {
    fn drop(&mut self) {
        self.inner.errands().remove(&self.key);
    }
}

/// A running group server. Cheap to clone.
#[derive(Clone)]
pub struct ShardKvServer {
    inner: Arc<Inner>,
}

impl ShardKvServer {
    /// The lab's `shardkv.StartServer`: replica `me` of group `gid`, whose Raft peers are
    /// `peers`, which reads configurations from the controller replicas `ctrlers` and reaches
    /// other groups' servers through `make_end`. Starts from what `persister` holds; all tasks
    /// run in `tasks`.
    #[allow(clippy::too_many_arguments)] // the lab's signature, plus the simulator's rng and tasks
    pub fn start(
        peers: Vec<ClientEnd>,
        me: usize,
        persister: Persister,
        options: ServerOptions,
        gid: Gid,
        ctrlers: Vec<ClientEnd>,
        make_end: MakeEnd,
        rng: ChaCha8Rng,
        tasks: &TaskGroup,
    ) -> Result<ShardKvServer, StartError> {
        let rsm = Rsm::start(
            format!("{gid}-{me}"),
            peers,
            me,
            persister,
            RsmOptions {
                maxraftstate: options.maxraftstate,
                commit_timeout: options.commit_timeout,
                raft: options.raft,
                voters: options.voters,
                ..RsmOptions::default()
            },
            GroupState::new(gid, me),
            rng,
            tasks,
        )?;
        let inner = Arc::new(Inner {
            gid,
            rsm,
            make_end,
            ends: Mutex::new(BTreeMap::new()),
            errands: Mutex::new(BTreeSet::new()),
            tasks: tasks.clone(),
        });
        // Its queries change nothing at the controller, so the clerk's id does not matter.
        migration::start(inner.clone(), ctrler::Clerk::new(ctrlers, 0));
        Ok(ShardKvServer { inner })
    }

    /// The Raft node under this server.
    pub fn raft(&self) -> &raft::Node {
        self.inner.rsm.raft()
    }

    pub fn gid(&self) -> Gid {
        self.inner.gid
    }

    /// The configuration this server has applied.
    pub fn config_num(&self) -> u64 {
        self.inner.rsm.read(|s| s.config().num)
    }

    /// The services to register with labrpc: `ShardKV` (client operations and the migration
    /// RPCs between groups) and `Raft`.
    pub fn services(&self) -> Vec<Service> {
        let (a, b, c) = (self.inner.clone(), self.inner.clone(), self.inner.clone());
        let kv = Service::new("ShardKV")
            .method("Command", move |op: Op| {
                let inner = a.clone();
                async move { command(&inner, op).await }
            })
            .method("PullShards", move |args: PullArgs| {
                let inner = b.clone();
                async move { migration::pull_shards(&inner, &args) }
            })
            .method("DeleteShards", move |args: DeleteArgs| {
                let inner = c.clone();
                async move { migration::delete_shards(&inner, args).await }
            });
        vec![kv, self.inner.rsm.raft().service()]
    }
}

/// Handles one client operation.
async fn command(inner: &Inner, op: Op) -> Reply {
    // A leader that has applied everything committed knows whether the group serves the shard;
    // a follower or a new leader may lag, so they let the log decide.
    if inner.rsm.leader_caught_up() {
        let (serves, duplicate) = inner
            .rsm
            .read(|s| (s.serves_key(&op.key), s.is_duplicate(&op)));
        if !serves {
            return Err(KvError::WrongGroup);
        }
        if op.kind != OpKind::Get && duplicate {
            return Ok(String::new());
        }
    }
    match inner.rsm.submit(Command::Client(op)).await {
        Ok(reply) => reply,
        Err(SubmitError::Timeout) => Err(KvError::Timeout),
        Err(SubmitError::NotLeader | SubmitError::Lost) => Err(KvError::WrongLeader),
    }
}
