//! The controller server: puts each clerk request through its Raft log and answers with the
//! outcome, so every replica holds the same sequence of configurations.

use labrpc::{ClientEnd, Persister, Service, TaskGroup};
use rand_chacha::ChaCha8Rng;

use super::common::{CtrlerError, CtrlerOp, CtrlerReply, Request};
use super::state::Configs;
use rsm::{Rsm, RsmOptions, Session, StartError, SubmitError};

/// A running controller replica. Cheap to clone.
#[derive(Clone)]
pub struct CtrlerServer {
    rsm: Rsm<Configs>,
}

impl CtrlerServer {
    /// The lab's `shardctrler.StartServer`: starts Raft (`peers[i]` reaches replica i) and the
    /// controller on top of it, from what `persister` holds. All tasks run in `tasks`.
    pub fn start(
        peers: Vec<ClientEnd>,
        me: usize,
        persister: Persister,
        options: RsmOptions,
        rng: ChaCha8Rng,
        tasks: &TaskGroup,
    ) -> Result<CtrlerServer, StartError> {
        let rsm = Rsm::start(
            format!("ctrler-{me}"),
            peers,
            me,
            persister,
            options,
            Configs::default(),
            rng,
            tasks,
        )?;
        Ok(CtrlerServer { rsm })
    }

    /// The Raft node under this replica.
    pub fn raft(&self) -> &raft::Node {
        self.rsm.raft()
    }

    /// The services to register with labrpc: `ShardCtrler` and `Raft`.
    pub fn services(&self) -> Vec<Service> {
        let rsm = self.rsm.clone();
        let svc = Service::new("ShardCtrler").method("Command", move |op: CtrlerOp| {
            let rsm = rsm.clone();
            async move { command(&rsm, op).await }
        });
        vec![svc, self.rsm.raft().service()]
    }
}

async fn command(rsm: &Rsm<Configs>, op: CtrlerOp) -> CtrlerReply {
    // A configuration that exists never changes, so any replica that has it may answer.
    if let Request::Query(Some(n)) = &op.request
        && let Some(c) = rsm.read(|s| s.get(*n).cloned())
    {
        return Ok(Some(c));
    }
    let outcome = if op.request.is_write() {
        // Exactly once: the layer applies a client's numbered request once.
        let session = Session {
            client: op.client_id,
            seq: op.seq,
        };
        rsm.submit_as(session, op.request).await
    } else {
        rsm.submit(op.request).await
    };
    match outcome {
        Ok(reply) => reply,
        Err(SubmitError::Timeout) => Err(CtrlerError::Timeout),
        Err(SubmitError::NotLeader | SubmitError::Lost) => Err(CtrlerError::WrongLeader),
    }
}
