//! The audit trail for auditors: `/api/v1/audit/…` search, CSV export, chain verification
//! and the signed checkpoints. Reading or exporting the trail is itself audited.

use crate::audit_checkpoint::{self, KeyStatus, VerifyReport};
use crate::auth::AuditNote;
use crate::error::{ApiError, FieldError, Problem};
use crate::state::AppState;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{header, HeaderValue, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use zhudai_crypto::audit_chain::{verify_checkpoint, AuditRecord};
use zhudai_store::audit::AuditFilter;

/// Most records of one search page.
pub const MAX_PAGE: i64 = 500;
/// Records of a search page when `limit` is not given.
pub const DEFAULT_PAGE: i64 = 100;
/// Most rows of one CSV export.
pub const EXPORT_MAX_ROWS: i64 = 100_000;
const DAY_MS: i64 = 86_400_000;
/// Longest accepted filter value.
const MAX_TEXT: usize = 200;

/// Search criteria, all optional; every given one must hold.
#[derive(Debug, Clone, Default, Deserialize, Serialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// From this time on (inclusive): unix milliseconds, or a date `YYYY-MM-DD` (Beijing time).
    pub from: Option<String>,
    /// Before this time (exclusive) in unix milliseconds, or up to the end of this date `YYYY-MM-DD`.
    pub to: Option<String>,
    /// Exact user name.
    pub actor: Option<String>,
    /// The action starts with this, e.g. `auth.` or `GET /api/v1/audit`.
    pub action: Option<String>,
    /// Exact target.
    pub target: Option<String>,
    /// Exact outcome: `success`, `denied`, `rejected`, `failed`, `error`, `locked`.
    pub outcome: Option<String>,
    /// Only records with a smaller seq: the previous page's `next_before_seq`.
    pub before_seq: Option<String>,
    /// Records per page, 1..=500 (default 100); for the export, rows 1..=100000 (default 100000).
    pub limit: Option<String>,
}

/// A validated query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedQuery {
    pub filter: AuditFilter,
    pub before_seq: Option<i64>,
    pub limit: i64,
}

