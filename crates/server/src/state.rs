//! Application state shared by every request and job.

use crate::auth::login::{AuthPolicy, Throttle};
use crate::blobs::{BlobStore, LocalBlobStore};
use crate::ui::i18n::I18n;
use crate::vault::Vault;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use zhudai_domain::clock::Clock;
use zhudai_store::Store;

/// Settings the server needs from the configuration.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    pub data_dir: PathBuf,
    pub body_limit_bytes: usize,
    pub request_timeout: Duration,
    /// Demo mode: demo data is seeded and demo credentials are shown. Never in production.
    pub demo: bool,
    /// Sign-in, session and lockout policy.
    pub auth: AuthPolicy,
    /// How long audit records must be kept. zhudai never deletes them; this is the
    /// policy shown to operators and auditors (default 10 years, AML record keeping).
    pub audit_retention_days: u32,
    /// Largest document upload (bytes); the upload routes accept bodies this large.
    pub document_max_bytes: usize,
    /// Calendar days to answer a data-subject request (PIPL practice: 15 working days).
    pub privacy_request_days: u32,
    /// Products and pricing (issue #5): the all-in annual cost cap (APR by IRR). A product
    /// version above it cannot be saved and no quote above it is given. Default 0.24;
    /// configuration refuses values above 0.36.
    pub apr_cap: rust_decimal::Decimal,
    /// Customer exports above this many rows need another person's approval (four eyes).
    pub export_approval_rows: u64,
    /// Contracts (issue #6): the CJK font of contract PDFs (.ttf/.otf/.ttc). `None`: the
    /// first one found among `contract_pdf::FONT_CANDIDATES` (Debian's fonts-noto-cjk…).
    pub contract_font_path: Option<PathBuf>,
    // --- Loans and the ledger (issue #8) ---
    /// How a repayment is allocated (default penalty → fee → interest → principal,
    /// oldest installment first).
    pub repayment_order: zhudai_domain::servicing::AllocationOrder,
    // --- end loans ---
    // Risk warnings (issue #7 item 3): population stability above this PSI opens a
    // model-drift warning (default 0.25).
    pub psi_threshold: f64,
    // --- Daily close and collections (issue #8 items 3–7) ---
    /// The daily close: classification thresholds, observation period, chunk size, the
    /// nightly time.
    pub cob: crate::cob::CobSettings,
    /// Collections' compliance guards: contact hours and contacts a day per debtor.
    pub collection: zhudai_domain::collection::ContactPolicy,
    // --- end daily close ---
    // --- Worklists and exception alerts (issue #6 items 3–4) ---
    /// A submitted instance with no step for this many hours is reported as stuck to the
    /// manager of whoever owns its node (default 48).
    pub workflow_stuck_after_hours: u32,
    /// The address people reach zhudai at (`https://zhudai.example.com`), for links in
    /// group-bot messages; without it the messages carry paths only.
    pub public_url: Option<String>,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./zhudai-data"),
            body_limit_bytes: 2 * 1024 * 1024,
            request_timeout: Duration::from_secs(30),
            demo: false,
            auth: AuthPolicy::default(),
            audit_retention_days: 3650,
            document_max_bytes: 20 * 1024 * 1024,
            privacy_request_days: 15,
            apr_cap: zhudai_domain::product::DEFAULT_APR_CAP,
            export_approval_rows: 1000,
            contract_font_path: None,
            // Loans and the ledger (issue #8).
            repayment_order: Default::default(),
            psi_threshold: zhudai_scorecard::DEFAULT_PSI_THRESHOLD,
            // Daily close and collections (issue #8 items 3–7).
            cob: Default::default(),
            collection: Default::default(),
            workflow_stuck_after_hours: 48,
            public_url: None,
        }
    }
}

#[derive(Debug)]
struct Inner {
    store: Store,
    clock: Arc<dyn Clock>,
    settings: ServerSettings,
    i18n: I18n,
    metrics: PrometheusHandle,
    started_at_ms: i64,
    vault: Vault,
    throttle: Throttle,
    blobs: Arc<dyn BlobStore>,
    access: crate::auth::AccessCache,
}

/// Cheap to clone; everything inside is shared.
#[derive(Debug, Clone)]
pub struct AppState(Arc<Inner>);

impl AppState {
    pub fn new(
        store: Store,
        clock: Arc<dyn Clock>,
        settings: ServerSettings,
        vault: Vault,
    ) -> Self {
        let started_at_ms = clock.now().timestamp_millis();
        let blobs: Arc<dyn BlobStore> = Arc::new(LocalBlobStore::in_data_dir(&settings.data_dir));
        AppState(Arc::new(Inner {
            blobs,
            store,
            clock,
            settings,
            i18n: I18n::load(),
            metrics: metrics_handle().clone(),
            started_at_ms,
            vault,
            throttle: Throttle::default(),
            access: Default::default(),
        }))
    }

    pub fn store(&self) -> &Store {
        &self.0.store
    }

    pub fn clock(&self) -> &dyn Clock {
        self.0.clock.as_ref()
    }

    /// The clock, shared (for work that outlives the request, e.g. an import job).
    pub fn clock_arc(&self) -> Arc<dyn Clock> {
        self.0.clock.clone()
    }

    pub fn now_ms(&self) -> i64 {
        self.0.clock.now().timestamp_millis()
    }

    pub fn settings(&self) -> &ServerSettings {
        &self.0.settings
    }

    pub fn i18n(&self) -> &I18n {
        &self.0.i18n
    }

    pub fn metrics(&self) -> &PrometheusHandle {
        &self.0.metrics
    }

    /// Field encryption and blind indexes.
    pub fn vault(&self) -> &Vault {
        &self.0.vault
    }

    /// Where document contents are kept (`DATA_DIR/blobs` by default).
    pub fn blobs(&self) -> &dyn BlobStore {
        self.0.blobs.as_ref()
    }

    pub fn throttle(&self) -> &Throttle {
        &self.0.throttle
    }

    /// Each signed-in user's roles, permissions and clear fields, under the access stamp.
    pub fn access_cache(&self) -> &crate::auth::AccessCache {
        &self.0.access
    }

    pub fn started_at_ms(&self) -> i64 {
        self.0.started_at_ms
    }
}

/// The process-wide Prometheus recorder (a process has one metrics registry, however
/// many routers a test builds).
pub fn metrics_handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new();
        let builder = builder
            .set_buckets(&[
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
            ])
            .unwrap_or_else(|_| PrometheusBuilder::new());
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        // Fails only if another recorder was installed first; then ours stays unused but
        // harmless, and /metrics shows what it has.
        let _ = metrics::set_global_recorder(recorder);
        handle
    })
}
