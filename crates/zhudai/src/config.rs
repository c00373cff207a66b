//! Configuration: defaults → optional TOML file → `ZHUDAI_*` environment → CLI flags,
//! each layer overriding the one before. Unknown keys are errors wherever they appear, so
//! a typo never silently falls back to a default. Secrets are `SecretString`: redacted in
//! `Debug` and never logged.

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use zhudai_store::SqliteSync;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// Every setting, with its default.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `sqlite://PATH` or `postgres://USER[:PASSWORD]@HOST:PORT/DB`. Unset: SQLite at
    /// `DATA_DIR/zhudai.db`.
    #[serde(default)]
    pub database_url: Option<SecretString>,
    /// Where zhudai keeps its files (SQLite database, keys, documents, backups).
    #[serde(default = "defaults::data_dir")]
    pub data_dir: PathBuf,
    /// Address the HTTP server listens on.
    #[serde(default = "defaults::listen")]
    pub listen: SocketAddr,
    #[serde(default)]
    pub log_format: LogFormat,
    /// A tracing filter such as `info` or `zhudai=debug,info`. `RUST_LOG` wins when set.
    #[serde(default = "defaults::log_level")]
    pub log_level: String,
    /// Largest accepted request body.
    #[serde(default = "defaults::body_limit_bytes")]
    pub body_limit_bytes: usize,
    /// Requests running longer are stopped with 408.
    #[serde(default = "defaults::request_timeout_secs")]
    pub request_timeout_secs: u64,
    /// `group` (default: an acknowledged write survives power loss; concurrent requests
    /// share one fsync), `full` (every commit fsynced) or `normal` (survives a process
    /// crash, not a power cut).
    #[serde(default)]
    pub sqlite_synchronous: SqliteSync,
    /// Database connection pool size.
    #[serde(default = "defaults::max_connections")]
    pub max_connections: u32,
    /// Run the background job worker in this process.
    #[serde(default = "defaults::yes")]
    pub worker: bool,
    /// The master key (base64 of 32 bytes) instead of the key files under `DATA_DIR/keys`.
    #[serde(default)]
    pub master_key: Option<SecretString>,
    /// Field cipher for new data: `aes-256-gcm` (default) or `sm4-gcm` (国密).
    #[serde(default = "defaults::field_cipher")]
    pub field_cipher: String,
    /// Require two-factor enrolment for roles marked so (administrators, approvers…);
    /// always off in demo mode, whose accounts have no authenticator.
    #[serde(default = "defaults::yes")]
    pub enforce_2fa: bool,
    /// Mark cookies `Secure`; turn on when zhudai is served over HTTPS.
    #[serde(default)]
    pub cookie_secure: bool,
    /// Days audit records must be kept (default 3650 = 10 years; at least 183, the
    /// 等保 2.0 six-month floor). zhudai never deletes audit records.
    #[serde(default = "defaults::audit_retention_days")]
    pub audit_retention_days: u32,
    /// Largest customer document accepted (bytes, default 20 MiB). The document upload
    /// routes accept bodies this large whatever `body_limit_bytes` says.
    #[serde(default = "defaults::document_max_bytes")]
    pub document_max_bytes: usize,
    /// Calendar days to answer a data-subject request (default 15; PIPL practice is 15
    /// working days, counted here as calendar days until a holiday calendar exists).
    #[serde(default = "defaults::privacy_request_days")]
    pub privacy_request_days: u32,
    /// Products and pricing: the all-in annual cost cap (APR by IRR), default 0.24; more
    /// than 0 and at most 0.36 (no setting may exceed 36 %).
    #[serde(default = "defaults::apr_cap", deserialize_with = "decimal_setting")]
    pub apr_cap: rust_decimal::Decimal,
    /// Customer exports of more rows than this need approval by another person holding
    /// `customer.export.approve` (four eyes); smaller ones download directly. Every
    /// export is audited.
    #[serde(default = "defaults::export_approval_rows")]
    pub export_approval_rows: u64,
    /// Contracts (issue #6): the CJK font for contract PDFs (.ttf, .otf or .ttc; in a
    /// collection the Simplified Chinese face is used). Unset: the first CJK font found
    /// in the usual system places (Debian's fonts-noto-cjk, WenQuanYi…).
    #[serde(default)]
    pub contract_font_path: Option<PathBuf>,
    // Risk warnings (issue #7 item 3).
    /// Population stability: a PSI of the score or a feature above this (against the
    /// model's development sample) opens a model-drift warning. Default 0.25; more than 0
    /// and at most 10.
    #[serde(default = "defaults::psi_threshold")]
    pub psi_threshold: f64,
    // --- Daily close and collections (issue #8 items 3–7) ---
    /// Five-tier classification (rules-cn.md): days past due tolerated before 关注
    /// (default 0), and the thresholds of 次级 (90), 可疑 (270) and 损失 (360).
    #[serde(default)]
    pub classification_tolerance_days: u32,
    #[serde(default = "defaults::substandard_days")]
    pub classification_substandard_days: u32,
    #[serde(default = "defaults::doubtful_days")]
    pub classification_doubtful_days: u32,
    #[serde(default = "defaults::loss_days")]
    pub classification_loss_days: u32,
    /// A restructured loan is observed (at least 关注) for at least this many months
    /// (default 12) and this many repayment periods (default 2), restarted by a missed
    /// payment.
    #[serde(default = "defaults::observation_months")]
    pub restructure_observation_months: u32,
    #[serde(default = "defaults::observation_periods")]
    pub restructure_observation_periods: u32,
    /// Loan ids per chunk of the daily close (one transaction each).
    #[serde(default = "defaults::cob_chunk_size")]
    pub cob_chunk_size: i64,
    /// Local time (Asia/Shanghai) the nightly close of the previous day starts, `HH:MM`.
    #[serde(default = "defaults::cob_daily_at")]
    pub cob_daily_at: String,
    /// Hours in which debtors may be contacted, local time (default `08:00-21:00`).
    #[serde(default = "defaults::collection_contact_hours")]
    pub collection_contact_hours: String,
    /// Contacts a day per debtor over all their cases (default 3).
    #[serde(default = "defaults::collection_daily_contact_limit")]
    pub collection_daily_contact_limit: u32,
    // --- end daily close ---
    // --- Worklists and exception alerts (issue #6 items 3–4) ---
    /// A submitted workflow instance with no step for this many hours is reported as
    /// stuck to the manager of its node's owner (default 48; 1–8760).
    #[serde(default = "defaults::workflow_stuck_after_hours")]
    pub workflow_stuck_after_hours: u32,
    /// The address people reach zhudai at (e.g. `https://zhudai.example.com`), used for
    /// links in WeCom / DingTalk / Feishu messages. Unset: messages carry paths only.
    #[serde(default)]
    pub public_url: Option<String>,
}