fn text(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// Shanghai midnight starting `date`, in unix ms.
fn day_start_ms(date: chrono::NaiveDate) -> i64 {
    date.and_hms_opt(0, 0, 0)
        .map(|t| t.and_utc().timestamp_millis())
        .unwrap_or(0)
        - i64::from(zhudai_domain::clock::BUSINESS_UTC_OFFSET_SECS) * 1000
}

/// A time bound: unix ms as given, or a date's start (`end_of_day`: the next day's start).
fn parse_time(field: &str, value: &str, end_of_day: bool) -> Result<i64, FieldError> {
    if value.bytes().all(|b| b.is_ascii_digit()) {
        return value.parse::<i64>().map_err(|_| {
            FieldError::new(
                field,
                "out_of_range",
                "the time in milliseconds is too large",
            )
        });
    }
    match chrono::NaiveDate::parse_from_str(value, "%Y-%m-%d") {
        Ok(d) => Ok(day_start_ms(d) + if end_of_day { DAY_MS } else { 0 }),
        Err(_) => Err(FieldError::new(
            field,
            "invalid_time",
            "give unix milliseconds (e.g. 1764374400000) or a date YYYY-MM-DD",
        )),
    }
}

fn parse_positive(field: &str, value: &str, max: i64) -> Result<i64, FieldError> {
    match value.parse::<i64>() {
        Ok(n) if (1..=max).contains(&n) => Ok(n),
        Ok(_) => Err(FieldError::new(
            field,
            "out_of_range",
            format!("must be between 1 and {max}"),
        )),
        Err(_) => Err(FieldError::new(
            field,
            "not_a_number",
            "must be a whole number",
        )),
    }
}

impl AuditQuery {
    /// Validates the query; `max_limit`/`default_limit` differ between a page and an export.
    /// Every bad field is reported.
    pub fn parse(&self, max_limit: i64, default_limit: i64) -> Result<ParsedQuery, ApiError> {
        let mut errors = Vec::new();
        let mut filter = AuditFilter::default();
        if let Some(v) = text(&self.from) {
            match parse_time("from", v, false) {
                Ok(ms) => filter.from_ms = Some(ms),
                Err(e) => errors.push(e),
            }
        }
        if let Some(v) = text(&self.to) {
            match parse_time("to", v, true) {
                Ok(ms) => filter.to_ms = Some(ms),
                Err(e) => errors.push(e),
            }
        }
        if let (Some(f), Some(t)) = (filter.from_ms, filter.to_ms) {
            if f >= t {
                errors.push(FieldError::new(
                    "to",
                    "before_from",
                    "`to` must be after `from`",
                ));
            }
        }
        for (name, value, slot) in [
            ("actor", &self.actor, &mut filter.actor),
            ("action", &self.action, &mut filter.action_prefix),
            ("target", &self.target, &mut filter.target),
            ("outcome", &self.outcome, &mut filter.outcome),
        ] {
            if let Some(v) = text(value) {
                if v.chars().count() > MAX_TEXT {
                    errors.push(FieldError::new(
                        name,
                        "too_long",
                        format!("at most {MAX_TEXT} characters"),
                    ));
                } else {
                    *slot = Some(v.to_owned());
                }
            }
        }
        let before_seq = match text(&self.before_seq) {
            Some(v) => match parse_positive("before_seq", v, i64::MAX) {
                Ok(n) => Some(n),
                Err(e) => {
                    errors.push(e);
                    None
                }
            },
            None => None,
        };
        let limit = match text(&self.limit) {
            Some(v) => match parse_positive("limit", v, max_limit) {
                Ok(n) => n,
                Err(e) => {
                    errors.push(e);
                    default_limit
                }
            },
            None => default_limit,
        };
        if errors.is_empty() {
            Ok(ParsedQuery {
                filter,
                before_seq,
                limit,
            })
        } else {
            Err(ApiError::Validation(errors))
        }
    }

    /// The query string of this filter (without paging), for links.
    pub fn filter_query(&self) -> String {
        let pairs: Vec<(&str, &str)> = [
            ("from", &self.from),
            ("to", &self.to),
            ("actor", &self.actor),
            ("action", &self.action),
            ("target", &self.target),
            ("outcome", &self.outcome),
        ]
        .into_iter()
        .filter_map(|(k, v)| text(v).map(|v| (k, v)))
        .collect();
        serde_urlencoded::to_string(pairs).unwrap_or_default()
    }
}

/// One audit record.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AuditRecordView {
    pub seq: i64,
    /// Unix milliseconds.
    pub at_ms: i64,
    /// The same instant in Beijing time, RFC 3339.
    pub at: String,
    pub actor: Option<String>,
    pub role: Option<String>,
    pub source_ip: Option<String>,
    pub request_id: Option<String>,
    pub action: String,
    pub target: Option<String>,
    pub outcome: String,
    pub reason: Option<String>,
    /// SHA-256 of the before/after state, not the data itself.
    pub change_digest: Option<String>,
    pub prev_hash: String,
    pub hash: String,
}

/// Unix ms as Beijing time, `YYYY-MM-DD HH:MM:SS` (`rfc3339`: with offset).
pub fn shanghai(ms: i64, rfc3339: bool) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .and_then(|t| {
            chrono::FixedOffset::east_opt(zhudai_domain::clock::BUSINESS_UTC_OFFSET_SECS)
                .map(|tz| t.with_timezone(&tz))
        })
        .map(|t| {
            if rfc3339 {
                t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
            } else {
                t.format("%Y-%m-%d %H:%M:%S").to_string()
            }
        })
        .unwrap_or_default()
}

impl From<AuditRecord> for AuditRecordView {
    fn from(r: AuditRecord) -> Self {
        AuditRecordView {
            at: shanghai(r.at_ms, true),
            seq: r.seq,
            at_ms: r.at_ms,
            actor: r.actor,
            role: r.role,
            source_ip: r.source_ip,
            request_id: r.request_id,
            action: r.action,
            target: r.target,
            outcome: r.outcome,
            reason: r.reason,
            change_digest: r.change_digest,
            prev_hash: r.prev_hash,
            hash: r.hash,
        }
    }
}

/// One page of records, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPageView {
    pub records: Vec<AuditRecordView>,
    /// Pass as `before_seq` for the next (older) page; `null` on the last page.
    pub next_before_seq: Option<i64>,
}

