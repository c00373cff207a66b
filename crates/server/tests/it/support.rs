//! Starting the server for a test.

use chrono::TimeZone;
use std::sync::Arc;
use zhudai_domain::clock::Clock;
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

pub const PASSWORD: &str = "Correct-Horse-42";

/// Argon2 parameters cheap enough for hundreds of test logins (production uses the
/// OWASP baseline).
pub fn cheap_argon() -> zhudai_crypto::password::Argon2Params {
    zhudai_crypto::password::Argon2Params {
        m_cost_kib: 1024,
        t_cost: 1,
        p_cost: 1,
    }
}

fn rand_suffix() -> i64 {
    static N: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);
    N.fetch_add(1, std::sync::atomic::Ordering::SeqCst) * 100_000
}

/// 2026-11-29 10:00 in Shanghai.
pub fn test_clock() -> Arc<FixedClock> {
    Arc::new(FixedClock::at(
        chrono::Utc
            .with_ymd_and_hms(2026, 11, 29, 2, 0, 0)
            .single()
            .unwrap(),
    ))
}

impl TestApp {
    pub async fn start(db: &TestDb) -> TestApp {
        Self::start_with(
            db,
            ServerSettings {
                data_dir: db.data_dir(),
                ..Default::default()
            },
        )
        .await
    }

    pub async fn start_with(db: &TestDb, settings: ServerSettings) -> TestApp {
        let mut settings = settings;
        settings.auth.enforce_2fa = false;
        Self::start_enforcing(db, settings).await
    }

    /// Starts with the settings exactly as given (two-factor enforcement included).
    pub async fn start_enforcing(db: &TestDb, settings: ServerSettings) -> TestApp {
        let clock = test_clock();
        let vault = zhudai_server::vault::Vault::open(
            &db.store,
            &db.data_dir(),
            None,
            zhudai_crypto::envelope::Algorithm::Aes256Gcm,
            clock.clone(),
        )
        .await
        .unwrap();
        zhudai_server::auth::seed::ensure_roles(&db.store, clock.now().timestamp_millis())
            .await
            .unwrap();
        let mut settings = settings;
        // The matrix test signs in hundreds of times from one address.
        settings.auth.attempts_per_minute = 100_000;
        let state = AppState::new(db.store.clone(), clock.clone(), settings, vault);
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
        TestApp {
            base: format!("http://{addr}"),
            client,
            state,
            clock,
            stop: Some(tx),
            task: Some(task),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.unwrap()
    }

    /// Creates a user holding `role` (password [`PASSWORD`]) and returns its username.
    pub async fn user_with_role(&self, role: &str) -> String {
        self.user_in_unit(role, None).await
    }

    /// Creates a user holding `role` placed in org unit `unit`; returns its username.
    pub async fn user_in_unit(&self, role: &str, unit: Option<i64>) -> String {
        let username = format!("u_{role}_{}", self.state.now_ms() % 100_000 + rand_suffix());
        zhudai_server::auth::users::create_user(
            self.state.store(),
            self.state.vault(),
            &zhudai_server::auth::users::UserSpec {
                username: &username,
                display_name: &username,
                password: PASSWORD,
                roles: &[role.to_owned()],
                org_unit_id: unit,
                must_change_password: false,
                phone: None,
                id_number: None,
            },
            &cheap_argon(),
            self.state.now_ms(),
        )
        .await
        .unwrap();
        username
    }

    /// Creates an org unit under `parent`; returns its id.
    pub async fn org_unit(&self, parent: Option<i64>, kind: &str, code: &str) -> i64 {
        self.state
            .store()
            .org_unit_create(
                &zhudai_store::meta::NewOrgUnit {
                    parent_id: parent,
                    kind,
                    code,
                    name_zh: code,
                    name_en: code,
                },
                self.state.now_ms(),
            )
            .await
            .unwrap()
    }

    /// A bearer token for a fresh user of `role` in `unit`.
    pub async fn token_in_unit(&self, role: &str, unit: Option<i64>) -> String {
        let u = self.user_in_unit(role, unit).await;
        self.login(&u).await.0
    }

    /// Signs in through the API; returns the bearer token and the CSRF token.
    pub async fn login(&self, username: &str) -> (String, String) {
        let r = reqwest::Client::new()
            .post(self.url("/api/v1/auth/login"))
            .json(&serde_json::json!({"username": username, "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "login of {username}");
        let body: serde_json::Value = r.json().await.unwrap();
        (
            body["token"].as_str().unwrap().to_owned(),
            body["csrf_token"].as_str().unwrap().to_owned(),
        )
    }

    /// Signs `self.client` in (cookie session) as a fresh user of `role`.
    pub async fn sign_in(&self, role: &str) {
        let username = self.user_with_role(role).await;
        let r = self
            .client
            .post(self.url("/api/v1/auth/login"))
            .json(&serde_json::json!({"username": username, "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
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
