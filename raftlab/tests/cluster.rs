//! The real cluster, as a user runs it: `raftlab node` processes on loopback (free ports chosen
//! at run time), killed with SIGKILL and restarted, with their data on disk. (The story of
//! pre-vote and check-quorum is in `prevote_story.rs`.)

mod real_cluster;

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use cluster::client::{ClerkError, TcpClerk};
use cluster::rpc::TransferFailure;
use cluster::transport::{connect, ctx};
use lincheck::models::kv::{KvInput, KvModel, KvOp, KvOutput};
use lincheck::{CheckResult, NEVER_RETURNED, Operation};
use real_cluster::{CLUSTER_ID, TestCluster, stderr, stdout};
use tokio::time::sleep;

const SHORT: Duration = Duration::from_secs(3);

/// The classic demo: elect, kill -9 leaders one after another, lose the majority, restore it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_leaders_lose_majority_and_recover() {
    let mut c = TestCluster::new("demo", 5, 4 << 20);
    let (l1, t1) = c
        .wait_leader(0, Duration::from_secs(10))
        .await
        .expect("a first leader");
    let mut ck = c.clerk();
    ck.put("k", "1", Duration::from_secs(10))
        .await
        .expect("first write");

    c.kill(l1);
    let (l2, t2) = c
        .wait_leader(t1, Duration::from_secs(5))
        .await
        .expect("a new leader within 5 s of kill -9");
    assert!(t2 > t1 && l2 != l1);
    ck.append("k", "2", Duration::from_secs(10))
        .await
        .expect("write under leader 2");

    c.kill(l2);
    let (l3, t3) = c
        .wait_leader(t2, Duration::from_secs(5))
        .await
        .expect("third leader");
    c.kill(l3);
    // 2 of 5 alive: no leader can be elected, and writes fail with a clear error.
    sleep(Duration::from_secs(2)).await;
    let leaders: Vec<_> = c
        .statuses()
        .await
        .into_iter()
        .flatten()
        .filter(|s| s.role == "leader" && s.term > t3)
        .collect();
    assert!(leaders.is_empty(), "no majority, yet a leader: {leaders:?}");
    let mut ck2 = c.clerk();
    match ck2.put("k", "lost", SHORT).await {
        Err(ClerkError::Timeout(_)) => {}
        other => panic!("a write without a majority must time out, got {other:?}"),
    }

    // One back: a majority again, a leader, and writes go through.
    c.start(l1);
    c.wait_leader(t3, Duration::from_secs(10))
        .await
        .expect("a leader once 3 of 5 are up");
    ck.append("k", "3", Duration::from_secs(10))
        .await
        .expect("write after recovery");

    // The rest rejoin as followers and catch up from their disks and the leader.
    c.start(l2);
    c.start(l3);
    assert!(
        c.wait_caught_up(Duration::from_secs(10)).await,
        "all nodes catch up"
    );
    let v = ck.get("k", Duration::from_secs(10)).await.expect("read");
    assert!(v.starts_with("123"), "acknowledged writes survive: {v:?}");
    let story = c.log_text(l2);
    assert!(
        story.contains("starts an election") || story.contains("grants its vote"),
        "{story}"
    );
}

