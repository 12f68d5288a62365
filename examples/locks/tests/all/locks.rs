//! The example as a newcomer runs it: three `locks node` processes on loopback, the CLI
//! against them, a node killed with SIGKILL and restarted from its disk.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

struct Nodes {
    peers: String,
    dirs: Vec<PathBuf>,
    children: Vec<Option<Child>>,
}

impl Nodes {
    fn start(&mut self, i: usize) {
        let child = Command::new(env!("CARGO_BIN_EXE_locks"))
            .args([
                "node",
                "--id",
                &i.to_string(),
                "--peers",
                &self.peers,
                "--data-dir",
            ])
            .arg(&self.dirs[i])
            .stdout(Stdio::null())
            .stderr(log_file(&self.dirs[i]))
            .spawn()
            .expect("start a node");
        self.children[i] = Some(child);
    }

    fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.children[i].take() {
            let _ = c.kill(); // SIGKILL
            let _ = c.wait();
        }
    }

    fn cli(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_locks"))
            .args(args)
            .args(["--peers", &self.peers])
            .output()
            .expect("run the locks CLI")
    }
}

impl Drop for Nodes {
    fn drop(&mut self) {
        for i in 0..self.children.len() {
            self.kill(i);
        }
        for d in &self.dirs {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

/// Where node `dir` writes its log (beside its data directory), shown when the test fails.
fn log_file(dir: &std::path::Path) -> Stdio {
    let path = dir.with_extension("log");
    if let Some(parent) = path.parent() {
        let _ = std::fs::create_dir_all(parent);
    }
    match std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
    {
        Ok(f) => Stdio::from(f),
        Err(_) => Stdio::null(),
    }
}

fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind a free port"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().expect("local addr").port())
        .collect()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).trim().to_owned()
}

#[test]
fn locks_survive_a_killed_node_and_tokens_only_grow() {
    let ports = free_ports(3);
    let base = std::env::temp_dir().join(format!("locks-example-{}", std::process::id()));
    let mut nodes = Nodes {
        peers: ports
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(","),
        dirs: (0..3).map(|i| base.join(format!("node-{i}"))).collect(),
        children: vec![None, None, None],
    };
    for i in 0..3 {
        nodes.start(i);
    }
    // Wait until the nodes listen: "could be reached" means no server answered even the
    // cluster-id query, so nothing was submitted and asking again is safe.
    let mut o = nodes.cli(&["acquire", "db", "ann"]);
    for _ in 0..50 {
        if !String::from_utf8_lossy(&o.stderr).contains("could be reached") {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
        o = nodes.cli(&["acquire", "db", "ann"]);
    }
    assert!(o.status.success(), "{o:?}");
    assert_eq!(stdout(&o), "acquired, fencing token 1");
    let o = nodes.cli(&["acquire", "db", "bob"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(stdout(&o), "held by ann (token 1)");

    // Any one node may die: the other two are a majority.
    nodes.kill(0);
    let o = nodes.cli(&["release", "db", "ann"]);
    assert_eq!(stdout(&o), "released", "{o:?}");
    let o = nodes.cli(&["acquire", "db", "bob"]);
    assert_eq!(stdout(&o), "acquired, fencing token 2", "{o:?}");

    // The dead node comes back from its disk; another one dies.
    nodes.start(0);
    std::thread::sleep(Duration::from_millis(500));
    nodes.kill(1);
    let o = nodes.cli(&["acquire", "queue", "ann"]);
    assert_eq!(stdout(&o), "acquired, fencing token 3", "{o:?}");
    let o = nodes.cli(&["release", "db", "ann"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(stdout(&o), "not held by you");
}
