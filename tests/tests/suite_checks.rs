//! Tests of the tests: a suite is only as good as what it catches. These run deliberately
//! broken services through the graded harnesses and assert that the suites fail them.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Duration;

use kvraft::ServerOptions;
use labrpc::Sim;
use labrpc::sim::{self, seed_from_env};
use tests::kv_harness::KvConfig;
use tokio::time::sleep;

/// A write completes in the majority; then a clerk that can only reach the old leader (now in
/// the minority) reads. A correct service makes that read wait for the partition to heal and
/// returns the new value; a service that answers reads from local state returns the old one.
async fn stale_read_scenario(sim: Sim, broken: bool) {
    let options = ServerOptions {
        unsafe_local_reads: broken,
        ..ServerOptions::default()
    };
    let cfg = KvConfig::with_options(&sim, 5, false, options);
    let mut ck = cfg.make_client(&cfg.all());
    cfg.put(&mut ck, "k", "v1", true).await;
    cfg.check(&mut ck, "k", "v1").await;
    let (majority, minority) = cfg.make_partition(); // the leader is in `minority`
    cfg.partition(&majority, &minority);
    let mut writer = cfg.make_client(&majority);
    cfg.put(&mut writer, "k", "v2", true).await;
    let mut reader = cfg.make_client(&minority);
    let reader_id = reader.id();
    let read = {
        let cfg = cfg.clone();
        tokio::spawn(async move { cfg.get(&mut reader, "k", true).await })
    };
    sleep(Duration::from_secs(1)).await;
    cfg.connect_all();
    cfg.connect_client_id(reader_id, &cfg.all());
    let value = match read.await {
        Ok(v) => v,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    };
    println!("the minority reader got {value:?}");
    cfg.check_linearizable();
}

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

#[test]
fn correct_service_passes_the_stale_read_scenario() {
    sim::run_test(env!("CARGO_PKG_NAME"), |sim| {
        stale_read_scenario(sim, false)
    });
}

#[test]
fn local_reads_are_caught_as_not_linearizable() {
    let seed = seed_from_env();
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        sim::run(sim::Config::new(seed), |sim| stale_read_scenario(sim, true))
    }));
    match outcome {
        Ok(_) => panic!(
            "seed {seed}: a service that serves stale reads passed the linearizability check"
        ),
        Err(p) => {
            let msg = panic_message(p.as_ref());
            assert!(
                msg.contains("not linearizable"),
                "seed {seed}: failed for another reason: {msg}"
            );
        }
    }
}