impl AuditQuery {
    /// What was asked for, readable (not URL-encoded, empty fields left out), as the
    /// target of the audit record of a read: `audit?actor=张三&outcome=denied`.
    pub fn audit_target(&self) -> String {
        let given: Vec<String> = [
            ("from", &self.from),
            ("to", &self.to),
            ("actor", &self.actor),
            ("action", &self.action),
            ("target", &self.target),
            ("outcome", &self.outcome),
            ("before_seq", &self.before_seq),
            ("limit", &self.limit),
        ]
        .into_iter()
        .filter_map(|(k, v)| text(v).map(|v| format!("{k}={v}")))
        .collect();
        if given.is_empty() {
            "audit".to_owned()
        } else {
            format!(
                "audit?{}",
                given.join("&").chars().take(600).collect::<String>()
            )
        }
    }
}

/// The audit note of a read of the trail: what was asked for, in the record's target.
fn read_note(
    action: &str,
    query: &Result<Query<AuditQuery>, QueryRejection>,
    uri: &Uri,
) -> AuditNote {
    let target = match query {
        Ok(Query(q)) => q.audit_target(),
        // Unparseable: keep the raw query string.
        Err(_) => format!(
            "audit?{}",
            uri.query()
                .unwrap_or_default()
                .chars()
                .take(600)
                .collect::<String>()
        ),
    };
    AuditNote::action(action).target(target)
}

fn with_note(mut resp: Response, note: AuditNote) -> Response {
    resp.extensions_mut().insert(note);
    resp
}

/// Search the audit trail, newest first, with keyset paging.
#[utoipa::path(get, path = "/api/v1/audit", tag = "audit", params(AuditQuery),
    responses(
        (status = 200, description = "One page of matching records", body = AuditPageView),
        (status = 403, description = "The caller may not read the audit trail", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A parameter is invalid; `errors` names it", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn search(
    State(state): State<AppState>,
    uri: Uri,
    query: Result<Query<AuditQuery>, QueryRejection>,
) -> Response {
    let note = read_note("audit.search", &query, &uri);
    let result = async {
        let Query(q) = query?;
        let p = q.parse(MAX_PAGE, DEFAULT_PAGE)?;
        let page = state
            .store()
            .audit_search(&p.filter, p.before_seq, p.limit)
            .await?;
        Ok::<_, ApiError>(AuditPageView {
            next_before_seq: page.next_before_seq,
            records: page.records.into_iter().map(Into::into).collect(),
        })
    }
    .await;
    match result {
        Ok(page) => {
            let n = page.records.len();
            with_note(
                Json(page).into_response(),
                note.reason(format!("{n} records")),
            )
        }
        Err(e) => with_note(e.into_response(), note),
    }
}

/// A CSV cell: quoted when needed; a leading `= + - @` is defused so a spreadsheet does
/// not run it as a formula.
fn csv_cell(out: &mut String, value: &str) {
    let defuse = value.starts_with(['=', '+', '-', '@', '\t', '\r']);
    let quote = defuse || value.contains([',', '"', '\n', '\r']);
    if quote {
        out.push('"');
    }
    if defuse {
        out.push('\'');
    }
    for c in value.chars() {
        if c == '"' {
            out.push('"');
        }
        out.push(c);
    }
    if quote {
        out.push('"');
    }
}

fn csv_row<'a>(out: &mut String, cells: impl IntoIterator<Item = &'a str>) {
    for (i, cell) in cells.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        csv_cell(out, cell);
    }
    out.push_str("\r\n");
}

/// The columns of the export.
pub const CSV_COLUMNS: &[&str] = &[
    "seq",
    "time_beijing",
    "at_ms",
    "actor",
    "role",
    "source_ip",
    "request_id",
    "action",
    "target",
    "outcome",
    "reason",
    "change_digest",
    "prev_hash",
    "hash",
];

/// The CSV file: a UTF-8 byte-order mark (so Excel reads Chinese correctly), a notice
/// row when truncated (naming the `before_seq` to continue from), the header, the rows.
pub fn write_csv(records: &[AuditRecord], truncated_before: Option<i64>, cap: i64) -> String {
    let mut out = String::with_capacity(64 + records.len() * 320);
    out.push('\u{feff}');
    if let Some(next) = truncated_before {
        let notice = format!(
            "# truncated / 已截断: only the newest {cap} matching records are in this file; export again with before_seq={next} for older ones"
        );
        csv_row(&mut out, [notice.as_str()]);
    }
    csv_row(&mut out, CSV_COLUMNS.iter().copied());
    for r in records {
        let seq = r.seq.to_string();
        let time = shanghai(r.at_ms, false);
        let at = r.at_ms.to_string();
        let o = |v: &Option<String>| v.clone().unwrap_or_default();
        let cells = [
            seq,
            time,
            at,
            o(&r.actor),
            o(&r.role),
            o(&r.source_ip),
            o(&r.request_id),
            r.action.clone(),
            o(&r.target),
            r.outcome.clone(),
            o(&r.reason),
            o(&r.change_digest),
            r.prev_hash.clone(),
            r.hash.clone(),
        ];
        csv_row(&mut out, cells.iter().map(String::as_str));
    }
    out
}

