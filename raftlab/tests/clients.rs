//! Clients of the real cluster when the leader stops answering: a follower names the leader
//! it knows, and a clerk gets a write through while the old leader is SIGSTOPped (it asks
//! the others too once an attempt is slow, instead of waiting on the paused node).

mod real_cluster;

use std::time::Duration;

use cluster::rpc::SubmitFailure;
use cluster::transport::{connect, ctx};
use kvraft::OpKind;
use kvraft::common::KvCommand;
use real_cluster::{CLUSTER_ID, TestCluster};

fn signal(c: &TestCluster, i: usize, sig: libc::c_int) {
    let pid = c.children[i].as_ref().expect("the node runs").id();
    let pid = libc::pid_t::try_from(pid).expect("a pid fits pid_t");
    // SAFETY: kill(2) on a child this test started; no memory is shared.
    assert_eq!(unsafe { libc::kill(pid, sig) }, 0, "kill({pid}, {sig})");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_refuses_a_command_naming_the_leader() {
    let c = TestCluster::new("hint", 3, 4 << 20);
    let (leader, _, _) = c.first_write("k", "v").await;
    let command = postcard::to_stdvec(&KvCommand {
        kind: OpKind::Put,
        key: "k".into(),
        value: "w".into(),
    })
    .expect("encode");
    let refused = Ok(Err(SubmitFailure::NotLeader {
        leader: Some(c.addrs[leader]),
    }));
    for f in (0..3).filter(|&i| i != leader) {
        let client = connect(c.addrs[f]).await.expect("connect to a follower");
        let submitted = client
            .submit(ctx(), CLUSTER_ID, None, command.clone())
            .await
            .expect("the follower answers");
        assert_eq!(submitted, refused, "node {f}'s answer to a command");
        let read = client
            .read(ctx(), CLUSTER_ID, command.clone())
            .await
            .expect("the follower answers");
        assert_eq!(read, refused, "node {f}'s answer to a read");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_gets_through_while_the_leader_is_paused() {
    let c = TestCluster::new("paused", 3, 4 << 20);
    let (leader, term, mut ck) = c.first_write("k", "1").await;
    signal(&c, leader, libc::SIGSTOP);
    let start = tokio::time::Instant::now();
    let written = ck.put("k", "2", Duration::from_secs(20)).await;
    let took = start.elapsed();
    // The old leader is still stopped: the write went through a new one.
    let others: Vec<usize> = (0..3).filter(|&i| i != leader).collect();
    let mut new_leader = None;
    for &i in &others {
        if let Some(s) = c.status(i).await
            && s.role == "leader"
            && s.term > term
        {
            new_leader = Some(i);
        }
    }
    signal(&c, leader, libc::SIGCONT);
    written.expect("a write while the leader is paused");
    assert!(
        new_leader.is_some(),
        "no new leader among {others:?} after the write"
    );
    println!("the write took {took:?} with the leader paused");
    assert_eq!(
        ck.get("k", Duration::from_secs(10)).await.expect("a read"),
        "2"
    );
}

/// `raftlab bench` measures the outage rows (and takes an empty client list for none).
#[test]
fn the_bench_reports_the_clients_outage_after_each_leader_fault() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_raftlab"))
        .args([
            "bench",
            "--seconds",
            "0.3",
            "--clients",
            "1",
            "--read-clients",
            "",
            "--failovers",
            "0",
            "--outage-trials",
            "1",
            "--outage-clients",
            "2",
        ])
        .output()
        .expect("run raftlab bench");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for row in [
        "put ",
        "outage (SIGSTOP leader, 2 clients",
        "outage (isolate leader, 2 clients",
    ] {
        assert!(text.contains(row), "no {row:?} row:\n{text}");
    }
    assert!(
        !text.contains("get (ReadIndex)"),
        "no read rows were asked for:\n{text}"
    );
}
