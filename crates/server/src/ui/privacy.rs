//! PIPL in the UI: the consents section of a customer (record, withdraw) and the
//! data-subject requests list with deadlines (`/privacy/requests`).

use crate::api::privacy::list;
use crate::auth::{Caller, CSRF_FIELD};
use crate::customer_docs::{self as docs, RequestAction};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::ui::documents::{back, flash, Flash};
use crate::ui::i18n::Lang;
use crate::ui::layout::{page, Ctx};
use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::Form;
use chrono::TimeZone;
use maud::{html, Markup};
use serde::Deserialize;
use zhudai_domain::privacy::{Channel, ConsentInput, RequestKind, KNOWN_PURPOSES};
use zhudai_store::customers::CustomerRow;

fn when(ms: i64) -> String {
    chrono::FixedOffset::east_opt(8 * 3600)
        .and_then(|tz| tz.timestamp_millis_opt(ms).single())
        .map(|t| t.format("%Y-%m-%d %H:%M").to_string())
        .unwrap_or_default()
}

/// The consents section of a customer page: every consent, in force or withdrawn, and
/// the forms to record and withdraw.
pub async fn consents_section(state: &AppState, ctx: &Ctx, customer: &CustomerRow) -> Markup {
    let t = state.i18n().bundle(ctx.lang);
    let Some(caller) = &ctx.caller else {
        return html! {};
    };
    let consents = match state.store().consents_of_customer(customer.id).await {
        Ok(c) => c,
        Err(e) => return html! { section.card { p.field-error { (e.to_string()) } } },
    };
    let now = state.now_ms();
    let csrf = caller.csrf.clone().unwrap_or_default();
    let manage = caller.can("consent.manage") && customer.status != "erased";
    html! {
        section.card data-testid="consents-section" {
            h2 { (t.get("consent.title")) }
            @if consents.is_empty() { p.muted { (t.get("consent.none")) } } @else {
                table.table data-testid="consent-table" {
                    thead { tr {
                        th { (t.get("consent.purpose")) } th { (t.get("consent.recipients")) } th { (t.get("consent.policy")) }
                        th { (t.get("consent.channel")) } th { (t.get("consent.given")) } th { (t.get("consent.state")) } th {}
                    } }
                    tbody { @for c in &consents {
                        @let v = docs::consent_view(c.clone(), now);
                        tr data-consent-id=(v.id) {
                            td { code { (v.purpose) } }
                            td { @if v.recipients.is_empty() { span.muted { (t.get("consent.own_use")) } } @for r in &v.recipients { span.badge { (r) } " " } }
                            td { (v.policy_version) }
                            td { (t.get(&format!("channel.{}", v.channel))) }
                            td { (when(v.given_at_ms)) }
                            td { @if v.active { span.badge.badge-ok { (t.get("consent.active")) } } @else {
                                span.badge.badge-bad { (t.get("consent.withdrawn")) } " " span.muted { (v.withdrawn_at_ms.map(when).unwrap_or_default()) } } }
                            td { @if manage && v.withdrawn_at_ms.is_none() {
                                form.inline method="post" action=(format!("/customers/{}/consents/{}/withdraw", customer.id, v.id)) data-confirm=(t.get("consent.withdraw.confirm")) {
                                    input type="hidden" name=(CSRF_FIELD) value=(csrf);
                                    select name="channel" { @for ch in Channel::ALL { option value=(ch.as_str()) { (t.get(&format!("channel.{}", ch.as_str()))) } } }
                                    " " button type="submit" { (t.get("consent.withdraw")) }
                                }
                            } }
                        }
                    } }
                }
            }
            @if manage {
                h3 { (t.get("consent.record")) }
                form method="post" action=(format!("/customers/{}/consents", customer.id)) data-testid="consent-form" {
                    input type="hidden" name=(CSRF_FIELD) value=(csrf);
                    label { (t.get("consent.purpose")) " "
                        input name="purpose" list="purposes" required;
                        datalist id="purposes" { @for p in KNOWN_PURPOSES { option value=(p) {} } } }
                    " " label { (t.get("consent.recipients")) " " input name="recipients" placeholder="bank_a, trust_b"; }
                    " " label { (t.get("consent.policy")) " " input name="policy_version" required size="8"; }
                    " " label { (t.get("consent.channel")) " "
                        select name="channel" { @for ch in Channel::ALL { option value=(ch.as_str()) { (t.get(&format!("channel.{}", ch.as_str()))) } } } }
                    " " button type="submit" { (t.get("consent.record.go")) }
                }
            }
            @if caller.can("consent.manage") && customer.status != "erased" {
                h3 { (t.get("privacy.new")) }
                form method="post" action="/privacy/requests" data-testid="request-form" {
                    input type="hidden" name=(CSRF_FIELD) value=(csrf);
                    input type="hidden" name="customer_id" value=(customer.id);
                    select name="kind" { @for k in RequestKind::ALL { option value=(k.as_str()) { (t.get(&format!("privacy.kind.{}", k.as_str()))) } } }
                    " " select name="channel" { @for ch in Channel::ALL { option value=(ch.as_str()) { (t.get(&format!("channel.{}", ch.as_str()))) } } }
                    " " input name="details" placeholder=(t.get("privacy.details")) size="40";
                    " " button type="submit" { (t.get("privacy.new.go")) }
                }
            }
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct ConsentForm {
    #[serde(default)]
    purpose: String,
    #[serde(default)]
    recipients: String,
    #[serde(default)]
    policy_version: String,
    #[serde(default)]
    channel: String,
}

/// POST `/customers/{id}/consents`.
pub async fn consent_submit(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
    Form(f): Form<ConsentForm>,
) -> Response {
    let path = format!("/customers/{id}/documents");
    let result = async {
        let customer = docs::customer_in_scope(&state, &caller, id).await?;
        let input = ConsentInput {
            purpose: Some(f.purpose),
            recipients: f
                .recipients
                .split([',', '，', ' '])
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
            policy_version: Some(f.policy_version),
            channel: Some(f.channel),
            given_at_ms: None,
            evidence_document_id: None,
        };
        docs::consent_record(&state, &caller, &customer, &input).await
    }
    .await;
    finish(
        &path,
        result.map(|(v, n)| (format!("#{} {}", v.id, v.purpose), n)),
    )
}

#[derive(Debug, Deserialize)]
pub struct WithdrawForm {
    #[serde(default)]
    channel: String,
}

/// POST `/customers/{id}/consents/{cid}/withdraw`.
pub async fn withdraw_submit(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, cid)): Path<(i64, i64)>,
    Form(f): Form<WithdrawForm>,
) -> Response {
    let path = format!("/customers/{id}/documents");
    let result = async {
        let customer = docs::customer_in_scope(&state, &caller, id).await?;
        docs::consent_withdraw(&state, &caller, &customer, cid, Some(&f.channel), None).await
    }
    .await;
    finish(
        &path,
        result.map(|(v, n)| (format!("#{} {}", v.id, v.purpose), n)),
    )
}

fn finish(path: &str, result: ApiResult<(String, crate::auth::AuditNote)>) -> Response {
    match result {
        Ok((msg, note)) => {
            let mut r = back(path, Ok(msg));
            r.extensions_mut().insert(note);
            r
        }
        Err(e) => back(path, Err(e)),
    }
}

#[derive(Debug, Deserialize, Default)]
pub struct RequestsQuery {
    #[serde(default)]
    all: Option<String>,
    ok: Option<String>,
    error: Option<String>,
}

/// GET `/privacy/requests`: requests with deadlines (open first, earliest due first).
pub async fn requests_page(
    State(state): State<AppState>,
    lang: Lang,
    caller: Caller,
    Query(q): Query<RequestsQuery>,
) -> ApiResult<Markup> {
    let t = state.i18n().bundle(lang);
    let open_only = q.all.is_none();
    let requests = list(&state, &caller, open_only, None).await?;
    let overdue = requests.iter().filter(|r| r.overdue).count();
    let csrf = caller.csrf.clone().unwrap_or_default();
    let handle = caller.can("privacy.request.handle");
    let content = html! {
        (flash(&Flash { ok: q.ok.clone(), error: q.error.clone() }))
        section.card {
            p {
                (t.get("privacy.deadline_hint")) " " strong { (state.settings().privacy_request_days) } " " (t.get("privacy.days"))
                " · " span class=(if overdue > 0 { "badge badge-bad" } else { "badge badge-ok" }) data-testid="overdue-count" { (t.get("privacy.overdue")) " " (overdue) }
                " · " @if open_only { a href="/privacy/requests?all=1" { (t.get("privacy.show_all")) } } @else { a href="/privacy/requests" { (t.get("privacy.show_open")) } }
            }
            @if requests.is_empty() { p.muted { (t.get("privacy.none")) } } @else {
                table.table data-testid="request-table" {
                    thead { tr {
                        th { "#" } th { (t.get("privacy.customer")) } th { (t.get("privacy.kind")) } th { (t.get("privacy.status")) }
                        th { (t.get("privacy.received")) } th { (t.get("privacy.due")) } th { (t.get("privacy.details")) } th {}
                    } }
                    tbody { @for r in &requests { tr data-request-id=(r.id) {
                        td { (r.id) }
                        td { a href=(format!("/customers/{}/documents", r.customer_id)) { "#" (r.customer_id) } }
                        td { (t.get(&format!("privacy.kind.{}", r.kind))) }
                        td { span.badge { (t.get(&format!("privacy.status.{}", r.status))) }
                             @if let Some(res) = &r.resolution { br; span.muted { (res) } } }
                        td { (r.received_on) }
                        td { (r.due_on) " "
                            @if r.overdue { span.badge.badge-bad data-testid="overdue" { (t.get("privacy.overdue")) } }
                            @else if !matches!(r.status.as_str(), "completed" | "refused") { span.muted { (r.days_left) " " (t.get("privacy.days")) } } }
                        td { (r.details.clone().unwrap_or_default())
                             @if let Some(u) = &r.customer_edit_url { br; a href=(u) { (t.get("privacy.edit_customer")) } } }
                        td { @if handle && matches!(r.status.as_str(), "open" | "in_progress") {
                            @if r.kind == "access" { a href=(format!("/api/v1/privacy/requests/{}/export", r.id)) { (t.get("privacy.export")) } br; }
                            form.inline method="post" action=(format!("/privacy/requests/{}/start", r.id)) {
                                input type="hidden" name=(CSRF_FIELD) value=(csrf);
                                @if r.status == "open" { button type="submit" { (t.get("privacy.start")) } }
                            }
                            form.inline method="post" action=(format!("/privacy/requests/{}/complete", r.id)) data-confirm=(if r.kind == "deletion" { t.get("privacy.erase.confirm") } else { t.get("privacy.complete") }) {
                                input type="hidden" name=(CSRF_FIELD) value=(csrf);
                                button type="submit" {
                                    (if r.kind == "deletion" { t.get("privacy.erase") } else { t.get("privacy.complete") }) }
                            }
                            form.inline method="post" action=(format!("/privacy/requests/{}/refuse", r.id)) {
                                input type="hidden" name=(CSRF_FIELD) value=(csrf);
                                input name="resolution" placeholder=(t.get("privacy.reason")) size="16";
                                button type="submit" { (t.get("privacy.refuse")) }
                            }
                        } }
                    } } }
                }
            }
        }
    };
    let ctx = Ctx {
        lang,
        caller: Some(caller),
    };
    Ok(page(
        &state,
        &ctx,
        "customers",
        &t.get("privacy.title"),
        content,
    ))
}

#[derive(Debug, Deserialize)]
pub struct NewRequestForm {
    customer_id: i64,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    channel: String,
    #[serde(default)]
    details: String,
}

/// POST `/privacy/requests` (from a customer's page).
pub async fn request_submit(
    State(state): State<AppState>,
    caller: Caller,
    Form(f): Form<NewRequestForm>,
) -> Response {
    let path = format!("/customers/{}/documents", f.customer_id);
    let result = async {
        let customer = docs::customer_in_scope(&state, &caller, f.customer_id).await?;
        docs::request_create(
            &state,
            &caller,
            &customer,
            Some(&f.kind),
            Some(&f.channel),
            Some(&f.details),
        )
        .await
    }
    .await;
    finish(
        &path,
        result.map(|(v, n)| (format!("#{} {} → {}", v.id, v.kind, v.due_on), n)),
    )
}

#[derive(Debug, Deserialize)]
pub struct ActForm {
    #[serde(default)]
    resolution: String,
}

/// POST `/privacy/requests/{id}/{action}` (`start`, `complete`, `refuse`).
pub async fn act_submit(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, action)): Path<(i64, String)>,
    Form(f): Form<ActForm>,
) -> Response {
    let action = match action.as_str() {
        "start" => RequestAction::Start,
        "complete" => RequestAction::Complete,
        "refuse" => RequestAction::Refuse,
        _ => {
            return back(
                "/privacy/requests",
                Err(ApiError::NotFound("unknown action".into())),
            )
        }
    };
    let result = docs::request_act(&state, &caller, id, action, Some(&f.resolution)).await;
    finish(
        "/privacy/requests",
        result.map(|(v, n)| (format!("#{} {}", v.id, v.status), n)),
    )
}