impl Config {
    /// The daily close's settings (checked by [`Config::load`]).
    pub fn cob_settings(&self) -> Result<zhudai_server::cob::CobSettings, String> {
        let policy = zhudai_domain::classify::ClassificationPolicy {
            technical_delay_tolerance_days: self.classification_tolerance_days,
            substandard_after_days: self.classification_substandard_days,
            doubtful_after_days: self.classification_doubtful_days,
            loss_after_days: self.classification_loss_days,
        }
        .validate()
        .map_err(|e| format!("configuration error: classification thresholds: {e}"))?;
        let daily_at = chrono::NaiveTime::parse_from_str(self.cob_daily_at.trim(), "%H:%M")
            .map_err(|_| {
                format!(
                    "configuration error: `cob_daily_at` is `{}`; use HH:MM such as 00:30",
                    self.cob_daily_at
                )
            })?;
        if !(100..=1_000_000).contains(&self.cob_chunk_size) {
            return Err(format!(
                "configuration error: `cob_chunk_size` is {}; use 100–1000000",
                self.cob_chunk_size
            ));
        }
        Ok(zhudai_server::cob::CobSettings {
            policy,
            observation: zhudai_domain::classify::ObservationPolicy {
                min_months: self.restructure_observation_months,
                min_periods: self.restructure_observation_periods,
            },
            chunk_size: self.cob_chunk_size,
            daily_at,
            ..Default::default()
        })
    }

    /// Collections' compliance guards (checked by [`Config::load`]).
    pub fn contact_policy(&self) -> Result<zhudai_domain::collection::ContactPolicy, String> {
        let hours = zhudai_domain::collection::ContactHours::parse(&self.collection_contact_hours)
            .map_err(|e| format!("configuration error: `collection_contact_hours`: {e}"))?;
        if !(1..=20).contains(&self.collection_daily_contact_limit) {
            return Err(format!(
                "configuration error: `collection_daily_contact_limit` is {}; use 1–20",
                self.collection_daily_contact_limit
            ));
        }
        Ok(zhudai_domain::collection::ContactPolicy {
            hours,
            daily_limit: self.collection_daily_contact_limit,
        })
    }
}