/// Clients write while nodes are killed with SIGKILL and restarted; afterwards every
/// acknowledged write is there and the history is linearizable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_survive_kill_9_and_history_is_linearizable() {
    let c = Arc::new(tokio::sync::Mutex::new(TestCluster::new(
        "durability",
        3,
        64 << 10,
    )));
    {
        let g = c.lock().await;
        g.wait_leader(0, Duration::from_secs(10))
            .await
            .expect("leader");
    }
    let addrs = c.lock().await.addrs.clone();
    let clock = Arc::new(AtomicU64::new(0));
    let history = Arc::new(std::sync::Mutex::new(Vec::new()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut clients = Vec::new();
    for cli in 0..4u64 {
        let (addrs, clock, history, stop) =
            (addrs.clone(), clock.clone(), history.clone(), stop.clone());
        clients.push(tokio::spawn(async move {
            let mut ck = TcpClerk::new(addrs);
            let key = format!("k{}", cli % 2);
            let mut acked = Vec::new();
            let mut j = 0;
            while !stop.load(Ordering::Relaxed) {
                let value = format!("[{cli}.{j}]");
                j += 1;
                let get = j % 3 == 0;
                let call = clock.fetch_add(1, Ordering::SeqCst);
                let (output, ret) = if get {
                    match ck.get(&key, Duration::from_secs(3)).await {
                        Ok(v) => (KvOutput::Value(v), clock.fetch_add(1, Ordering::SeqCst)),
                        Err(_) => (KvOutput::Unknown, NEVER_RETURNED),
                    }
                } else {
                    match ck.append(&key, &value, Duration::from_secs(3)).await {
                        Ok(()) => {
                            acked.push((key.clone(), value.clone()));
                            (KvOutput::Done, clock.fetch_add(1, Ordering::SeqCst))
                        }
                        Err(_) => (KvOutput::Unknown, NEVER_RETURNED),
                    }
                };
                let op = if get { KvOp::Get } else { KvOp::Append };
                history
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(Operation {
                        client_id: cli,
                        input: KvInput {
                            op,
                            key: key.clone(),
                            value: if get { String::new() } else { value },
                        },
                        call,
                        output,
                        ret,
                    });
                // After an operation with an unknown outcome the clerk goes on with the next
                // number: the servers then ignore the old one if it arrives late, so it took
                // effect before the next one or not at all.
            }
            acked
        }));
    }
    // Kill and restart nodes in turn for a bounded time.
    for round in 0..6usize {
        sleep(Duration::from_millis(700)).await;
        let mut g = c.lock().await;
        let victim = round % 3;
        g.kill(victim);
        drop(g);
        sleep(Duration::from_millis(700)).await;
        c.lock().await.start(victim);
    }
    sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    let mut acked = Vec::new();
    for cl in clients {
        acked.extend(cl.await.expect("client task"));
    }
    let g = c.lock().await;
    assert!(
        g.wait_caught_up(Duration::from_secs(15)).await,
        "nodes catch up"
    );
    let mut ck = g.clerk();
    for key in ["k0", "k1"] {
        let v = ck
            .get(key, Duration::from_secs(10))
            .await
            .expect("final read");
        for (k, val) in acked.iter().filter(|(k, _)| k == key) {
            assert!(
                v.contains(val.as_str()),
                "acknowledged append {val} to {k} lost"
            );
        }
    }
    assert!(
        acked.len() > 20,
        "the clients made progress: {} acked",
        acked.len()
    );
    let history = history.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let result = lincheck::check_operations(&KvModel, &history, Some(Duration::from_secs(60)));
    assert_eq!(
        result,
        CheckResult::Linearizable,
        "{} operations",
        history.len()
    );
}

/// Garbage on a node's port closes that connection; the node keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_bytes_close_the_connection_and_the_node_keeps_serving() {
    let c = TestCluster::new("badinput", 3, 4 << 20);
    c.wait_leader(0, Duration::from_secs(10))
        .await
        .expect("leader");
    let payloads: Vec<Vec<u8>> = vec![
        (0..4096u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect(),
        vec![0, 0, 0, 40, 1, 2, 3], // a frame that says 40 bytes and stops after 3
        vec![0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0], // an oversized frame
        vec![0, 0, 0, 5, 0xde, 0xad, 0xbe, 0xef, 0x00], // a frame that does not decode
    ];
    for addr in &c.addrs {
        for p in &payloads {
            let mut s = TcpStream::connect(addr).expect("connect");
            s.set_read_timeout(Some(Duration::from_secs(5)))
                .expect("timeout");
            let _ = s.write_all(p);
            let _ = s.shutdown(std::net::Shutdown::Write);
            let mut buf = [0u8; 64];
            // The node must close the connection (EOF or reset), not hang.
            match s.read(&mut buf) {
                Ok(0) | Err(_) => {}
                Ok(n) => panic!("node answered garbage with {n} bytes"),
            }
        }
    }
    for i in 0..c.addrs.len() {
        assert!(c.status(i).await.is_some(), "node {i} still serves");
    }
    let mut ck = c.clerk();
    ck.put("after", "garbage", Duration::from_secs(10))
        .await
        .expect("still works");
    assert_eq!(
        ck.get("after", Duration::from_secs(10))
            .await
            .expect("read"),
        "garbage"
    );
}

/// A corrupted write-ahead log stops the node at start with the file and offset; a torn
/// last record is cut off with a warning and the node starts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_data_dir_is_reported_and_torn_tail_is_repaired() {
    let mut c = TestCluster::new("corrupt", 3, 4 << 20);
    c.wait_leader(0, Duration::from_secs(10))
        .await
        .expect("leader");
    let mut ck = c.clerk();
    for i in 0..20 {
        ck.put(&format!("k{i}"), "v", Duration::from_secs(10))
            .await
            .expect("write");
    }
    assert!(c.wait_caught_up(Duration::from_secs(10)).await);
    c.kill(2);
    let wal = c.node_dir(2).join("wal");
    let mut bytes = fs::read(&wal).expect("the node has a wal");
    assert!(bytes.len() > 100, "wal has records");

    // A torn tail, as a crash in the middle of a save leaves it: the start of a frame whose
    // payload never made it to disk. (That save never returned, so nothing was promised from
    // it; cutting into an earlier, acknowledged frame would be data loss, not a torn write.)
    let mut torn = bytes.clone();
    torn.extend_from_slice(&[36, 0, 0, 0, 0xaa, 0xbb, 0xcc, 0xdd, 1, 2]);
    fs::write(&wal, &torn).expect("write");
    c.start(2);
    assert!(
        c.wait_caught_up(Duration::from_secs(10)).await,
        "repaired node catches up"
    );
    c.kill(2);
    let log = c.log_text(2);
    assert!(
        log.contains("torn") || log.contains("truncat"),
        "a warning about the torn tail: {log}"
    );

    // Corruption in the middle: the node refuses to start and says where.
    bytes = fs::read(&wal).expect("wal");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    fs::write(&wal, &bytes).expect("write");
    let out = c.command(2).output().expect("run node");
    assert!(!out.status.success(), "a corrupt wal must stop the node");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("wal") && err.contains("offset"),
        "error names file and offset: {err}"
    );
}

