//! A removed node's data directory: the `removed` marker round-trips, and a node refuses to
//! start on a marked directory with `NodeError::Removed`, before opening its storage.

use std::fs;

use cluster::server::{Bootstrap, Features, NodeConfig, NodeError, start_kv_node_with};
use cluster::storage;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_refuses_a_directory_marked_removed() {
    let dir = std::env::temp_dir().join(format!("raftlab-removed-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    assert_eq!(storage::read_removed(&dir).expect("no directory"), None);
    storage::write_removed(
        &dir,
        "node 1 of cluster 00000000000000ab: removed at index 9",
    )
    .expect("mark");
    assert_eq!(
        storage::read_removed(&dir).expect("read").as_deref(),
        Some("node 1 of cluster 00000000000000ab: removed at index 9")
    );
    let cfg = NodeConfig {
        id: 1,
        listen: "127.0.0.1:0".parse().expect("addr"),
        peers: vec!["127.0.0.1:1".parse().expect("addr"); 3],
        data_dir: dir.clone(),
        cluster_id: Some(0xab),
        maxraftstate: None,
        features: Features::production(),
        allow_fault_injection: false,
    };
    for bootstrap in [Bootstrap::AllPeers, Bootstrap::Join] {
        match start_kv_node_with(cfg.clone(), bootstrap).await {
            Err(e @ NodeError::Removed { .. }) => {
                let msg = e.to_string();
                assert!(
                    msg.contains("must not rejoin") && msg.contains("index 9"),
                    "{msg}"
                );
            }
            Err(e) => panic!("another error: {e}"),
            Ok(_) => panic!("a node started on a removed directory"),
        }
    }
    // Refused before the storage was created.
    assert!(!dir.join(storage::WAL_FILE).exists());
    let _ = fs::remove_dir_all(&dir);
}