/// A decimal setting written as a number (`0.24`, from TOML or the environment) or a
/// string (`"0.24"`). A number is read through its shortest decimal spelling, so `0.24`
/// is exactly 0.24.
fn decimal_setting<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<rust_decimal::Decimal, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Int(i64),
        Float(f64),
        Text(String),
    }
    let text = match Raw::deserialize(d)? {
        Raw::Int(i) => i.to_string(),
        Raw::Float(f) => f.to_string(),
        Raw::Text(s) => s,
    };
    text.trim().parse::<rust_decimal::Decimal>().map_err(|_| {
        serde::de::Error::custom(format!("`{text}` is not a decimal number such as 0.24"))
    })
}

mod defaults {
    use std::net::{Ipv4Addr, SocketAddr};
    use std::path::PathBuf;
    pub fn data_dir() -> PathBuf {
        PathBuf::from("./zhudai-data")
    }
    pub fn listen() -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, 8080))
    }
    pub fn log_level() -> String {
        "info".into()
    }
    pub fn body_limit_bytes() -> usize {
        2 * 1024 * 1024
    }
    pub fn request_timeout_secs() -> u64 {
        30
    }
    pub fn max_connections() -> u32 {
        16
    }
    pub fn yes() -> bool {
        true
    }
    pub fn audit_retention_days() -> u32 {
        3650
    }
    pub fn document_max_bytes() -> usize {
        20 * 1024 * 1024
    }
    pub fn privacy_request_days() -> u32 {
        15
    }
    pub fn apr_cap() -> rust_decimal::Decimal {
        zhudai_domain::product::DEFAULT_APR_CAP
    }
    pub fn export_approval_rows() -> u64 {
        1000
    }
    pub fn psi_threshold() -> f64 {
        zhudai_server::warnings::psi::DEFAULT_THRESHOLD
    }
    pub fn workflow_stuck_after_hours() -> u32 {
        48
    }
    pub fn field_cipher() -> String {
        "aes-256-gcm".into()
    }
    // Daily close and collections (issue #8 items 3–7).
    pub fn substandard_days() -> u32 {
        90
    }
    pub fn doubtful_days() -> u32 {
        270
    }
    pub fn loss_days() -> u32 {
        360
    }
    pub fn observation_months() -> u32 {
        12
    }
    pub fn observation_periods() -> u32 {
        2
    }
    pub fn cob_chunk_size() -> i64 {
        20_000
    }
    pub fn cob_daily_at() -> String {
        "00:30".into()
    }
    pub fn collection_contact_hours() -> String {
        "08:00-21:00".into()
    }
    pub fn collection_daily_contact_limit() -> u32 {
        3
    }
}

/// Values given as command-line flags (the last layer).
#[derive(Debug, Default, Serialize)]
pub struct CliOverrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
}

/// Environment variables that belong to tooling, not to the configuration.
const NOT_CONFIG: &[&str] = &["config", "python"];

