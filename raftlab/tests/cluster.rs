//! The real cluster, as a user runs it: `raftlab node` processes on loopback (free ports chosen
//! at run time), killed with SIGKILL and restarted, with their data on disk.

use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use cluster::client::{ClerkError, TcpClerk};
use cluster::rpc::NodeStatus;
use cluster::transport::{connect, ctx};
use lincheck::models::kv::{KvInput, KvModel, KvOp, KvOutput};
use lincheck::{CheckResult, NEVER_RETURNED, Operation};
use tokio::time::sleep;

const CLUSTER_ID: u64 = 0x5eed_c0de_0000_0001;

struct TestCluster {
    dir: PathBuf,
    addrs: Vec<SocketAddr>,
    children: Vec<Option<Child>>,
    maxraftstate: usize,
}

fn free_ports(n: usize) -> Vec<SocketAddr> {
    // Bind them all at once so they are distinct, then release them for the nodes.
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind a free port"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().expect("local addr"))
        .collect()
}

impl TestCluster {
    fn new(name: &str, n: usize, maxraftstate: usize) -> TestCluster {
        let dir = std::env::temp_dir().join(format!("raftlab-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("test dir");
        let mut c = TestCluster {
            dir,
            addrs: free_ports(n),
            children: (0..n).map(|_| None).collect(),
            maxraftstate,
        };
        for i in 0..n {
            c.start(i);
        }
        c
    }

    fn node_dir(&self, i: usize) -> PathBuf {
        self.dir.join(format!("node-{i}"))
    }

    fn log_path(&self, i: usize) -> PathBuf {
        self.dir.join(format!("node-{i}.log"))
    }

    fn command(&self, i: usize) -> Command {
        let peers: Vec<String> = self.addrs.iter().map(|a| a.to_string()).collect();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_raftlab"));
        cmd.arg("node")
            .args(["--id", &i.to_string()])
            .args(["--listen", &self.addrs[i].to_string()])
            .args(["--peers", &peers.join(",")])
            .arg("--data-dir")
            .arg(self.node_dir(i))
            .args(["--cluster-id", &format!("{CLUSTER_ID:016x}")])
            .args(["--maxraftstate", &self.maxraftstate.to_string()]);
        cmd
    }

    fn start(&mut self, i: usize) {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path(i))
            .expect("log file");
        let child = self
            .command(i)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start a node");
        self.children[i] = Some(child);
    }

    /// kill -9.
    fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.children[i].take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn clerk(&self) -> TcpClerk {
        TcpClerk::new(self.addrs.clone())
    }

    async fn status(&self, i: usize) -> Option<NodeStatus> {
        let client = connect(self.addrs[i]).await?;
        match tokio::time::timeout(Duration::from_secs(1), client.status(ctx(), CLUSTER_ID)).await {
            Ok(Ok(Ok(s))) => Some(s),
            _ => None,
        }
    }

    async fn statuses(&self) -> Vec<Option<NodeStatus>> {
        let mut out = Vec::new();
        for i in 0..self.addrs.len() {
            out.push(if self.children[i].is_some() {
                self.status(i).await
            } else {
                None
            });
        }
        out
    }

    /// Waits for a live node to lead a term newer than `after`; returns (node, term).
    async fn wait_leader(&self, after: u64, within: Duration) -> Option<(usize, u64)> {
        let deadline = tokio::time::Instant::now() + within;
        while tokio::time::Instant::now() < deadline {
            for (i, s) in self.statuses().await.into_iter().enumerate() {
                if let Some(s) = s
                    && s.role == "leader"
                    && s.term > after
                {
                    return Some((i, s.term));
                }
            }
            sleep(Duration::from_millis(100)).await;
        }
        None
    }

    /// Waits until every live node applied everything the leader committed.
    async fn wait_caught_up(&self, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        while tokio::time::Instant::now() < deadline {
            let st: Vec<NodeStatus> = self.statuses().await.into_iter().flatten().collect();
            let live = self.children.iter().filter(|c| c.is_some()).count();
            if let Some(l) = st.iter().find(|s| s.role == "leader")
                && st.len() == live
                && st.iter().all(|s| s.applied >= l.commit)
            {
                return true;
            }
            sleep(Duration::from_millis(100)).await;
        }
        false
    }

    fn log_text(&self, i: usize) -> String {
        fs::read_to_string(self.log_path(i)).unwrap_or_default()
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        for i in 0..self.children.len() {
            self.kill(i);
        }
        if !std::thread::panicking() {
            let _ = fs::remove_dir_all(&self.dir);
        } else {
            eprintln!("node logs kept in {}", self.dir.display());
        }
    }
}

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