/// Export the matching records as CSV (UTF-8 with BOM), newest first, at most 100 000 rows.
#[utoipa::path(get, path = "/api/v1/audit/export", tag = "audit", params(AuditQuery),
    responses(
        (status = 200, description = "CSV; when truncated the first row says so and names the `before_seq` to continue from", body = String, content_type = "text/csv"),
        (status = 403, description = "The caller may not export the audit trail", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A parameter is invalid; `errors` names it", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn export(
    State(state): State<AppState>,
    uri: Uri,
    query: Result<Query<AuditQuery>, QueryRejection>,
) -> Response {
    let note = read_note("audit.export", &query, &uri);
    let result = async {
        let Query(q) = query?;
        let p = q.parse(EXPORT_MAX_ROWS, EXPORT_MAX_ROWS)?;
        let mut records: Vec<AuditRecord> = Vec::new();
        let mut before = p.before_seq;
        let mut truncated = None;
        loop {
            let want = (p.limit - records.len() as i64).min(1000);
            if want <= 0 {
                truncated = before;
                break;
            }
            let page = state.store().audit_search(&p.filter, before, want).await?;
            records.extend(page.records);
            match page.next_before_seq {
                Some(next) => before = Some(next),
                None => break,
            }
        }
        // A full last page leaves `before` set although nothing older may match: check.
        if let Some(next) = truncated {
            let more = state.store().audit_search(&p.filter, Some(next), 1).await?;
            if more.records.is_empty() {
                truncated = None;
            }
        }
        Ok::<_, ApiError>((
            write_csv(&records, truncated, p.limit),
            records.len(),
            truncated,
        ))
    }
    .await;
    match result {
        Ok((csv, rows, truncated)) => {
            let name = format!(
                "attachment; filename=\"audit-{}.csv\"",
                shanghai(state.now_ms(), false)
                    .replace([' ', ':'], "")
                    .replace('-', "")
            );
            let mut resp = csv.into_response();
            let h = resp.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/csv; charset=utf-8"),
            );
            if let Ok(v) = HeaderValue::from_str(&name) {
                h.insert(header::CONTENT_DISPOSITION, v);
            }
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            h.insert(
                "x-zhudai-export-truncated",
                HeaderValue::from_static(if truncated.is_some() { "true" } else { "false" }),
            );
            let reason = match truncated {
                Some(next) => format!("{rows} rows (truncated, continue before_seq={next})"),
                None => format!("{rows} rows"),
            };
            with_note(resp, note.reason(reason))
        }
        Err(e) => with_note(e.into_response(), note),
    }
}

