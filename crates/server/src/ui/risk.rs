//! Risk control pages (issue #7): the overview with the blacklist, decisions with their
//! explanation, replay and two-person overrides, models (upload, compare, promote) and
//! rule sets (edit, check, test on sample rows, save, enable).

use crate::api::audit::shanghai;
use crate::api::risk as api;
use crate::auth::{AuditNote, Caller, CSRF_FIELD};
use crate::error::{ApiError, FieldError};
use crate::risk as svc;
use crate::state::AppState;
use crate::ui::chart;
use crate::ui::i18n::Lang;
use crate::ui::layout::{page, Ctx};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use maud::{html, Markup};
use serde::Deserialize;
use zhudai_domain::money::Fen;

fn ctx(lang: Lang, caller: Caller) -> Ctx {
    Ctx {
        lang,
        caller: Some(caller),
    }
}

fn done(to: &str) -> Response {
    let mut r = Redirect::to(to).into_response();
    r.extensions_mut().insert(AuditNote {
        recorded: true,
        ..Default::default()
    });
    r
}

fn outcome_badge(t: &crate::ui::i18n::Bundle, outcome: &str) -> Markup {
    let class = match outcome {
        "approve" => "badge badge-ok",
        "refer" => "badge badge-warn",
        _ => "badge badge-bad",
    };
    html! { span class=(class) data-outcome=(outcome) { (t.get(&format!("risk.outcome.{outcome}"))) } }
}

fn errors_box(errors: &[FieldError]) -> Markup {
    html! {
        @if !errors.is_empty() {
            div.field-error role="alert" data-testid="risk-errors" {
                ul { @for e in errors { li { code { (e.field) } " — " (e.message) } } }
            }
        }
    }
}

fn message_of(e: ApiError) -> Result<Vec<FieldError>, ApiError> {
    match e {
        ApiError::Validation(v) => Ok(v),
        ApiError::Conflict(m) | ApiError::Forbidden(m) => {
            Ok(vec![FieldError::new("", "refused", m)])
        }
        other => Err(other),
    }
}

/// The risk module's tabs (shared with the warning and limit pages).
fn nav(t: &crate::ui::i18n::Bundle, active: &str) -> Markup {
    crate::ui::warnings::tabs(t, active)
}

// ------------------------------------------------------------------ overview