impl Config {
    /// Loads the layers. `file` is the `--config` / `ZHUDAI_CONFIG` path, which must exist
    /// when given.
    pub fn load(file: Option<&Path>, cli: &CliOverrides) -> Result<Config, String> {
        let mut figment = Figment::new();
        if let Some(path) = file {
            if !path.is_file() {
                return Err(format!(
                    "configuration file {} does not exist",
                    path.display()
                ));
            }
            figment = figment.merge(Toml::file_exact(path));
        }
        figment = figment
            .merge(
                Env::prefixed("ZHUDAI_")
                    .ignore(NOT_CONFIG)
                    // Test harness variables (ZHUDAI_TEST_*) are not settings.
                    .filter(|k| !k.as_str().to_ascii_lowercase().starts_with("test_")),
            )
            .merge(Serialized::defaults(cli));
        let config = figment.extract::<Config>().map_err(|e| one_line(&e))?;
        if !matches!(config.field_cipher.as_str(), "aes-256-gcm" | "sm4-gcm") {
            return Err(format!(
                "configuration error: `field_cipher` is `{}`; use `aes-256-gcm` or `sm4-gcm`",
                config.field_cipher
            ));
        }
        if config.audit_retention_days < 183 {
            return Err(format!(
                "configuration error: `audit_retention_days` is {}; it must be at least 183 (six months, 等保 2.0)",
                config.audit_retention_days
            ));
        }
        if config.document_max_bytes < 1024 {
            return Err(format!(
                "configuration error: `document_max_bytes` is {}; it must be at least 1024",
                config.document_max_bytes
            ));
        }
        if !(1..=90).contains(&config.privacy_request_days) {
            return Err(format!(
                "configuration error: `privacy_request_days` is {}; use 1–90 (PIPL: answer within 15 working days)",
                config.privacy_request_days
            ));
        }
        // Worklists and exception alerts (issue #6 items 3–4).
        if !(1..=8760).contains(&config.workflow_stuck_after_hours) {
            return Err(format!(
                "configuration error: `workflow_stuck_after_hours` is {}; use 1–8760",
                config.workflow_stuck_after_hours
            ));
        }
        if let Some(url) = &config.public_url {
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                return Err(format!(
                    "configuration error: `public_url` is `{url}`; give an http(s) address such as https://zhudai.example.com"
                ));
            }
        }
        // Products and pricing: the cap may be lowered, never raised above 36 %.
        if let Err(e) = zhudai_domain::product::validate_cap(config.apr_cap) {
            return Err(format!("configuration error: `apr_cap`: {e}"));
        }
        // Contracts (issue #6): a configured font must exist.
        if let Some(p) = &config.contract_font_path {
            if !p.is_file() {
                return Err(format!(
                    "configuration error: `contract_font_path` is {}, which is not a file; point it at a .ttf/.otf/.ttc font with Chinese glyphs, or unset it to use fonts-noto-cjk",
                    p.display()
                ));
            }
        }
        // Risk warnings (issue #7 item 3).
        if !(config.psi_threshold.is_finite()
            && config.psi_threshold > 0.0
            && config.psi_threshold <= 10.0)
        {
            return Err(format!(
                "configuration error: `psi_threshold` must be more than 0 and at most 10 (got {})",
                config.psi_threshold
            ));
        }
        // Daily close and collections (issue #8 items 3–7).
        config.cob_settings()?;
        config.contact_policy()?;
        Ok(config)
    }

    /// The settings as TOML with secrets redacted, for `zhudai config`.
    pub fn to_redacted_toml(&self) -> String {
        let db = match &self.database_url {
            Some(url) => {
                zhudai_store::DatabaseLocation::parse(Some(url.expose_secret()), &self.data_dir)
                    .map(|l| l.redacted())
                    .unwrap_or_else(|_| "***".into())
            }
            None => format!("(unset: sqlite://{}/zhudai.db)", self.data_dir.display()),
        };
        format!(
            "database_url = {db:?}\ndata_dir = {:?}\nlisten = \"{}\"\nlog_format = \"{}\"\nlog_level = {:?}\nbody_limit_bytes = {}\nrequest_timeout_secs = {}\nsqlite_synchronous = \"{}\"\nmax_connections = {}\nworker = {}\napr_cap = \"{}\"\npsi_threshold = {}\n",
            self.data_dir.display().to_string(),
            self.listen,
            match self.log_format { LogFormat::Text => "text", LogFormat::Json => "json" },
            self.log_level,
            self.body_limit_bytes,
            self.request_timeout_secs,
            self.sqlite_synchronous.as_str(),
            self.max_connections,
            self.worker,
            self.apr_cap,
            self.psi_threshold,
        )
    }
}