/// Verify the whole chain: every signed checkpoint against the trusted signing keys, then
/// every record from the first, paged.
#[utoipa::path(post, path = "/api/v1/audit/verify", tag = "audit",
    responses(
        (status = 200, description = "The verdict; `ok` is false and `first_break` names the first bad record when the trail was tampered with", body = VerifyReport),
        (status = 403, description = "The caller may not verify the audit trail", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn verify(State(state): State<AppState>) -> Response {
    let note = AuditNote::action("audit.verify");
    match audit_checkpoint::verify(state.store(), state.vault()).await {
        Ok(report) => {
            let note = match &report.first_break {
                None => note.outcome("success").reason(format!(
                    "intact: {} records, head seq {}",
                    report.records_checked, report.head_seq
                )),
                Some(b) => note.outcome("failed").reason(b.to_string()),
            };
            with_note(Json(report).into_response(), note)
        }
        Err(e) => with_note(ApiError::internal(e).into_response(), note),
    }
}

/// A signed checkpoint and whether its signature verifies with a trusted key.
#[derive(Debug, Serialize, ToSchema)]
pub struct CheckpointView {
    pub seq: i64,
    pub hash: String,
    pub at_ms: i64,
    /// ed25519 signature, hex.
    pub signature: String,
    /// The key it names, hex.
    pub public_key: String,
    /// The signature verifies with that key and the key is trusted.
    pub signature_valid: bool,
}

/// The signing keys and every checkpoint.
#[derive(Debug, Serialize, ToSchema)]
pub struct CheckpointList {
    pub keys: Vec<KeyStatus>,
    /// In seq order.
    pub checkpoints: Vec<CheckpointView>,
}

/// The checkpoint signing keys and the signed checkpoints, for anchoring outside the system.
#[utoipa::path(get, path = "/api/v1/audit/checkpoints", tag = "audit",
    responses(
        (status = 200, description = "Keys and checkpoints", body = CheckpointList),
        (status = 403, description = "The caller may not read the audit trail", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn checkpoints(State(state): State<AppState>) -> Result<Json<CheckpointList>, ApiError> {
    let keys = audit_checkpoint::key_statuses(state.store(), state.vault())
        .await
        .map_err(ApiError::internal)?;
    let list = state.store().audit_checkpoints().await?;
    let checkpoints = list
        .into_iter()
        .map(|cp| {
            let signature_valid = keys.iter().any(|k| {
                k.trusted
                    && k.public_key == cp.public_key
                    && verify_checkpoint(&cp, &k.public_key).is_ok()
            });
            CheckpointView {
                seq: cp.seq,
                hash: cp.hash,
                at_ms: cp.at_ms,
                signature: cp.signature,
                public_key: cp.public_key,
                signature_valid,
            }
        })
        .collect();
    Ok(Json(CheckpointList { keys, checkpoints }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> AuditQuery {
        serde_urlencoded::from_str(&serde_urlencoded::to_string(pairs).unwrap()).unwrap()
    }

    fn fields(e: ApiError) -> Vec<String> {
        match e {
            ApiError::Validation(v) => v.into_iter().map(|f| f.field).collect(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn dates_are_beijing_days() {
        let p = q(&[("from", "2026-11-29"), ("to", "2026-11-29")])
            .parse(MAX_PAGE, DEFAULT_PAGE)
            .unwrap();
        // 2026-11-29 00:00 +08:00 = 2026-11-28 16:00 UTC.
        assert_eq!(p.filter.from_ms, Some(1_795_881_600_000));
        assert_eq!(p.filter.to_ms, Some(1_795_881_600_000 + DAY_MS));
        let p = q(&[("from", "5"), ("limit", "500"), ("action", " auth. ")])
            .parse(MAX_PAGE, DEFAULT_PAGE)
            .unwrap();
        assert_eq!(
            (p.filter.from_ms, p.limit, p.filter.action_prefix.as_deref()),
            (Some(5), 500, Some("auth."))
        );
    }

    #[test]
    fn bad_fields_are_named() {
        let e = q(&[("from", "yesterday"), ("limit", "501"), ("before_seq", "x")])
            .parse(MAX_PAGE, DEFAULT_PAGE)
            .unwrap_err();
        assert_eq!(fields(e), ["from", "before_seq", "limit"]);
        let e = q(&[("from", "2026-11-30"), ("to", "2026-11-29")])
            .parse(MAX_PAGE, DEFAULT_PAGE)
            .unwrap_err();
        assert_eq!(fields(e), ["to"]);
    }

    #[test]
    fn csv_has_bom_quotes_and_defuses_formulas() {
        let r = AuditRecord {
            seq: 7,
            at_ms: 0,
            actor: Some("张三".into()),
            role: None,
            source_ip: None,
            request_id: None,
            action: "a,b".into(),
            target: Some("=HYPERLINK(\"x\")".into()),
            outcome: "success".into(),
            reason: Some("line\nbreak".into()),
            change_digest: None,
            prev_hash: "p".into(),
            hash: "h".into(),
        };
        let csv = write_csv(&[r], Some(7), 1);
        assert!(csv.starts_with('\u{feff}'));
        let lines: Vec<&str> = csv.trim_start_matches('\u{feff}').split("\r\n").collect();
        assert!(lines[0].contains("before_seq=7"), "{}", lines[0]);
        assert!(lines[1].starts_with("seq,time_beijing,"));
        assert!(lines[2].starts_with("7,1970-01-01 08:00:00,0,张三,,,,\"a,b\",\"'=HYPERLINK(\"\"x\"\")\",success,\"line\nbreak\""), "{}", lines[2]);
    }
}