async fn overview_page(
    state: &AppState,
    lang: Lang,
    caller: Caller,
    errors: &[FieldError],
) -> Result<Response, ApiError> {
    svc::ensure_defaults(state.store(), state.now_ms()).await?;
    let t = state.i18n().bundle(lang);
    let (rules_id, champion_id) = state.store().risk_in_force().await?;
    let rules = match rules_id {
        Some(id) => state.store().risk_rule_set(id).await?,
        None => None,
    };
    let champion = match champion_id {
        Some(id) => state.store().risk_model(id).await?,
        None => None,
    };
    let recent = state
        .store()
        .risk_decisions(&zhudai_store::risk::DecisionQuery {
            limit: 500,
            ..Default::default()
        })
        .await?;
    let count = |o: &str| recent.iter().filter(|d| d.final_outcome == o).count() as i64;
    let bars: Vec<(String, i64)> = ["approve", "refer", "reject"]
        .iter()
        .map(|o| (t.get(&format!("risk.outcome.{o}")), count(o)))
        .collect();
    let blacklist = state.store().risk_blacklist(50).await?;
    let csrf = caller.csrf.clone().unwrap_or_default();
    let can_manage = caller.can("risk.manage");
    let content = html! {
        (nav(t, "credit"))
        div.grid {
            section.card data-testid="risk-in-force" {
                h2 { (t.get("risk.in_force")) }
                p { (t.get("risk.champion")) ": "
                    @if let Some(m) = &champion { a href=(format!("/risk/models/{}", m.id)) { (m.name) " v" (m.version) } } @else { "—" } }
                p { (t.get("risk.rule_set")) ": "
                    @if let Some(r) = &rules { a href=(format!("/risk/policy-rules/{}", r.id)) { (r.name) " v" (r.version) } } @else { "—" } }
            }
            section.card {
                h2 { (t.get("risk.recent_outcomes")) }
                (chart::bars(&t.get("risk.recent_outcomes"), &bars))
            }
        }
        section.card data-testid="blacklist" {
            h2 { (t.get("risk.blacklist")) }
            p.muted { (t.get("risk.blacklist.hint")) }
            (errors_box(errors))
            @if can_manage {
                form method="post" action="/risk/blacklist" {
                    input type="hidden" name=(CSRF_FIELD) value=(csrf);
                    div.field { label for="bl-field" { (t.get("risk.blacklist.field")) }
                        select #bl-field name="field" { @for f in ["id_number", "phone", "bank_card"] { option value=(f) { (t.get(&format!("risk.blacklist.{f}"))) } } } }
                    div.field { label for="bl-value" { (t.get("risk.blacklist.value")) } input #bl-value name="value" required; }
                    div.field { label for="bl-reason" { (t.get("risk.reason")) } input #bl-reason name="reason" required; }
                    button type="submit" { (t.get("risk.blacklist.add")) }
                }
            }
            table.table { thead { tr { th { "#" } th { (t.get("risk.blacklist.field")) } th { (t.get("risk.reason")) } th { (t.get("risk.created")) } @if can_manage { th { (t.get("risk.blacklist.remove")) } } } }
                tbody { @for b in &blacklist { tr data-testid="blacklist-row" { td { (b.id) } td { (t.get(&format!("risk.blacklist.{}", b.field))) } td { (b.reason) } td { (shanghai(b.created_at_ms, false)) }
                    @if can_manage { td {
                        form.inline method="post" action=(format!("/risk/blacklist/{}/remove", b.id)) {
                            input type="hidden" name=(CSRF_FIELD) value=(csrf);
                            input name="reason" required placeholder=(t.get("risk.blacklist.remove_reason")) aria-label=(t.get("risk.blacklist.remove_reason"));
                            button.secondary type="submit" { (t.get("risk.blacklist.remove")) }
                        }
                    } }
                } } } }
        }
    };
    Ok(page(
        state,
        &ctx(lang, caller),
        "risk",
        &t.get("module.risk.title"),
        content,
    )
    .into_response())
}

/// GET `/risk`.
pub async fn overview(
    State(state): State<AppState>,
    lang: Lang,
    caller: Caller,
) -> Result<Response, ApiError> {
    overview_page(&state, lang, caller, &[]).await
}

#[derive(Debug, Deserialize)]
pub struct BlacklistForm {
    field: String,
    value: String,
    reason: String,
}

/// POST `/risk/blacklist`.
pub async fn blacklist_add(
    State(state): State<AppState>,
    lang: Lang,
    caller: Caller,
    Form(f): Form<BlacklistForm>,
) -> Result<Response, ApiError> {
    match svc::blacklist_add(&state, &caller, &f.field, &f.value, &f.reason).await {
        Ok(_) => Ok(done("/risk")),
        Err(e) => {
            let errors = message_of(e)?;
            let mut r = overview_page(&state, lang, caller, &errors).await?;
            *r.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
            Ok(r)
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct BlacklistRemoveForm {
    reason: String,
}

/// POST `/risk/blacklist/{id}/remove`.
pub async fn blacklist_remove(
    State(state): State<AppState>,
    lang: Lang,
    caller: Caller,
    Path(id): Path<i64>,
    Form(f): Form<BlacklistRemoveForm>,
) -> Result<Response, ApiError> {
    match svc::blacklist_remove(&state, &caller, id, &f.reason).await {
        Ok(()) => Ok(done("/risk")),
        Err(e) => {
            let errors = message_of(e)?;
            let mut r = overview_page(&state, lang, caller, &errors).await?;
            *r.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
            Ok(r)
        }
    }
}

// ------------------------------------------------------------------ decisions

#[derive(Debug, Deserialize, Default)]
pub struct DecisionFilter {
    outcome: Option<String>,
    before: Option<i64>,
}

/// GET `/risk/decisions`.
pub async fn decisions(
    State(state): State<AppState>,
    lang: Lang,
    caller: Caller,
    Query(q): Query<DecisionFilter>,
) -> Result<Response, ApiError> {
    let t = state.i18n().bundle(lang);
    let outcome = q.outcome.clone().filter(|s| !s.is_empty());
    let rows = state
        .store()
        .risk_decisions(&zhudai_store::risk::DecisionQuery {
            outcome: outcome.as_deref(),
            application_id: None,
            before_id: q.before,
            limit: 100,
        })
        .await?;
    let mut visible = Vec::new();
    for d in rows.iter() {
        if api::visible(&state, &caller, d).await? {
            visible.push(d);
        }
    }
    let content = html! {
        (nav(t, "decisions"))
        section.card {
            form.inline method="get" action="/risk/decisions" {
                label for="f-outcome" { (t.get("risk.outcome")) } " "
                select #f-outcome name="outcome" {
                    option value="" { (t.get("risk.all")) }
                    @for o in ["approve", "refer", "reject"] { option value=(o) selected[outcome.as_deref() == Some(o)] { (t.get(&format!("risk.outcome.{o}"))) } }
                }
                " " button type="submit" { (t.get("risk.filter")) }
            }
            @if visible.is_empty() { p.muted data-testid="no-decisions" { (t.get("risk.no_decisions")) } }
            @else {
                table.table data-testid="decision-table" {
                    thead { tr { th { "#" } th { (t.get("risk.subject")) } th { (t.get("risk.outcome")) } th.num { (t.get("risk.score")) } th { (t.get("risk.grade")) } th.num { (t.get("risk.limit")) } th { (t.get("risk.created")) } } }
                    tbody { @for d in &visible { tr {
                        td { a href=(format!("/risk/decisions/{}", d.id)) { (d.id) } }
                        td { @if let Some(a) = d.application_id { a href=(format!("/applications/{a}")) { (d.subject) } } @else { (d.subject) } }
                        td { (outcome_badge(t, &d.final_outcome)) @if d.final_outcome != d.outcome { " " span.muted { "(" (t.get("risk.overridden")) ")" } } }
                        td.num { (d.score) }
                        td { (d.grade) }
                        td.num { (Fen::new(d.limit_fen)) }
                        td { (shanghai(d.created_at_ms, false)) }
                    } } }
                }
                @if let Some(last) = visible.last() {
                    @if visible.len() >= 50 { p { a href=(format!("/risk/decisions?before={}{}", last.id, outcome.as_deref().map(|o| format!("&outcome={o}")).unwrap_or_default())) { (t.get("risk.older")) } } }
                }
            }
        }
    };
    Ok(page(
        &state,
        &ctx(lang, caller),
        "risk",
        &t.get("risk.decisions"),
        content,
    )
    .into_response())
}

async fn decision_page(
    state: &AppState,
    lang: Lang,
    caller: Caller,
    id: i64,
    replay: Option<&svc::Replay>,
    errors: &[FieldError],
) -> Result<Response, ApiError> {
    let t = state.i18n().bundle(lang);
    let row = api::load_decision(state, &caller, id).await?;
    let d = api::detail(state, row.clone()).await?;
    let zh = lang == Lang::ZhCn;
    let model = state.store().risk_model(row.model_id).await?;
    let rules = state.store().risk_rule_set(row.rule_set_id).await?;
    let csrf = caller.csrf.clone().unwrap_or_default();
    let can_manage = caller.can("risk.manage");
    let reasons = d.reasons.as_array().cloned().unwrap_or_default();
    let input_rows: Vec<(String, String)> = flatten(&d.input);
    let content = html! {
        (nav(t, "decisions"))
        section.card data-testid="decision-summary" {
            h2 { (t.get("risk.decision")) " #" (row.id) " · " (row.subject) }
            p { (outcome_badge(t, &row.final_outcome))
                @if row.final_outcome != row.outcome { " " span.muted { (t.get("risk.engine_said")) " " (t.get(&format!("risk.outcome.{}", row.outcome))) } } }
            table.table { tbody {
                tr { th { (t.get("risk.score")) } td data-testid="decision-score" { (row.score) } }
                tr { th { (t.get("risk.probability")) } td { (format!("{:.4}", row.probability.parse::<f64>().unwrap_or(0.0))) } }
                tr { th { (t.get("risk.grade")) } td data-testid="decision-grade" { (row.grade) } }
                tr { th { (t.get("risk.limit")) } td { (Fen::new(row.limit_fen)) } }
                tr { th { (t.get("risk.price_band")) } td { (row.price_band) } }
                tr { th { (t.get("risk.model")) } td { @if let Some(m) = &model { a href=(format!("/risk/models/{}", m.id)) { (m.name) " v" (m.version) } } } }
                tr { th { (t.get("risk.rule_set")) } td { @if let Some(r) = &rules { a href=(format!("/risk/policy-rules/{}", r.id)) { (r.name) " v" (r.version) } } } }
                tr { th { (t.get("risk.input_digest")) } td { code { (row.input_digest) } } }
                tr { th { (t.get("risk.created")) } td { (shanghai(row.created_at_ms, false)) } }
                @if let Some(a) = row.application_id { tr { th { (t.get("risk.application")) } td { a href=(format!("/applications/{a}")) { "#" (a) } } } }
            } }
        }
        section.card data-testid="decision-reasons" {
            h2 { (t.get("risk.reasons")) }
            p.muted { (t.get("risk.reasons.hint")) }
            @if reasons.is_empty() { p.muted { (t.get("risk.no_reasons")) } }
            ol { @for r in &reasons {
                li data-kind=(r["kind"].as_str().unwrap_or("")) data-code=(r["code"].as_str().unwrap_or("")) {
                    (if zh { r["zh"].as_str().unwrap_or("") } else { r["en"].as_str().unwrap_or("") })
                }
            } }
        }
        section.card {
            h2 { (t.get("risk.replay")) }
            p.muted { (t.get("risk.replay.hint")) }
            @if let Some(rp) = replay {
                p data-testid="replay-result" class=(if rp.same { "badge badge-ok" } else { "badge badge-bad" }) {
                    (if rp.same { t.get("risk.replay.same") } else { t.get("risk.replay.differs") })
                }
                @if !rp.differences.is_empty() { ul { @for x in &rp.differences { li { (x) } } } }
            }
            form method="post" action=(format!("/risk/decisions/{id}/replay")) {
                input type="hidden" name=(CSRF_FIELD) value=(csrf);
                button type="submit" data-testid="replay" { (t.get("risk.replay")) }
            }
        }
        @if !d.challengers.is_empty() {
            section.card {
                h2 { (t.get("risk.challengers")) }
                table.table { thead { tr { th { (t.get("risk.model")) } th.num { (t.get("risk.score")) } th { (t.get("risk.outcome")) } th { (t.get("risk.grade")) } } }
                    tbody { @for c in &d.challengers { tr { td { a href=(format!("/risk/models/{}", c.model_id)) { "#" (c.model_id) } } td.num { (c.score) } td { (outcome_badge(t, &c.outcome)) } td { (c.grade) } } } } }
            }
        }
        section.card data-testid="overrides" {
            h2 { (t.get("risk.overrides")) }
            p.muted { (t.get("risk.overrides.hint")) }
            (errors_box(errors))
            @if !d.overrides.is_empty() {
                table.table { thead { tr { th { "#" } th { (t.get("risk.outcome")) } th { (t.get("risk.reason")) } th { (t.get("risk.state")) } th {} } }
                    tbody { @for o in &d.overrides { tr {
                        td { (o.id) } td { (outcome_badge(t, &o.outcome)) } td { (o.reason) }
                        td { (t.get(&format!("risk.override.{}", o.state))) }
                        td { @if o.state == "pending" && can_manage && o.requested_by != caller.user_id {
                            form.inline method="post" action=(format!("/risk/decisions/{id}/overrides/{}", o.id)) {
                                input type="hidden" name=(CSRF_FIELD) value=(csrf);
                                input type="hidden" name="approve" value="1";
                                button type="submit" data-testid="override-approve" { (t.get("risk.override.approve")) }
                            }
                            " "
                            form.inline method="post" action=(format!("/risk/decisions/{id}/overrides/{}", o.id)) {
                                input type="hidden" name=(CSRF_FIELD) value=(csrf);
                                input type="hidden" name="approve" value="0";
                                button.secondary type="submit" { (t.get("risk.override.refuse")) }
                            }
                        } }
                    } } }
                }
            }
            @if can_manage {
                form method="post" action=(format!("/risk/decisions/{id}/overrides")) {
                    input type="hidden" name=(CSRF_FIELD) value=(csrf);
                    div.field { label for="ov-outcome" { (t.get("risk.outcome")) }
                        select #ov-outcome name="outcome" { @for o in ["approve", "refer", "reject"] { option value=(o) { (t.get(&format!("risk.outcome.{o}"))) } } } }
                    div.field { label for="ov-reason" { (t.get("risk.reason")) } input #ov-reason name="reason" required; }
                    button type="submit" data-testid="override-request" { (t.get("risk.override.request")) }
                }
            }
        }
        section.card {
            h2 { (t.get("risk.input")) }
            table.table data-testid="decision-input" { tbody { @for (k, v) in &input_rows { tr { th { code { (k) } } td { (v) } } } } }
        }
    };
    Ok(page(
        state,
        &ctx(lang, caller),
        "risk",
        &t.get("risk.decision"),
        content,
    )
    .into_response())
}

/// `a.b` → value rows of a JSON object.
fn flatten(v: &serde_json::Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    fn walk(prefix: &str, v: &serde_json::Value, out: &mut Vec<(String, String)>) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, x) in m {
                    let p = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    walk(&p, x, out);
                }
            }
            serde_json::Value::String(s) => out.push((prefix.to_owned(), s.clone())),
            other => out.push((prefix.to_owned(), other.to_string())),
        }
    }
    walk("", v, &mut out);
    out
}

/// GET `/risk/decisions/{id}`.
pub async fn decision(
    State(state): State<AppState>,
    lang: Lang,
    caller: Caller,
    Path(id): Path<i64>,
) -> Result<Response, ApiError> {
    decision_page(&state, lang, caller, id, None, &[]).await
}

/// POST `/risk/decisions/{id}/replay`.
pub async fn decision_replay(
    State(state): State<AppState>,
    lang: Lang,
    caller: Caller,
    Path(id): Path<i64>,
) -> Result<Response, ApiError> {
    let row = api::load_decision(&state, &caller, id).await?;
    let rp = svc::replay(state.store(), &row).await?;
    decision_page(&state, lang, caller, id, Some(&rp), &[]).await
}

#[derive(Debug, Deserialize)]
pub struct OverrideForm {
    outcome: String,
    reason: String,
}

/// POST `/risk/decisions/{id}/overrides`.
pub async fn override_request(
    State(state): State<AppState>,
    lang: Lang,
    caller: Caller,
    Path(id): Path<i64>,
    Form(f): Form<OverrideForm>,
) -> Result<Response, ApiError> {
    api::load_decision(&state, &caller, id).await?;
    match svc::request_override(&state, &caller, id, &f.outcome, &f.reason).await {
        Ok(_) => Ok(done(&format!("/risk/decisions/{id}"))),
        Err(e) => {
            let errors = message_of(e)?;
            let mut r = decision_page(&state, lang, caller, id, None, &errors).await?;
            *r.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
            Ok(r)
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct OverrideDecideForm {
    approve: String,
    note: Option<String>,
}

/// POST `/risk/decisions/{id}/overrides/{override_id}`.
pub async fn override_decide(
    State(state): State<AppState>,
    lang: Lang,
    caller: Caller,
    Path((id, override_id)): Path<(i64, i64)>,
    Form(f): Form<OverrideDecideForm>,
) -> Result<Response, ApiError> {
    api::load_decision(&state, &caller, id).await?;
    let approve = f.approve == "1";
    match svc::decide_override(&state, &caller, id, override_id, approve, f.note.as_deref()).await {
        Ok(()) => Ok(done(&format!("/risk/decisions/{id}"))),
        Err(e) => {
            let errors = message_of(e)?;
            let mut r = decision_page(&state, lang, caller, id, None, &errors).await?;
            *r.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
            Ok(r)
        }
    }
}

// ------------------------------------------------------------------ models

async fn models_page(
    state: &AppState,
    lang: Lang,
    caller: Caller,
    form: &UploadForm,
    errors: &[FieldError],
) -> Result<Response, ApiError> {
    svc::ensure_defaults(state.store(), state.now_ms()).await?;
    let t = state.i18n().bundle(lang);
    let models = state.store().risk_models().await?;
    let csrf = caller.csrf.clone().unwrap_or_default();
    let content = html! {
        (nav(t, "models"))
        section.card {
            table.table data-testid="model-table" {
                thead { tr { th { "#" } th { (t.get("risk.model")) } th { (t.get("risk.state")) } th.num { (t.get("risk.features")) } th { (t.get("risk.created")) } } }
                tbody { @for m in &models { tr {
                    td { a href=(format!("/risk/models/{}", m.id)) { (m.id) } }
                    td { (m.name) " v" (m.version) }
                    td { span class=(if m.status == "champion" { "badge badge-ok" } else { "badge" }) data-status=(m.status) { (t.get(&format!("risk.status.{}", m.status))) } }
                    td.num { (svc::parse_model(m).map_or(0, |s| s.feature_count())) }
                    td { (shanghai(m.created_at_ms, false)) }
                } } }
            }
        }
        section.card {
            h2 { (t.get("risk.compare")) }
            form method="get" action="/risk/models/compare" {
                select name="a" aria-label="A" { @for m in &models { option value=(m.id) { "#" (m.id) " " (m.name) " v" (m.version) } } }
                " "
                select name="b" aria-label="B" { @for (i, m) in models.iter().enumerate() { option value=(m.id) selected[i == 1] { "#" (m.id) " " (m.name) " v" (m.version) } } }
                " " button type="submit" { (t.get("risk.compare")) }
            }
        }
        @if caller.can("risk.manage") {
            section.card data-testid="model-upload" {
                h2 { (t.get("risk.upload")) }
                p.muted { (t.get("risk.upload.hint")) }
                (errors_box(errors))
                form method="post" action="/risk/models" {
                    input type="hidden" name=(CSRF_FIELD) value=(csrf);
                    div.field { label for="up-model" { (t.get("risk.upload.model")) } textarea #up-model name="model" rows="10" style="width:100%;font-family:monospace" required { (form.model) } }
                    div.field { label for="up-inputs" { (t.get("risk.upload.inputs")) } textarea #up-inputs name="inputs" rows="5" style="width:100%;font-family:monospace" { (form.inputs) } }
                    div.field { label for="up-note" { (t.get("risk.note")) } input #up-note name="note" value=(form.note); }
                    button type="submit" { (t.get("risk.upload")) }
                }
            }
        }
    };
    Ok(page(
        state,
        &ctx(lang, caller),
        "risk",
        &t.get("risk.models"),
        content,
    )
    .into_response())
}

/// GET `/risk/models`.
pub async fn models(
    State(state): State<AppState>,
    lang: Lang,
    caller: Caller,
) -> Result<Response, ApiError> {
    models_page(&state, lang, caller, &UploadForm::default(), &[]).await
}

#[derive(Debug, Deserialize, Default)]
pub struct UploadForm {
    #[serde(default)]
    model: String,
    #[serde(default)]
    inputs: String,
    #[serde(default)]
    note: String,
}

/// POST `/risk/models`: upload a model (a challenger).
pub async fn upload(
    State(state): State<AppState>,
    lang: Lang,
    caller: Caller,
    Form(f): Form<UploadForm>,
) -> Result<Response, ApiError> {
    let inputs = if f.inputs.trim().is_empty() {
        "[]".to_owned()
    } else {
        f.inputs.clone()
    };
    let note = Some(f.note.trim()).filter(|n| !n.is_empty());
    match svc::upload_model(&state, &caller, &f.model, &inputs, note).await {
        Ok(id) => Ok(done(&format!("/risk/models/{id}"))),
        Err(e) => {
            let errors = message_of(e)?;
            let mut r = models_page(&state, lang, caller, &f, &errors).await?;
            *r.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
            Ok(r)
        }
    }
}

/// GET `/risk/models/{id}`.
pub async fn model(
    State(state): State<AppState>,
    lang: Lang,
    caller: Caller,
    Path(id): Path<i64>,
) -> Result<Response, ApiError> {
    let t = state.i18n().bundle(lang);
    let row = state
        .store()
        .risk_model(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no model has id {id}")))?;
    let m = svc::bound_model(state.store(), id).await?;
    let spec = m.model.spec();
    let zh = lang == Lang::ZhCn;
    let csrf = caller.csrf.clone().unwrap_or_default();
    let content = html! {
        (nav(t, "models"))
        section.card {
            h2 { (row.name) " v" (row.version) " " span.badge data-status=(row.status) { (t.get(&format!("risk.status.{}", row.status))) } }
            @if let Some(d) = &spec.metadata.description { p.muted { (d) } }
            p { (t.get("risk.digest")) ": " code { (row.digest) } }
            p { (t.get("risk.base_points")) ": " (spec.base_points) " · PDO " (spec.scaling.pdo) " · " (spec.scaling.base_score) " = " (spec.scaling.base_odds) ":1" }
            @if let Some(dev) = &spec.development { p { (t.get("risk.dev_sample")) ": " (dev.rows) " / " (dev.bad) } }
            @if caller.can("risk.manage") && row.status != "champion" {
                form.inline method="post" action=(format!("/risk/models/{id}/promote")) {
                    input type="hidden" name=(CSRF_FIELD) value=(csrf);
                    button type="submit" data-testid="promote" { (t.get("risk.promote")) }
                }
                " "
                form.inline method="post" action=(format!("/risk/models/{id}/status")) {
                    input type="hidden" name=(CSRF_FIELD) value=(csrf);
                    input type="hidden" name="status" value=(if row.status == "retired" { "challenger" } else { "retired" });
                    button.secondary type="submit" { (if row.status == "retired" { t.get("risk.unretire") } else { t.get("risk.retire") }) }
                }
            }
        }
        @for (i, f) in spec.features.iter().enumerate() {
            section.card {
                h3 { (m.inputs.label(i, &m.model, zh)) " " code { (f.name) } }
                p.muted { (t.get("risk.fed_by")) ": "
                    @match m.inputs.specs().get(i).and_then(|s| s.from.as_deref()) { Some(from) => code { (from) }, None => (t.get("risk.not_mapped")) } }
                table.table { thead { tr { th { (t.get("risk.bin")) } th.num { "WoE" } th.num { (t.get("risk.points")) } th.num { (t.get("risk.dev_count")) } } }
                    tbody {
                        @for b in f.binning.bins() { tr { td { (b.label) } td.num { (format!("{:.3}", b.woe)) } td.num { (b.points) } td.num { @if let Some(s) = b.dev { (s.count) " / " (s.bad) } } } }
                        tr { td { em { (f.missing.label) } } td.num { (format!("{:.3}", f.missing.woe)) } td.num { (f.missing.points) } td.num { @if let Some(s) = f.missing.dev { (s.count) " / " (s.bad) } } }
                    }
                }
            }
        }
    };
    Ok(page(
        &state,
        &ctx(lang, caller),
        "risk",
        &t.get("risk.model"),
        content,
    )
    .into_response())
}

/// POST `/risk/models/{id}/promote`.
pub async fn promote(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> Result<Response, ApiError> {
    svc::promote(&state, &caller, id).await?;
    Ok(done(&format!("/risk/models/{id}")))
}

#[derive(Debug, Deserialize)]
pub struct StatusForm {
    status: String,
}

/// POST `/risk/models/{id}/status`.
pub async fn model_status(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
    Form(f): Form<StatusForm>,
) -> Result<Response, ApiError> {
    svc::set_model_status(&state, &caller, id, &f.status).await?;
    Ok(done(&format!("/risk/models/{id}")))
}

#[derive(Debug, Deserialize, Default)]
pub struct CompareForm {
    a: i64,
    b: i64,
    #[serde(default)]
    sample_csv: String,
    #[serde(default)]
    target: String,
}

fn score_histogram(scores: &[i64]) -> Vec<(String, i64)> {
    let (Some(min), Some(max)) = (scores.iter().min(), scores.iter().max()) else {
        return Vec::new();
    };
    let width = ((max - min) / 8).max(1);
    let mut out: Vec<(String, i64)> = Vec::new();
    let mut lo = *min;
    while lo <= *max && out.len() < 12 {
        let hi = lo + width;
        let n = scores.iter().filter(|&&s| s >= lo && s < hi).count() as i64;
        out.push((format!("{lo}–{}", hi - 1), n));
        lo = hi;
    }
    out
}

async fn compare_page(
    state: &AppState,
    lang: Lang,
    caller: Caller,
    form: &CompareForm,
) -> Result<Response, ApiError> {
    let t = state.i18n().bundle(lang);
    let req = api::CompareRequest {
        a: form.a,
        b: form.b,
        sample_csv: Some(form.sample_csv.clone()).filter(|s| !s.trim().is_empty()),
        target: Some(form.target.trim().to_owned()).filter(|s| !s.is_empty()),
        bad_value: None,
    };
    let (cmp, errors) = match api::compare_models(state, &req).await {
        Ok(c) => (Some(c), Vec::new()),
        Err(ApiError::Validation(v)) => (None, v),
        Err(e) => return Err(e),
    };
    let csrf = caller.csrf.clone().unwrap_or_default();
    let fmt = |x: Option<f64>| x.map_or_else(|| "—".to_owned(), |v| format!("{v:.4}"));
    let content = html! {
        (nav(t, "models"))
        (errors_box(&errors))
        @if let Some(c) = &cmp {
            section.card data-testid="model-compare" {
                h2 { (t.get("risk.compare")) }
                table.table {
                    thead { tr { th {} th { "A: #" (c.a.id) " " (c.a.name) " v" (c.a.version) } th { "B: #" (c.b.id) " " (c.b.name) " v" (c.b.version) } } }
                    tbody {
                        tr { th { (t.get("risk.state")) } td { (t.get(&format!("risk.status.{}", c.a.status))) } td { (t.get(&format!("risk.status.{}", c.b.status))) } }
                        tr { th { (t.get("risk.dev_sample")) } td { (c.a.dev_rows.map(|r| r.to_string()).unwrap_or_default()) " / " (c.a.dev_bad.map(|r| r.to_string()).unwrap_or_default()) } td { (c.b.dev_rows.map(|r| r.to_string()).unwrap_or_default()) " / " (c.b.dev_bad.map(|r| r.to_string()).unwrap_or_default()) } }
                        tr { th { "AUC" } td data-testid="auc-a" { (fmt(c.a.auc)) } td data-testid="auc-b" { (fmt(c.b.auc)) } }
                        tr { th { "KS" } td { (fmt(c.a.ks)) } td { (fmt(c.b.ks)) } }
                        tr { th { "Gini" } td { (fmt(c.a.gini)) } td { (fmt(c.b.gini)) } }
                        tr { th { (t.get("risk.live_decisions")) } td { (c.a.live_scores.len()) } td { (c.b.live_scores.len()) } }
                    }
                }
            }
            div.grid {
                @for side in [&c.a, &c.b] {
                    section.card {
                        h3 { "#" (side.id) " " (side.name) }
                        p.muted { (t.get("risk.dev_distribution")) }
                        (chart::bars(&t.get("risk.dev_distribution"), &side.dev_score_bands.iter().map(|(u, n)| (u.map_or_else(|| "+∞".to_owned(), |u| format!("≤{u}")), *n as i64)).collect::<Vec<_>>()))
                        @if !side.live_scores.is_empty() {
                            p.muted { (t.get("risk.live_distribution")) }
                            (chart::bars(&t.get("risk.live_distribution"), &score_histogram(&side.live_scores)))
                        }
                        table.table { thead { tr { th { (t.get("risk.features")) } th.num { "IV" } th { (t.get("risk.bins")) } } }
                            tbody { @for f in &side.features { tr { td { code { (f.name) } } td.num { (fmt(f.iv)) } td { @for (l, p) in &f.bins { span.badge { (l) " " (p) } " " } } } } } }
                    }
                }
            }
        }
        section.card {
            h2 { (t.get("risk.compare.sample")) }
            p.muted { (t.get("risk.compare.sample.hint")) }
            form method="post" action="/risk/models/compare" {
                input type="hidden" name=(CSRF_FIELD) value=(csrf);
                input type="hidden" name="a" value=(form.a);
                input type="hidden" name="b" value=(form.b);
                div.field { label for="cmp-target" { (t.get("risk.compare.target")) } input #cmp-target name="target" value=(form.target); }
                textarea name="sample_csv" rows="8" style="width:100%;font-family:monospace" aria-label=(t.get("risk.compare.sample")) { (form.sample_csv) }
                button type="submit" { (t.get("risk.compare")) }
            }
        }
    };
    Ok(page(
        state,
        &ctx(lang, caller),
        "risk",
        &t.get("risk.compare"),
        content,
    )
    .into_response())
}

/// GET `/risk/models/compare?a=&b=`.
pub async fn compare(
    State(state): State<AppState>,
    lang: Lang,
    caller: Caller,
    Query(q): Query<CompareForm>,
) -> Result<Response, ApiError> {
    compare_page(&state, lang, caller, &q).await
}

/// POST `/risk/models/compare` (with a labelled sample).
pub async fn compare_sample(
    State(state): State<AppState>,
    lang: Lang,
    caller: Caller,
    Form(f): Form<CompareForm>,
) -> Result<Response, ApiError> {
    compare_page(&state, lang, caller, &f).await
}

// ------------------------------------------------------------------ rules

#[derive(Debug, Deserialize, Default)]
pub struct RulesForm {
    #[serde(default)]
    source: String,
    #[serde(default)]
    samples: String,
}

#[derive(Debug, Deserialize, Default)]
pub struct RulesAction {
    /// `test`, `save` or `enable` (form actions of the buttons); absent: check.
    #[serde(rename = "do")]
    act: Option<String>,
}

const SAMPLE_ROWS: &str = "app.amount,app.months,applicant.age,applicant.blacklisted,applicant.recent_applications,applicant.monthly_income\n30000,12,41,false,0,12000\n30000,12,17,false,0,5000\n80000,36,35,false,3,3000\n";

async fn rules_page(
    state: &AppState,
    lang: Lang,
    caller: Caller,
    form: &RulesForm,
    checked: Option<&[FieldError]>,
    tested: Option<&[svc::RuleTestRow]>,
) -> Result<Response, ApiError> {
    svc::ensure_defaults(state.store(), state.now_ms()).await?;
    let t = state.i18n().bundle(lang);
    let versions = state.store().risk_rule_sets().await?;
    let source = if form.source.is_empty() {
        versions
            .iter()
            .find(|v| v.active)
            .map(|v| v.source.clone())
            .unwrap_or_default()
    } else {
        form.source.clone()
    };
    let samples = if form.samples.is_empty() {
        SAMPLE_ROWS.to_owned()
    } else {
        form.samples.clone()
    };
    let csrf = caller.csrf.clone().unwrap_or_default();
    let fields = zhudai_risk::applicant::FIELDS;
    let content = html! {
        (nav(t, "policy_rules"))
        section.card {
            table.table data-testid="rule-set-table" {
                thead { tr { th { (t.get("risk.version")) } th { (t.get("risk.name")) } th { (t.get("risk.state")) } th { (t.get("risk.created")) } } }
                tbody { @for v in &versions { tr {
                    td { a href=(format!("/risk/policy-rules/{}", v.id)) { "v" (v.version) } }
                    td { (v.name) }
                    td { @if v.active { span.badge.badge-ok { (t.get("risk.enabled")) } } }
                    td { (shanghai(v.created_at_ms, false)) }
                } } }
            }
        }
        section.card {
            h2 { (t.get("risk.rules.edit")) }
            p.muted { (t.get("risk.rules.hint")) }
            details { summary { (t.get("risk.rules.fields")) }
                table.table { tbody { @for (f, ty) in fields { tr { td { code { (f) } } td { (ty) } } } } } }
            @if let Some(ps) = checked {
                @if ps.is_empty() { p.badge.badge-ok data-testid="rules-valid" { (t.get("risk.rules.valid")) } }
                @else {
                    div.field-error role="alert" data-testid="rule-problems" {
                        p { (t.get("risk.rules.problems")) }
                        ul { @for p in ps { li { code { (p.field) } " — " (p.message) } } }
                    }
                }
            }
            form method="post" action="/risk/policy-rules" {
                input type="hidden" name=(CSRF_FIELD) value=(csrf);
                textarea name="source" rows="24" style="width:100%;font-family:monospace" aria-label=(t.get("risk.rules.source")) data-testid="rules-source" { (source) }
                div.field { label for="rules-samples" { (t.get("risk.rules.samples")) }
                    textarea #rules-samples name="samples" rows="5" style="width:100%;font-family:monospace" { (samples) } }
                button type="submit" data-testid="rules-check" { (t.get("risk.rules.check")) }
                " " button.secondary type="submit" formaction="/risk/policy-rules?do=test" data-testid="rules-test" { (t.get("risk.rules.test")) }
                @if caller.can("risk.manage") {
                    " " button.secondary type="submit" formaction="/risk/policy-rules?do=save" data-testid="rules-save" { (t.get("risk.rules.save")) }
                    " " button type="submit" formaction="/risk/policy-rules?do=enable" data-testid="rules-enable" { (t.get("risk.rules.save_enable")) }
                }
            }
        }
        @if let Some(rows) = tested {
            section.card data-testid="rule-test" {
                h2 { (t.get("risk.rules.test_result")) }
                table.table { thead { tr { th { "#" } th.num { (t.get("risk.score")) } th { (t.get("risk.outcome")) } th { (t.get("risk.grade")) } th { (t.get("risk.rules.fired")) } th { (t.get("risk.rules.errors")) } } }
                    tbody { @for r in rows { tr data-row=(r.row) {
                        td { (r.row) }
                        td.num { (r.score.map(|s| s.to_string()).unwrap_or_default()) }
                        td { @if let Some(o) = &r.outcome { (outcome_badge(t, o)) } }
                        td { (r.grade.clone().unwrap_or_default()) }
                        td data-testid="fired" { (r.fired.join(", ")) }
                        td { (r.errors.join("; ")) @if let Some(e) = &r.invalid { span.field-error { (e) } } }
                    } } }
                }
            }
        }
    };
    Ok(page(
        state,
        &ctx(lang, caller),
        "risk",
        &t.get("risk.rules"),
        content,
    )
    .into_response())
}

/// GET `/risk/policy-rules`.
pub async fn rules(
    State(state): State<AppState>,
    lang: Lang,
    caller: Caller,
) -> Result<Response, ApiError> {
    rules_page(&state, lang, caller, &RulesForm::default(), None, None).await
}

/// POST `/risk/policy-rules[?do=test|save|enable]`: check, test on the samples, save as a new
/// version, or save and enable. A broken rule is never saved.
pub async fn rules_submit(
    State(state): State<AppState>,
    lang: Lang,
    caller: Caller,
    Query(q): Query<RulesAction>,
    Form(f): Form<RulesForm>,
) -> Result<Response, ApiError> {
    let problems = match svc::check_rules(&f.source) {
        Ok(_) => Vec::new(),
        Err(p) => p,
    };
    let act = q.act.as_deref().unwrap_or("check");
    if !problems.is_empty() {
        let mut r = rules_page(&state, lang, caller, &f, Some(&problems), None).await?;
        *r.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
        return Ok(r);
    }
    match act {
        "test" => {
            let rows = svc::test_rules(&state, &f.source, &f.samples).await?;
            rules_page(&state, lang, caller, &f, Some(&problems), Some(&rows)).await
        }
        "save" | "enable" => {
            if !caller.can("risk.manage") {
                return Err(ApiError::Forbidden(
                    "saving rules needs `risk.manage`".into(),
                ));
            }
            let (id, _) = svc::save_rules(&state, &caller, &f.source, act == "enable").await?;
            Ok(done(&format!("/risk/policy-rules/{id}")))
        }
        _ => rules_page(&state, lang, caller, &f, Some(&problems), None).await,
    }
}

/// GET `/risk/policy-rules/{id}`.
pub async fn rule_set(
    State(state): State<AppState>,
    lang: Lang,
    caller: Caller,
    Path(id): Path<i64>,
) -> Result<Response, ApiError> {
    let t = state.i18n().bundle(lang);
    let r = state
        .store()
        .risk_rule_set(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no rule set has id {id}")))?;
    let csrf = caller.csrf.clone().unwrap_or_default();
    let content = html! {
        (nav(t, "policy_rules"))
        section.card data-testid="rule-set" {
            h2 { (r.name) " v" (r.version) " " @if r.active { span.badge.badge-ok data-testid="rule-set-enabled" { (t.get("risk.enabled")) } } }
            p { (t.get("risk.digest")) ": " code { (r.digest) } }
            pre style="white-space:pre-wrap" { (r.source) }
            @if !r.active && caller.can("risk.manage") {
                form method="post" action=(format!("/risk/policy-rules/{id}/enable")) {
                    input type="hidden" name=(CSRF_FIELD) value=(csrf);
                    button type="submit" data-testid="rule-set-enable" { (t.get("risk.rules.enable")) }
                }
            }
        }
    };
    Ok(page(
        &state,
        &ctx(lang, caller),
        "risk",
        &t.get("risk.rules"),
        content,
    )
    .into_response())
}

/// POST `/risk/policy-rules/{id}/enable`.
pub async fn rule_set_enable(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> Result<Response, ApiError> {
    svc::enable_rules(&state, &caller, id).await?;
    Ok(done(&format!("/risk/policy-rules/{id}")))
}
