//! The sharded key/value service's graded suite: every test of 6.5840's `shardkv/test_test.go`,
//! with the same scenarios and constants, both challenges included. Names end with the lab part
//! (`cargo test -p tests --test shardkv 5b`). Every test records its clients' operations and
//! checks the history for linearizability at the end, besides the original's value checks.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use labrpc::Sim;
use shardkv::key2shard;
use tests::raft_harness::join_all;
use tests::shardkv_harness::{ShardKvConfig, TEST_TIME_LIMIT};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep};

fn shardkv_test<F, Fut>(body: F)
where
    F: FnOnce(Sim) -> Fut,
    Fut: Future<Output = ()>,
{
    tests::sim_test(TEST_TIME_LIMIT, body);
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Keys "0".."n-1" (one per shard for n = 10) and random values of `len` characters, put
/// through `ck`.
async fn put_keys(
    cfg: &ShardKvConfig,
    ck: &mut tests::shardkv_harness::TestClerk,
    n: usize,
    len: usize,
) -> (Vec<String>, Vec<String>) {
    let ka: Vec<String> = (0..n).map(|i| i.to_string()).collect();
    let mut va = Vec::new();
    for k in &ka {
        let v = cfg.randstring(len);
        cfg.put(ck, k, &v, true).await;
        va.push(v);
    }
    (ka, va)
}

/// Checks every key, then appends a fresh random string to it.
async fn check_and_append(
    cfg: &ShardKvConfig,
    ck: &mut tests::shardkv_harness::TestClerk,
    ka: &[String],
    va: &mut [String],
    len: usize,
) {
    for (k, v) in ka.iter().zip(va.iter_mut()) {
        cfg.check(ck, k, v).await;
        let x = cfg.randstring(len);
        cfg.append(ck, k, &x, true).await;
        v.push_str(&x);
    }
}

async fn check_all(
    cfg: &ShardKvConfig,
    ck: &mut tests::shardkv_harness::TestClerk,
    ka: &[String],
    va: &[String],
) {
    for (k, v) in ka.iter().zip(va) {
        cfg.check(ck, k, v).await;
    }
}

/// One task per key, each with its own clerk, appending random strings of `len` characters to
/// its key (pausing `pause` after each) until `done`; each returns its key's final value.
fn spawn_appenders(
    cfg: &Arc<ShardKvConfig>,
    ka: &[String],
    va: &[String],
    len: usize,
    pause: Option<Duration>,
    done: &Arc<AtomicBool>,
) -> Vec<JoinHandle<String>> {
    ka.iter()
        .zip(va)
        .map(|(k, v)| {
            let (cfg, done) = (cfg.clone(), done.clone());
            let (k, mut v) = (k.clone(), v.clone());
            let mut ck1 = cfg.make_client();
            tokio::spawn(async move {
                while !done.load(Ordering::Relaxed) {
                    let x = cfg.randstring(len);
                    cfg.append(&mut ck1, &k, &x, true).await;
                    v.push_str(&x);
                    if let Some(p) = pause {
                        sleep(p).await;
                    }
                }
                v
            })
        })
        .collect()
}

/// Receives completions until none arrives for `quiet` (the original's loop around
/// `time.After`), failing on a wrong value; returns the indices that completed.
async fn completions(rx: &mut mpsc::UnboundedReceiver<(usize, Option<String>)>) -> Vec<usize> {
    let mut done = Vec::new();
    loop {
        tokio::select! {
            biased;
            r = rx.recv() => match r {
                Some((i, None)) => done.push(i),
                Some((_, Some(err))) => panic!("{err}"),
                None => return done,
            },
            () = sleep(Duration::from_secs(2)) => return done,
        }
    }
}

/// Test static 2-way sharding, without shard movement.
#[test]
fn static_shards_5b() {
    shardkv_test(|sim| async move {
        let cfg = ShardKvConfig::new(&sim, 3, false, None);
        cfg.begin("Test (5B): static shards");
        let mut ck = cfg.make_client();
        cfg.join(0).await;
        cfg.join(1).await;
        let n = 10;
        let (ka, va) = put_keys(&cfg, &mut ck, n, 20).await;
        check_all(&cfg, &mut ck, &ka, &va).await;

        // make sure that the data really is sharded by shutting down one shard and checking
        // that some Get()s don't succeed.
        cfg.shutdown_group(1);
        cfg.check_logs(); // forbid snapshots
        let (tx, mut rx) = mpsc::unbounded_channel();
        for i in 0..n {
            let mut ck1 = cfg.make_client(); // only one call allowed per client
            let (cfg, tx, k, want) = (cfg.clone(), tx.clone(), ka[i].clone(), va[i].clone());
            tokio::spawn(async move {
                let v = cfg.get(&mut ck1, &k, true).await;
                let err =
                    (v != want).then(|| format!("Get({k}): expected:\n{want}\nreceived:\n{v}"));
                let _ = tx.send((i, err));
            });
        }
        // wait a bit, only about half the Gets should succeed.
        let ndone = completions(&mut rx).await.len();
        assert_eq!(
            ndone, 5,
            "expected 5 completions with one shard dead; got {ndone}"
        );

        // bring the crashed shard/group back to life.
        cfg.start_group(1);
        check_all(&cfg, &mut ck, &ka, &va).await;
        cfg.check_linearizable();
        cfg.end();
    });
}

/// Do servers reject operations on shards for which they are not responsible? A second
/// controller service, which the groups know nothing about, says group 100 serves every shard;
/// a clerk that follows it sends every key to group 100. Group 100 must carry out exactly the
/// operations on its own shards (5 of the 10 keys) and refuse the rest forever, so those writes
/// never take effect.
#[test]
fn rejection_5b() {
    shardkv_test(|sim| async move {
        let cfg = ShardKvConfig::new(&sim, 3, false, None);
        cfg.begin("Test (5B): rejection");
        let mut ck = cfg.make_client();
        cfg.join(0).await;
        cfg.join(1).await;
        let n = 10;
        let (ka, mut va) = put_keys(&cfg, &mut ck, n, 20).await;
        check_all(&cfg, &mut ck, &ka, &va).await;
        let real = cfg.query_latest().await;

        let ctl2 = cfg.start_ctrler_service("ctrler2-");
        let mut mck2 = cfg.make_ctrler_clerk(&ctl2);
        mck2.join(cfg.group_servers(0)).await;

        let (tx, mut rx) = mpsc::unbounded_channel();
        let fresh: Vec<String> = (0..n).map(|_| cfg.randstring(20)).collect();
        for i in 0..n {
            let mut ck2 = cfg.make_client_of(&ctl2); // one call per clerk
            let (cfg, tx, k, v) = (cfg.clone(), tx.clone(), ka[i].clone(), fresh[i].clone());
            tokio::spawn(async move {
                cfg.put(&mut ck2, &k, &v, true).await;
                let _ = tx.send((i, None));
            });
        }
        let mut done = completions(&mut rx).await;
        done.sort_unstable();
        let own: Vec<usize> = (0..n)
            .filter(|&i| real.shards[key2shard(&ka[i])] == cfg.gid(0))
            .collect();
        assert_eq!(
            done, own,
            "group 100 carried out Puts on keys {done:?}; it serves exactly keys {own:?}"
        );
        for &i in &own {
            va[i] = fresh[i].clone();
        }
        // The refused Puts had no effect; the accepted ones did.
        check_all(&cfg, &mut ck, &ka, &va).await;
        cfg.check_linearizable();
        cfg.end();
    });
}

#[test]
fn join_leave_5b() {
    shardkv_test(|sim| async move {
        let cfg = ShardKvConfig::new(&sim, 3, false, None);
        cfg.begin("Test (5B): join then leave");
        let mut ck = cfg.make_client();
        cfg.join(0).await;
        let n = 10;
        let (ka, mut va) = put_keys(&cfg, &mut ck, n, 5).await;
        check_all(&cfg, &mut ck, &ka, &va).await;
        cfg.join(1).await;
        check_and_append(&cfg, &mut ck, &ka, &mut va, 5).await;
        cfg.leave(0).await;
        check_and_append(&cfg, &mut ck, &ka, &mut va, 5).await;
        // allow time for shards to transfer.
        sleep(Duration::from_secs(1)).await;
        cfg.check_logs();
        cfg.shutdown_group(0);
        check_all(&cfg, &mut ck, &ka, &va).await;
        cfg.check_linearizable();
        cfg.end();
    });
}

#[test]
fn snapshot_5b() {
    shardkv_test(|sim| async move {
        let cfg = ShardKvConfig::new(&sim, 3, false, Some(1000));
        cfg.begin("Test (5B): snapshots, join, and leave");
        let mut ck = cfg.make_client();
        cfg.join(0).await;
        let n = 30;
        let (ka, mut va) = put_keys(&cfg, &mut ck, n, 20).await;
        check_all(&cfg, &mut ck, &ka, &va).await;
        cfg.join(1).await;
        cfg.join(2).await;
        cfg.leave(0).await;
        check_and_append(&cfg, &mut ck, &ka, &mut va, 20).await;
        cfg.leave(1).await;
        cfg.join(0).await;
        check_and_append(&cfg, &mut ck, &ka, &mut va, 20).await;
        sleep(Duration::from_secs(1)).await;
        check_all(&cfg, &mut ck, &ka, &va).await;
        sleep(Duration::from_secs(1)).await;
        cfg.check_logs();
        for gi in 0..3 {
            cfg.shutdown_group(gi);
        }
        for gi in 0..3 {
            cfg.start_group(gi);
        }
        check_all(&cfg, &mut ck, &ka, &va).await;
        cfg.check_linearizable();
        cfg.end();
    });
}

#[test]
fn miss_change_5b() {
    shardkv_test(|sim| async move {
        let cfg = ShardKvConfig::new(&sim, 3, false, Some(1000));
        cfg.begin("Test (5B): servers miss configuration changes");
        let mut ck = cfg.make_client();
        cfg.join(0).await;
        let n = 10;
        let (ka, mut va) = put_keys(&cfg, &mut ck, n, 20).await;
        check_all(&cfg, &mut ck, &ka, &va).await;
        cfg.join(1).await;
        for gi in 0..3 {
            cfg.shutdown_server(gi, 0);
        }
        cfg.join(2).await;
        cfg.leave(1).await;
        cfg.leave(0).await;
        check_and_append(&cfg, &mut ck, &ka, &mut va, 20).await;
        cfg.join(1).await;
        check_and_append(&cfg, &mut ck, &ka, &mut va, 20).await;
        for gi in 0..3 {
            cfg.start_server(gi, 0);
        }
        check_and_append(&cfg, &mut ck, &ka, &mut va, 20).await;
        sleep(Duration::from_secs(2)).await;
        for gi in 0..3 {
            cfg.shutdown_server(gi, 1);
        }
        cfg.join(0).await;
        cfg.leave(2).await;
        check_and_append(&cfg, &mut ck, &ka, &mut va, 20).await;
        for gi in 0..3 {
            cfg.start_server(gi, 1);
        }
        check_all(&cfg, &mut ck, &ka, &va).await;
        cfg.check_linearizable();
        cfg.end();
    });
}

#[test]
fn concurrent1_5b() {
    shardkv_test(|sim| async move {
        let cfg = ShardKvConfig::new(&sim, 3, false, Some(100));
        cfg.begin("Test (5B): concurrent puts and configuration changes");
        let mut ck = cfg.make_client();
        cfg.join(0).await;
        let n = 10;
        let (ka, va) = put_keys(&cfg, &mut ck, n, 5).await;
        let done = Arc::new(AtomicBool::new(false));
        let appenders = spawn_appenders(&cfg, &ka, &va, 5, Some(ms(10)), &done);

        sleep(ms(150)).await;
        cfg.join(1).await;
        sleep(ms(500)).await;
        cfg.join(2).await;
        sleep(ms(500)).await;
        cfg.leave(0).await;
        cfg.shutdown_group(0);
        sleep(ms(100)).await;
        cfg.shutdown_group(1);
        sleep(ms(100)).await;
        cfg.shutdown_group(2);
        cfg.leave(2).await;
        sleep(ms(100)).await;
        cfg.start_group(0);
        cfg.start_group(1);
        cfg.start_group(2);
        sleep(ms(100)).await;
        cfg.join(0).await;
        cfg.leave(1).await;
        sleep(ms(500)).await;
        cfg.join(1).await;
        sleep(Duration::from_secs(1)).await;

        done.store(true, Ordering::Relaxed);
        let va = join_all(appenders).await;
        check_all(&cfg, &mut ck, &ka, &va).await;
        cfg.check_linearizable();
        cfg.end();
    });
}

/// This tests the various sources from which a re-starting group might need to fetch shard
/// contents.
#[test]
fn concurrent2_5b() {
    shardkv_test(|sim| async move {
        let cfg = ShardKvConfig::new(&sim, 3, false, None);
        cfg.begin("Test (5B): more concurrent puts and configuration changes");
        let mut ck = cfg.make_client();
        cfg.join(1).await;
        cfg.join(0).await;
        cfg.join(2).await;
        let n = 10;
        let (ka, va) = put_keys(&cfg, &mut ck, n, 1).await;
        let done = Arc::new(AtomicBool::new(false));
        let appenders = spawn_appenders(&cfg, &ka, &va, 1, Some(ms(50)), &done);

        cfg.leave(0).await;
        cfg.leave(2).await;
        sleep(ms(3000)).await;
        cfg.join(0).await;
        cfg.join(2).await;
        cfg.leave(1).await;
        sleep(ms(3000)).await;
        cfg.join(1).await;
        cfg.leave(0).await;
        cfg.leave(2).await;
        sleep(ms(3000)).await;
        cfg.shutdown_group(1);
        cfg.shutdown_group(2);
        sleep(ms(1000)).await;
        cfg.start_group(1);
        cfg.start_group(2);
        sleep(Duration::from_secs(2)).await;

        done.store(true, Ordering::Relaxed);
        let va = join_all(appenders).await;
        check_all(&cfg, &mut ck, &ka, &va).await;
        cfg.check_linearizable();
        cfg.end();
    });
}

#[test]
fn concurrent3_5b() {
    shardkv_test(|sim| async move {
        let cfg = ShardKvConfig::new(&sim, 3, false, Some(300));
        cfg.begin("Test (5B): concurrent configuration change and restart");
        let mut ck = cfg.make_client();
        cfg.join(0).await;
        let n = 10;
        let (ka, va) = put_keys(&cfg, &mut ck, n, 1).await;
        let done = Arc::new(AtomicBool::new(false));
        let appenders = spawn_appenders(&cfg, &ka, &va, 1, None, &done);

        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(12) {
            cfg.join(2).await;
            cfg.join(1).await;
            sleep(ms(cfg.rand(900))).await;
            for gi in 0..3 {
                cfg.shutdown_group(gi);
            }
            for gi in 0..3 {
                cfg.start_group(gi);
            }
            sleep(ms(cfg.rand(900))).await;
            cfg.leave(1).await;
            cfg.leave(2).await;
            sleep(ms(cfg.rand(900))).await;
        }
        sleep(Duration::from_secs(2)).await;

        done.store(true, Ordering::Relaxed);
        let va = join_all(appenders).await;
        check_all(&cfg, &mut ck, &ka, &va).await;
        cfg.check_linearizable();
        cfg.end();
    });
}

#[test]
fn unreliable1_5b() {
    shardkv_test(|sim| async move {
        let cfg = ShardKvConfig::new(&sim, 3, true, Some(100));
        cfg.begin("Test (5B): unreliable 1");
        let mut ck = cfg.make_client();
        cfg.join(0).await;
        let n = 10;
        let (ka, mut va) = put_keys(&cfg, &mut ck, n, 5).await;
        cfg.join(1).await;
        cfg.join(2).await;
        cfg.leave(0).await;
        for ii in 0..n * 2 {
            let i = ii % n;
            cfg.check(&mut ck, &ka[i], &va[i]).await;
            let x = cfg.randstring(5);
            cfg.append(&mut ck, &ka[i], &x, true).await;
            va[i] += &x;
        }
        cfg.join(0).await;
        cfg.leave(1).await;
        for ii in 0..n * 2 {
            let i = ii % n;
            cfg.check(&mut ck, &ka[i], &va[i]).await;
        }
        cfg.check_linearizable();
        cfg.end();
    });
}

/// The configuration changes of the unreliable tests, while clients run.
async fn unreliable_changes(cfg: &ShardKvConfig) {
    sleep(ms(150)).await;
    cfg.join(1).await;
    sleep(ms(500)).await;
    cfg.join(2).await;
    sleep(ms(500)).await;
    cfg.leave(0).await;
    sleep(ms(500)).await;
    cfg.leave(1).await;
    sleep(ms(500)).await;
    cfg.join(1).await;
    cfg.join(0).await;
    sleep(Duration::from_secs(2)).await;
}

#[test]
fn unreliable2_5b() {
    shardkv_test(|sim| async move {
        let cfg = ShardKvConfig::new(&sim, 3, true, Some(100));
        cfg.begin("Test (5B): unreliable 2");
        let mut ck = cfg.make_client();
        cfg.join(0).await;
        let n = 10;
        let (ka, va) = put_keys(&cfg, &mut ck, n, 5).await;
        let done = Arc::new(AtomicBool::new(false));
        let appenders = spawn_appenders(&cfg, &ka, &va, 5, None, &done);

        unreliable_changes(&cfg).await;

        done.store(true, Ordering::Relaxed);
        cfg.set_reliable(true);
        let va = join_all(appenders).await;
        check_all(&cfg, &mut ck, &ka, &va).await;
        cfg.check_linearizable();
        cfg.end();
    });
}

/// Clients get, put and append on random keys while groups join and leave over an unreliable
/// network; the history must be linearizable.
#[test]
fn unreliable3_5b() {
    shardkv_test(|sim| async move {
        let cfg = ShardKvConfig::new(&sim, 3, true, Some(100));
        cfg.begin("Test (5B): unreliable 3");
        let mut ck = cfg.make_client();
        cfg.join(0).await;
        let n = 10;
        let (ka, _va) = put_keys(&cfg, &mut ck, n, 5).await;
        let done = Arc::new(AtomicBool::new(false));
        let clients: Vec<JoinHandle<()>> = (0..n)
            .map(|_| {
                let (cfg, done, ka) = (cfg.clone(), done.clone(), ka.clone());
                let mut ck1 = cfg.make_client();
                tokio::spawn(async move {
                    while !done.load(Ordering::Relaxed) {
                        let ki = cfg.rand(n as u64) as usize;
                        let nv = cfg.randstring(5);
                        if cfg.rand(1000) < 500 {
                            cfg.append(&mut ck1, &ka[ki], &nv, true).await;
                        } else if cfg.rand(1000) < 100 {
                            cfg.put(&mut ck1, &ka[ki], &nv, true).await;
                        } else {
                            cfg.get(&mut ck1, &ka[ki], true).await;
                        }
                    }
                })
            })
            .collect();

        unreliable_changes(&cfg).await;

        done.store(true, Ordering::Relaxed);
        cfg.set_reliable(true);
        join_all(clients).await;
        cfg.check_linearizable();
        cfg.end();
    });
}

/// Optional test to see whether servers are deleting shards for which they are no longer
/// responsible.
#[test]
fn challenge1_delete_5b() {
    shardkv_test(|sim| async move {
        // "1" means force snapshot after every log entry.
        let cfg = ShardKvConfig::new(&sim, 3, false, Some(1));
        cfg.begin("Test (5B): shard deletion (challenge 1)");
        let mut ck = cfg.make_client();
        cfg.join(0).await;
        // 30,000 bytes of total values.
        let n = 30;
        let (ka, va) = put_keys(&cfg, &mut ck, n, 1000).await;
        check_all(&cfg, &mut ck, &ka[..3], &va[..3]).await;
        for _ in 0..2 {
            cfg.join(1).await;
            cfg.leave(0).await;
            cfg.join(2).await;
            sleep(Duration::from_secs(3)).await;
            check_all(&cfg, &mut ck, &ka[..3], &va[..3]).await;
            cfg.leave(1).await;
            cfg.join(0).await;
            cfg.leave(2).await;
            sleep(Duration::from_secs(3)).await;
            check_all(&cfg, &mut ck, &ka[..3], &va[..3]).await;
        }
        cfg.join(1).await;
        cfg.join(2).await;
        for _ in 0..3 {
            sleep(Duration::from_secs(1)).await;
            check_all(&cfg, &mut ck, &ka[..3], &va[..3]).await;
        }
        let total = cfg.total_persisted_size();
        // 27 keys should be stored once. 3 keys should also be stored in client dup tables.
        // everything on 3 replicas. plus slop.
        let expected = 3 * (((n - 3) * 1000) + 2 * 3 * 1000 + 6000);
        assert!(
            total <= expected,
            "snapshot + persisted Raft state are too big: {total} > {expected}"
        );
        println!("  persisted state of all servers: {total} bytes (limit {expected})");
        check_all(&cfg, &mut ck, &ka, &va).await;
        cfg.check_linearizable();
        cfg.end();
    });
}

/// Optional test to see whether servers can handle shards that are not affected by a config
/// change while the config change is underway.
#[test]
fn challenge2_unaffected_5b() {
    shardkv_test(|sim| async move {
        let cfg = ShardKvConfig::new(&sim, 3, true, Some(100));
        cfg.begin("Test (5B): unaffected shard access (challenge 2)");
        let mut ck = cfg.make_client();
        // JOIN 100
        cfg.join(0).await;
        // Do a bunch of puts to keys in all shards
        let n = 10;
        let ka: Vec<String> = (0..n).map(|i| i.to_string()).collect();
        let mut va = vec!["100".to_owned(); n];
        for i in 0..n {
            cfg.put(&mut ck, &ka[i], &va[i], true).await;
        }
        // JOIN 101
        cfg.join(1).await;
        // QUERY to find shards now owned by 101
        let c = cfg.query_latest().await;
        let owned: Vec<bool> = c.shards.iter().map(|&g| g == cfg.gid(1)).collect();
        // Wait for migration to new config to complete, and for clients to start using this
        // updated config. Gets to any key k such that owned[shard(k)] == true should now be
        // served by group 101.
        sleep(Duration::from_secs(1)).await;
        for i in 0..n {
            if owned[key2shard(&ka[i])] {
                va[i] = "101".to_owned();
                cfg.put(&mut ck, &ka[i], &va[i], true).await;
            }
        }
        // KILL 100
        cfg.shutdown_group(0);
        // LEAVE 100: 101 doesn't get a chance to migrate things previously owned by 100
        cfg.leave(0).await;
        // Wait to make sure clients see new config
        sleep(Duration::from_secs(1)).await;
        // And finally: check that gets/puts for 101-owned keys still complete
        for i in 0..n {
            if owned[key2shard(&ka[i])] {
                cfg.check(&mut ck, &ka[i], &va[i]).await;
                let v = format!("{}-1", va[i]);
                cfg.put(&mut ck, &ka[i], &v, true).await;
                cfg.check(&mut ck, &ka[i], &v).await;
            }
        }
        cfg.check_linearizable();
        cfg.end();
    });
}

/// Optional test to see whether servers can handle operations on shards that have been received
/// as a part of a config migration when the entire migration has not yet completed.
#[test]
fn challenge2_partial_5b() {
    shardkv_test(|sim| async move {
        let cfg = ShardKvConfig::new(&sim, 3, true, Some(100));
        cfg.begin("Test (5B): partial migration shard access (challenge 2)");
        let mut ck = cfg.make_client();
        // JOIN 100 + 101 + 102
        cfg.joinm(&[0, 1, 2]).await;
        // Give the implementation some time to reconfigure
        sleep(Duration::from_secs(1)).await;
        // Do a bunch of puts to keys in all shards
        let n = 10;
        let ka: Vec<String> = (0..n).map(|i| i.to_string()).collect();
        let va = vec!["100".to_owned(); n];
        for i in 0..n {
            cfg.put(&mut ck, &ka[i], &va[i], true).await;
        }
        // QUERY to find shards owned by 102
        let c = cfg.query_latest().await;
        let owned: Vec<bool> = c.shards.iter().map(|&g| g == cfg.gid(2)).collect();
        // KILL 100
        cfg.shutdown_group(0);
        // LEAVE 100 + 102: 101 can get old shards from 102, but not from 100. 101 should start
        // serving shards that used to belong to 102 as soon as possible
        cfg.leavem(&[0, 2]).await;
        // Give the implementation some time to start reconfiguration, and to migrate 102 -> 101
        sleep(Duration::from_secs(1)).await;
        // And finally: check that gets/puts for 101-owned keys now complete
        for i in 0..n {
            if owned[key2shard(&ka[i])] {
                cfg.check(&mut ck, &ka[i], &va[i]).await;
                let v = format!("{}-2", va[i]);
                cfg.put(&mut ck, &ka[i], &v, true).await;
                cfg.check(&mut ck, &ka[i], &v).await;
            }
        }
        cfg.check_linearizable();
        cfg.end();
    });
}

#[path = "parts/shardkv_membership.rs"]
mod membership;
