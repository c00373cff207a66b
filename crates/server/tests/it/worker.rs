//! The background worker runs registered jobs, retries failures and parks dead ones.

use crate::support::TestApp;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use zhudai_server::jobs::{run_worker, JobRegistry, WorkerSettings};
use zhudai_store::jobs::NewJob;
use zhudai_store::testing::TestDb;

zhudai_store::on_both!(worker_runs_retries_and_buries);

async fn wait_until<F: Fn() -> bool>(what: &str, f: F) {
    for _ in 0..200 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("timed out waiting for {what}");
}

async fn worker_runs_retries_and_buries(db: &TestDb) {
    let app = TestApp::start(db).await;
    let ran = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let mut registry = JobRegistry::default();
    let r = ran.clone();
    registry.register("test.ok", move |_state, job| {
        let r = r.clone();
        async move {
            assert_eq!(job.payload["x"], 7);
            r.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
    });
    let f = failed.clone();
    registry.register("test.fail", move |_state, _job| {
        let f = f.clone();
        async move {
            f.fetch_add(1, Ordering::SeqCst);
            Err("always fails".to_owned())
        }
    });
    let now = app.state.now_ms();
    let store = &db.store;
    store
        .enqueue(
            &NewJob::new("test.ok", serde_json::json!({"x": 7}), now),
            now,
        )
        .await
        .unwrap();
    let mut failing = NewJob::new("test.fail", serde_json::json!({}), now);
    failing.max_attempts = 2;
    store.enqueue(&failing, now).await.unwrap();
    let mut unknown = NewJob::new("test.unknown", serde_json::json!({}), now);
    unknown.max_attempts = 1;
    store.enqueue(&unknown, now).await.unwrap();

    let (stop, rx) = tokio::sync::watch::channel(false);
    let settings = WorkerSettings {
        idle_poll: Duration::from_millis(20),
        ..Default::default()
    };
    let worker = tokio::spawn(run_worker(app.state.clone(), registry, settings, rx));
    wait_until("the ok job", || ran.load(Ordering::SeqCst) == 1).await;
    wait_until("the first failure", || failed.load(Ordering::SeqCst) == 1).await;
    // The retry waits for its backoff on the injected clock; move time past it.
    app.clock
        .advance_millis(zhudai_store::jobs::backoff_ms(1) + 1);
    wait_until("the retry", || failed.load(Ordering::SeqCst) == 2).await;
    let mut tries = 0;
    let counts = loop {
        tries += 1;
        assert!(tries < 400, "jobs never reached their final states");
        let counts = store.job_counts().await.unwrap();
        let dead: i64 = counts
            .iter()
            .filter(|c| c.state == "dead")
            .map(|c| c.count)
            .sum();
        if dead == 2 {
            break counts;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    assert_eq!(
        counts
            .iter()
            .filter(|c| c.state == "done")
            .map(|c| c.count)
            .sum::<i64>(),
        1
    );
    let _ = stop.send(true);
    worker.await.unwrap();
    assert_eq!(ran.load(Ordering::SeqCst), 1, "a done job ran again");
    assert_eq!(failed.load(Ordering::SeqCst), 2, "a dead job ran again");
    app.stop().await;
}
