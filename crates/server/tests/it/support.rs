//! Starting the server for a test.

use chrono::TimeZone;
use std::sync::Arc;
use zhudai_domain::clock::FixedClock;
use zhudai_server::{AppState, ServerSettings};
use zhudai_store::testing::TestDb;

/// A server running on a random local port.
pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub state: AppState,
    pub clock: Arc<FixedClock>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

/// 2026-11-29 10:00 in Shanghai.
pub fn test_clock() -> Arc<FixedClock> {
    Arc::new(FixedClock::at(chrono::Utc.with_ymd_and_hms(2026, 11, 29, 2, 0, 0).single().unwrap()))
}

impl TestApp {
    pub async fn start(db: &TestDb) -> TestApp {
        Self::start_with(db, ServerSettings { data_dir: db.data_dir(), ..Default::default() }).await
    }

    pub async fn start_with(db: &TestDb, settings: ServerSettings) -> TestApp {
        let clock = test_clock();
        let state = AppState::new(db.store.clone(), clock.clone(), settings);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(zhudai_server::serve(listener, state.clone(), async move {
            let _ = rx.await;
        }));
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .cookie_store(true)
            .build()
            .unwrap();
        TestApp { base: format!("http://{addr}"), client, state, clock, stop: Some(tx), task: Some(task) }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.unwrap()
    }

    /// Stops the server gracefully and waits for it.
    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
    }
}
