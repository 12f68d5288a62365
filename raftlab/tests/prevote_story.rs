//! The Java seed's story on a real cluster: with two of five nodes alive, their terms climbed
//! from 5 to 15 in a minute, and the returning nodes were rejected until they caught up. With
//! pre-vote (on by default) the survivors' terms stay put; restart the three and a leader is
//! elected at once. And check-quorum: a leader left in a minority steps down within two
//! election timeouts.
//!
//! The tests here measure timing on real processes, so they run one at a time.

mod real_cluster;

use std::time::Duration;

use real_cluster::{ELECTION_TIMEOUT_MAX, TestCluster};
use tokio::time::{Instant, sleep};

/// One real-time test at a time (each runs five node processes).
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// How long the survivors are left alone: many election timeouts.
const ALONE: Duration = Duration::from_secs(4);

/// Kills three of five nodes (the leader among them), leaves the two survivors alone for
/// `ALONE`, and returns their terms right after the kill and at the end. Then restarts the
/// three and checks that a leader is elected and the data is there.
async fn two_of_five(c: &mut TestCluster) -> Vec<(usize, u64, u64)> {
    let (l, _, mut ck) = c.first_write("story", "before").await;
    assert!(c.wait_caught_up(Duration::from_secs(10)).await);
    let doomed = [l, (l + 1) % 5, (l + 2) % 5];
    let survivors = [(l + 3) % 5, (l + 4) % 5];
    for &d in &doomed {
        c.kill(d);
    }
    let mut at_kill = Vec::new();
    for &s in &survivors {
        let st = c.status(s).await.expect("a survivor answers");
        at_kill.push(st.term);
    }
    sleep(ALONE).await;
    let mut out = Vec::new();
    for (k, &s) in survivors.iter().enumerate() {
        let st = c.status(s).await.expect("a survivor answers");
        assert_ne!(st.role, "leader", "no leader with 2 of 5: {st:?}");
        eprintln!(
            "survivor {s}: term {} at the kill, {} after {ALONE:?} alone",
            at_kill[k], st.term
        );
        out.push((s, at_kill[k], st.term));
    }

    for &d in &doomed {
        c.start(d);
    }
    let start = Instant::now();
    let (l2, t2) = c
        .wait_leader(0, Duration::from_secs(10))
        .await
        .expect("a leader once the three are back");
    eprintln!(
        "leader {l2} of term {t2} elected {:.2?} after the restart",
        start.elapsed()
    );
    ck.append("story", "+after", Duration::from_secs(10))
        .await
        .expect("a write after the restart");
    assert_eq!(
        ck.get("story", Duration::from_secs(10))
            .await
            .expect("a read after the restart"),
        "before+after"
    );
    assert!(c.wait_caught_up(Duration::from_secs(10)).await);
    out
}

/// Pre-vote on (the default): the two survivors ask for pre-votes, get no majority, and their
/// terms do not move.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_pre_vote_two_survivors_keep_their_terms_and_a_leader_follows_the_restart() {
    let _serial = SERIAL.lock().await;
    let mut c = TestCluster::new("story-prevote", 5, 4 << 20);
    let terms = two_of_five(&mut c).await;
    for &(s, before, after) in &terms {
        assert_eq!(
            after, before,
            "node {s}'s term climbed from {before} to {after} in {ALONE:?} with pre-vote on"
        );
        let log = c.log_text(s);
        assert!(
            log.contains(&format!("node {s} asks for pre-votes")),
            "node {s} tried pre-votes: {log}"
        );
        assert!(
            log.contains(&format!("node {s}: lost contact with node")),
            "the observer narrates lost peers: {log}"
        );
    }
}

/// The contrast, the Java seed's behaviour: with `--no-pre-vote` the survivors' terms climb
/// at every election timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_pre_vote_two_survivors_terms_climb() {
    let _serial = SERIAL.lock().await;
    let mut c = TestCluster::with_flags("story-noprevote", 5, 4 << 20, &["--no-pre-vote"]);
    let terms = two_of_five(&mut c).await;
    for &(s, before, after) in &terms {
        // An election timeout is 0.3-0.6 s: at least a few elections in ALONE.
        assert!(
            after >= before + 3,
            "node {s}'s term went from {before} to {after} in {ALONE:?} without pre-vote"
        );
    }
}

/// Check-quorum: kill three of five followers; the leader, now hearing from no majority,
/// steps down within two election timeouts and says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_in_a_minority_steps_down_within_two_election_timeouts() {
    let _serial = SERIAL.lock().await;
    let mut c = TestCluster::new("checkquorum", 5, 4 << 20);
    let (l, t) = c
        .wait_leader(0, Duration::from_secs(10))
        .await
        .expect("a leader");
    let mut ck = c.clerk();
    ck.put("k", "v", Duration::from_secs(10))
        .await
        .expect("write");
    for d in [(l + 1) % 5, (l + 2) % 5, (l + 3) % 5] {
        c.kill(d);
    }
    let killed = Instant::now();
    let stepped_down = loop {
        let s = c.status(l).await.expect("the leader answers");
        if s.role != "leader" {
            break killed.elapsed();
        }
        assert!(
            killed.elapsed() < 4 * ELECTION_TIMEOUT_MAX,
            "node {l} still leads {:?} after losing its majority",
            killed.elapsed()
        );
        sleep(Duration::from_millis(10)).await;
    };
    eprintln!("node {l} stepped down {stepped_down:.2?} after losing its majority");
    assert!(
        stepped_down <= 2 * ELECTION_TIMEOUT_MAX,
        "node {l} stepped down only after {stepped_down:?}"
    );
    let s = c.status(l).await.expect("the old leader answers");
    assert_eq!(s.term, t, "stepping down does not change the term: {s:?}");
    let log = c.log_text(l);
    assert!(
        log.contains(&format!("node {l} steps down: no contact with a majority")),
        "the log says why: {log}"
    );
}