/// figment errors can span lines and name several problems; the operator gets one line
/// per problem, joined, with where the value came from.
fn one_line(err: &figment::Error) -> String {
    let parts: Vec<String> = err
        .clone()
        .into_iter()
        .map(|e| {
            let origin = e
                .metadata
                .as_ref()
                .map(|m| match &m.source {
                    Some(src) => format!(" (from {} {src})", m.name),
                    None => format!(" (from {})", m.name),
                })
                .unwrap_or_default();
            let key = if e.path.is_empty() {
                String::new()
            } else {
                format!("`{}`: ", e.path.join("."))
            };
            format!("{key}{}{origin}", e.kind).replace('\n', " ")
        })
        .collect();
    format!("configuration error: {}", parts.join("; "))
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment's Jail API returns its own large error type
mod tests {
    use super::*;
    use figment::Jail;

    #[test]
    fn layers_override_in_order() {
        Jail::expect_with(|jail| {
            jail.create_file(
                "z.toml",
                "listen = \"127.0.0.1:9000\"\nlog_level = \"debug\"\nmax_connections = 4\n",
            )?;
            jail.set_env("ZHUDAI_LISTEN", "127.0.0.1:9001");
            // Harness variables are not settings, whatever their case.
            jail.set_env("ZHUDAI_TEST_PG_URL", "postgres://elsewhere/test");
            let cli = CliOverrides {
                data_dir: Some("/tmp/x".into()),
                ..Default::default()
            };
            let c = Config::load(Some(Path::new("z.toml")), &cli).map_err(figment::Error::from)?;
            assert_eq!(c.listen.port(), 9001, "env beats file");
            assert_eq!(c.log_level, "debug", "file beats default");
            assert_eq!(c.max_connections, 4);
            assert_eq!(c.data_dir, PathBuf::from("/tmp/x"), "flag beats all");
            let cli = CliOverrides {
                listen: Some("127.0.0.1:9002".into()),
                ..Default::default()
            };
            let c = Config::load(Some(Path::new("z.toml")), &cli).map_err(figment::Error::from)?;
            assert_eq!(c.listen.port(), 9002, "flag beats env");
            Ok(())
        });
    }

    #[test]
    fn unknown_keys_are_rejected_with_their_origin() {
        Jail::expect_with(|jail| {
            jail.create_file("z.toml", "lissen = \"127.0.0.1:9000\"\n")?;
            let err =
                Config::load(Some(Path::new("z.toml")), &CliOverrides::default()).unwrap_err();
            assert!(err.contains("lissen"), "{err}");
            assert!(!err.contains('\n'));
            jail.create_file("ok.toml", "")?;
            jail.set_env("ZHUDAI_DATABSE_URL", "x");
            let err =
                Config::load(Some(Path::new("ok.toml")), &CliOverrides::default()).unwrap_err();
            assert!(err.contains("databse_url"), "{err}");
            assert!(err.contains("ZHUDAI_"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn secrets_are_redacted() {
        Jail::expect_with(|jail| {
            jail.set_env("ZHUDAI_DATABASE_URL", "postgres://u:hunter2@db:5432/z");
            let c = Config::load(None, &CliOverrides::default()).map_err(figment::Error::from)?;
            assert!(!format!("{c:?}").contains("hunter2"));
            let shown = c.to_redacted_toml();
            assert!(!shown.contains("hunter2"), "{shown}");
            assert!(shown.contains("db:5432/z"), "{shown}");
            Ok(())
        });
    }

    // Risk warnings (issue #7 item 3).
    #[test]
    fn psi_threshold_defaults_and_is_bounded() {
        Jail::expect_with(|jail| {
            let c = Config::load(None, &CliOverrides::default()).map_err(figment::Error::from)?;
            assert_eq!(c.psi_threshold, 0.25);
            jail.set_env("ZHUDAI_PSI_THRESHOLD", "0.1");
            let c = Config::load(None, &CliOverrides::default()).map_err(figment::Error::from)?;
            assert_eq!(c.psi_threshold, 0.1);
            jail.set_env("ZHUDAI_PSI_THRESHOLD", "0");
            let err = Config::load(None, &CliOverrides::default()).unwrap_err();
            assert!(err.contains("psi_threshold"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn apr_cap_defaults_and_is_bounded() {
        Jail::expect_with(|jail| {
            let c = Config::load(None, &CliOverrides::default()).map_err(figment::Error::from)?;
            assert_eq!(c.apr_cap.to_string(), "0.24");
            jail.set_env("ZHUDAI_APR_CAP", "0.2");
            let c = Config::load(None, &CliOverrides::default()).map_err(figment::Error::from)?;
            assert_eq!(c.apr_cap.to_string(), "0.2");
            jail.create_file("z.toml", "apr_cap = 0.36\n")?;
            jail.set_env("ZHUDAI_APR_CAP", "0.37");
            let err = Config::load(None, &CliOverrides::default()).unwrap_err();
            assert!(err.contains("apr_cap") && err.contains("0.36"), "{err}");
            jail.clear_env();
            let c = Config::load(Some(Path::new("z.toml")), &CliOverrides::default())
                .map_err(figment::Error::from)?;
            assert_eq!(c.apr_cap.to_string(), "0.36");
            jail.set_env("ZHUDAI_APR_CAP", "lots");
            let err = Config::load(None, &CliOverrides::default()).unwrap_err();
            assert!(err.contains("apr_cap"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn bad_values_name_the_key() {
        Jail::expect_with(|jail| {
            jail.set_env("ZHUDAI_LISTEN", "not-an-address");
            let err = Config::load(None, &CliOverrides::default()).unwrap_err();
            assert!(err.contains("listen"), "{err}");
            Ok(())
        });
    }
}
