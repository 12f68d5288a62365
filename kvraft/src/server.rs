//! The KV server: the [`Store`] replicated by the `rsm` layer. A client operation goes through
//! the log as the client's session (its id and number) and the command; the layer applies it
//! once, answers only once the operation's own entry committed, and snapshots the store (with
//! the sessions) past `maxraftstate`. A restarted server starts from its last snapshot.

use std::time::Duration;

use labrpc::{ClientEnd, Persister, Service, TaskGroup, planted};
use rand_chacha::ChaCha8Rng;
use rsm::{Rsm, RsmOptions, Session, SubmitError};

use crate::common::{KvCommand, KvError, Op, OpKind, Reply};
use crate::store::Store;
use raft::{LabrpcTransport, Node, Storage, Transport};

pub use rsm::StartError;

/// Server settings.
#[derive(Clone, Debug)]
pub struct ServerOptions {
    /// Snapshot once Raft's persisted state reaches this many bytes (`None`: never).
    pub maxraftstate: Option<usize>,
    /// How long a request waits for its operation to commit before the client is told to try
    /// elsewhere (its leader may be in a minority).
    pub commit_timeout: Duration,
    /// BROKEN ON PURPOSE, for testing the tests: answer Get from this server's local state,
    /// without going through the log. A follower or a deposed leader then serves stale values,
    /// which the suite's linearizability check must catch.
    pub unsafe_local_reads: bool,
    /// Serve Get with a ReadIndex read (thesis 6.4): confirmed by a round of heartbeats, with
    /// no log entry. Off by default (the labs' Get goes through the log, as in 6.5840).
    pub read_index: bool,
    /// Settings of the Raft driver under the service.
    pub raft: raft::Options,
    /// Raft's extensions (pre-vote, check-quorum, lease reads); none in the labs.
    pub features: raft::Features,
    /// The bootstrap voters (`None`: every server); the others join when added (see
    /// `rsm::RsmOptions::voters`).
    pub voters: Option<Vec<usize>>,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            maxraftstate: None,
            commit_timeout: Duration::from_millis(500),
            unsafe_local_reads: false,
            read_index: false,
            raft: raft::Options::default(),
            features: raft::Features::default(),
            voters: None,
        }
    }
}

impl ServerOptions {
    fn rsm(&self) -> RsmOptions {
        RsmOptions {
            maxraftstate: self.maxraftstate,
            commit_timeout: self.commit_timeout,
            raft: self.raft.clone(),
            features: self.features,
            voters: self.voters.clone(),
        }
    }
}

/// A running KV server. Cheap to clone.
#[derive(Clone)]
pub struct KvServer {
    rsm: Rsm<Store>,
    unsafe_local_reads: bool,
    read_index: bool,
}

impl KvServer {
    /// The lab's `StartKVServer`: starts Raft (`peers[i]` reaches server i) and the service on
    /// top of it, restoring the store from the persister's snapshot. All tasks run in `tasks`.
    pub fn start(
        peers: Vec<ClientEnd>,
        me: usize,
        persister: Persister,
        options: ServerOptions,
        rng: ChaCha8Rng,
        tasks: TaskGroup,
    ) -> Result<KvServer, StartError> {
        let n = peers.len();
        let sizer = persister.clone();
        KvServer::start_with(
            LabrpcTransport::new(peers),
            persister,
            me,
            n,
            move || sizer.raft_state_size(),
            options,
            rng,
            tasks,
        )
    }

    /// Starts a server over any transport and storage (the real cluster uses TCP and disk).
    /// `state_size` reports how many bytes of Raft state the storage holds, for `maxraftstate`.
    #[allow(clippy::too_many_arguments)]
    pub fn start_with<T: Transport, S: Storage>(
        transport: T,
        storage: S,
        me: usize,
        peers: usize,
        state_size: impl Fn() -> usize + Send + Sync + 'static,
        options: ServerOptions,
        rng: ChaCha8Rng,
        tasks: TaskGroup,
    ) -> Result<KvServer, StartError> {
        let rsm = Rsm::start_with(
            format!("kv-{me}"),
            transport,
            storage,
            me,
            peers,
            state_size,
            options.rsm(),
            Store::default(),
            rng,
            &tasks,
        )?;
        Ok(KvServer {
            rsm,
            unsafe_local_reads: options.unsafe_local_reads,
            read_index: options.read_index,
        })
    }

    /// Handles one client operation: what a transport's server side calls.
    pub async fn command(&self, op: Op) -> Reply {
        command(self, op).await
    }

    /// The Raft node under this server.
    pub fn raft(&self) -> &Node {
        self.rsm.raft()
    }

    /// The services to register with labrpc: `KVServer` and `Raft`.
    pub fn services(&self) -> Vec<Service> {
        let server = self.clone();
        let kv = Service::new("KVServer").method("Command", move |op: Op| {
            let server = server.clone();
            async move { command(&server, op).await }
        });
        vec![kv, self.rsm.raft().service()]
    }

    /// Stops the server and its Raft node.
    pub fn kill(&self) {
        self.rsm.kill();
    }
}

/// Handles one client request.
async fn command(server: &KvServer, op: Op) -> Reply {
    if op.kind == OpKind::Get && server.read_index {
        return server
            .rsm
            .read_linearizable(|store| store.get(&op.key))
            .await
            .map_err(kv_error);
    }
    // SOLUTION BEGIN: command: submit the operation to the rsm layer as the client's session (its id and number), and map the layer's errors to the clerk's (not leader and lost: WrongLeader; timeout: Timeout)
    if op.kind == OpKind::Get && (server.unsafe_local_reads || planted!(KvStaleLocalRead)) {
        return Ok(server.rsm.read(|store| store.get(&op.key)));
    }
    let session = Session {
        client: op.client_id,
        seq: op.seq,
    };
    let cmd = KvCommand {
        kind: op.kind,
        key: op.key,
        value: op.value,
    };
    server.rsm.submit_as(session, cmd).await.map_err(kv_error)
    // SOLUTION END
}

/// The clerk's view of the layer's errors: try another server, or try again.
fn kv_error(e: SubmitError) -> KvError {
    match e {
        SubmitError::NotLeader | SubmitError::Lost => KvError::WrongLeader,
        SubmitError::Timeout => KvError::Timeout,
    }
}