/// A node that was down while the others compacted their logs gets a snapshot over TCP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_is_installed_over_tcp() {
    let mut c = TestCluster::new("snapshot", 3, 2000);
    c.wait_leader(0, Duration::from_secs(10))
        .await
        .expect("leader");
    c.kill(2);
    let mut ck = c.clerk();
    for i in 0..200 {
        ck.put(
            &format!("key{}", i % 10),
            &format!("value{i}"),
            Duration::from_secs(10),
        )
        .await
        .expect("write");
    }
    let leader_status = c
        .statuses()
        .await
        .into_iter()
        .flatten()
        .find(|s| s.role == "leader");
    let snap = leader_status.map_or(0, |s| s.snapshot_index);
    assert!(
        snap > 50,
        "the leader compacted its log (snapshot at {snap})"
    );
    c.start(2);
    assert!(
        c.wait_caught_up(Duration::from_secs(15)).await,
        "node 2 catches up"
    );
    let s2 = c.status(2).await.expect("node 2 answers");
    assert!(s2.snapshot_index > 0, "node 2 installed a snapshot: {s2:?}");
    assert!(
        c.log_text(2).contains("installs a snapshot"),
        "{}",
        c.log_text(2)
    );
    assert_eq!(
        ck.get("key9", Duration::from_secs(10)).await.expect("read"),
        "value199"
    );
}

/// Gets are answered with no log entry (ReadIndex, or the leader's lease with `flags`): a
/// hundred sequential and a hundred concurrent gets leave every node's log as it was, while
/// one get through the log (the labs' way) adds an entry.
async fn gets_add_no_log_entries(name: &str, flags: &[&str]) {
    let c = TestCluster::with_flags(name, 3, 4 << 20, flags);
    c.wait_leader(0, Duration::from_secs(10))
        .await
        .expect("leader");
    let mut ck = c.clerk();
    for i in 0..5 {
        ck.put(&format!("k{i}"), &format!("v{i}"), Duration::from_secs(10))
            .await
            .expect("write");
    }
    assert!(c.wait_caught_up(Duration::from_secs(10)).await);
    let before: Vec<(u64, u64)> = c
        .statuses()
        .await
        .into_iter()
        .map(|s| s.map_or((0, 0), |s| (s.term, s.last_index)))
        .collect();
    for round in 0..20 {
        for i in 0..5 {
            let v = ck
                .get(&format!("k{i}"), Duration::from_secs(10))
                .await
                .expect("read");
            assert_eq!(v, format!("v{i}"), "round {round}");
        }
    }
    let mut readers = Vec::new();
    for r in 0..4 {
        let mut ck = TcpClerk::new(c.addrs.clone());
        readers.push(tokio::spawn(async move {
            for j in 0..25 {
                let i = (r + j) % 5;
                let v = ck.get(&format!("k{i}"), Duration::from_secs(10)).await;
                assert_eq!(v.ok(), Some(format!("v{i}")));
            }
        }));
    }
    for r in readers {
        r.await.expect("reader");
    }
    let after: Vec<(u64, u64)> = c
        .statuses()
        .await
        .into_iter()
        .map(|s| s.map_or((0, 0), |s| (s.term, s.last_index)))
        .collect();
    assert_eq!(
        before, after,
        "(term, last log index) per node before and after 200 gets"
    );
    // The contrast: a get through the log appends one entry.
    assert_eq!(
        ck.get_logged("k0", Duration::from_secs(10))
            .await
            .expect("logged read"),
        "v0"
    );
    let leader_after = c
        .statuses()
        .await
        .into_iter()
        .flatten()
        .find(|s| s.role == "leader")
        .expect("a leader");
    let leader_before = before[leader_after.id as usize];
    assert_eq!(leader_after.last_index, leader_before.1 + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gets_by_read_index_write_nothing_to_the_log() {
    gets_add_no_log_entries("readindex", &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gets_by_lease_write_nothing_to_the_log() {
    gets_add_no_log_entries("lease", &["--lease-reads"]).await;
}

/// `raftlab cluster transfer --to N` on a real 3-node cluster: leadership moves and the data
/// with it; an unknown node, a follower asked directly and a dead target are refused clearly;
/// `cluster status` shows who heard from whom.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfer_moves_leadership_and_refuses_clearly() {
    let mut c = TestCluster::new("transfer", 3, 4 << 20);
    let (l, t) = c
        .wait_leader(0, Duration::from_secs(10))
        .await
        .expect("leader");
    let mut ck = c.clerk();
    ck.put("x", "1", Duration::from_secs(10))
        .await
        .expect("write");
    c.write_cluster_file();

    let target = (l + 1) % 3;
    let o = c.cli(&["cluster", "transfer", "--to", &target.to_string()]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    assert!(
        stdout(&o).contains(&format!("node {target} is now the leader")),
        "{}",
        stdout(&o)
    );
    let s = c.status(target).await.expect("target answers");
    assert!(s.role == "leader" && s.term > t, "{s:?}");
    ck.append("x", "2", Duration::from_secs(10))
        .await
        .expect("write under the new leader");
    assert_eq!(
        ck.get("x", Duration::from_secs(10)).await.expect("read"),
        "12"
    );
    let o = c.cli(&["cluster", "transfer", "--to", &target.to_string()]);
    assert!(o.status.success());
    assert!(stdout(&o).contains("already leads"), "{}", stdout(&o));

    // An unknown node.
    let o = c.cli(&["cluster", "transfer", "--to", "9"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("unknown node 9"), "{}", stderr(&o));

    // A follower asked directly: not the leader, with a hint.
    let follower = (target + 1) % 3;
    let client = connect(c.addrs[follower]).await.expect("connect");
    let answer = client
        .transfer(ctx(), CLUSTER_ID, l as u64)
        .await
        .expect("rpc");
    assert_eq!(
        answer,
        Ok(Err(TransferFailure::NotLeader {
            at: follower as u64,
            hint: Some(target as u64)
        }))
    );

    // Status: every follower heard from the leader lately; the leader from every peer.
    let o = c.cli(&["cluster", "status"]);
    let table = stdout(&o);
    assert!(
        table.contains(&format!("leader {target}, heard 0.")),
        "{table}"
    );
    assert!(
        table.contains("peers ") && table.contains("heard 0."),
        "{table}"
    );
    let st = c.status(follower).await.expect("status");
    let (from, ms) = st.leader_contact.expect("heard from a leader");
    assert!(from == target as u64 && ms < 1000, "{st:?}");

    // A dead target: the leader gives the transfer up and goes on leading.
    c.kill(follower);
    c.write_cluster_file();
    let o = c.cli(&[
        "cluster",
        "transfer",
        "--to",
        &follower.to_string(),
        "--timeout",
        "5",
    ]);
    assert!(!o.status.success(), "{}", stdout(&o));
    assert!(
        stderr(&o).contains("gave the transfer up") || stderr(&o).contains("timed out"),
        "{}",
        stderr(&o)
    );
    let s = c.status(target).await.expect("leader answers");
    assert_eq!(s.role, "leader", "{s:?}");
    ck.append("x", "3", Duration::from_secs(10))
        .await
        .expect("the leader takes writes again");
    let o = c.cli(&["cluster", "status"]);
    assert!(
        stdout(&o).contains(&format!("{follower}: UNREACHABLE")),
        "{}",
        stdout(&o)
    );
    assert!(
        c.log_text(target)
            .contains(&format!("node {target}: I am leader of term")),
        "the observer narrates: {}",
        c.log_text(target)
    );
}
