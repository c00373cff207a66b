//! Customer pages: the list with search (name, or exact ID / phone / card through blind
//! indexes), filters and paging; the new-customer form; the customer page with masked
//! fields, derived facts, duplicate flags, reveal-with-reason, edit form, enterprise
//! links and history. The same service functions as the API do the work.

use crate::api::audit::shanghai;
use crate::auth::{AuditNote, Caller, CSRF_FIELD};
use crate::customers::{self as svc, CustomerView, RelationView, Search};
use crate::error::{ApiError, FieldError};
use crate::state::AppState;
use crate::ui::i18n::{Bundle, Lang};
use crate::ui::layout::{page, Ctx};
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use maud::{html, Markup};
use serde::Deserialize;
use zhudai_domain::customer::CustomerInput;

const PAGE: i64 = 20;

#[derive(Debug, Deserialize, Default)]
pub struct ListQuery {
    #[serde(default)]
    q: String,
    /// `name` (default), `id_number`, `phone` or `bank_card`.
    #[serde(default)]
    by: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    page: Option<i64>,
}

fn err_for(errors: &[FieldError], field: &str) -> String {
    errors
        .iter()
        .filter(|e| e.field == field)
        .map(|e| e.message.clone())
        .collect::<Vec<_>>()
        .join("; ")
}

fn kind_label(t: &Bundle, kind: &str) -> String {
    t.get(&format!("customers.kind.{kind}"))
}

fn status_badge(t: &Bundle, status: &str) -> Markup {
    let class = match status {
        "active" => "badge badge-ok",
        "closed" => "badge",
        _ => "badge badge-bad",
    };
    html! { span class=(class) { (t.get(&format!("customers.status.{status}"))) } }
}

/// GET `/customers`.
pub async fn list(
    State(state): State<AppState>,
    lang: Lang,
    caller: Caller,
    Query(q): Query<ListQuery>,
) -> Result<Response, ApiError> {
    let t = state.i18n().bundle(lang);
    let page_no = q.page.unwrap_or(1).max(1);
    let term = q.q.trim().to_owned();
    let mut search = Search {
        kind: Some(q.kind.clone()),
        status: Some(q.status.clone()),
        offset: (page_no - 1) * PAGE,
        limit: PAGE,
        ..Default::default()
    };
    match q.by.as_str() {
        "id_number" => search.id_number = Some(term.clone()),
        "phone" => search.phone = Some(term.clone()),
        "bank_card" => search.bank_card = Some(term.clone()),
        _ => search.name = Some(term.clone()),
    }
    let mut clear_reads = Vec::new();
    let (rows, total, search_error) =
        match svc::search(&state, &caller, &search, &mut clear_reads).await {
            Ok((rows, total)) => (rows, total, None),
            Err(ApiError::Validation(errs)) => (
                Vec::new(),
                0,
                Some(
                    errs.into_iter()
                        .map(|e| e.message)
                        .collect::<Vec<_>>()
                        .join("; "),
                ),
            ),
            Err(e) => return Err(e),
        };
    let pages = (total + PAGE - 1) / PAGE;
    let link = |p: i64| {
        format!(
            "/customers?q={}&by={}&kind={}&status={}&page={p}",
            crate::auth::urlencode(&q.q),
            crate::auth::urlencode(&q.by),
            crate::auth::urlencode(&q.kind),
            crate::auth::urlencode(&q.status)
        )
    };
    let content = html! {
        section.card {
            form.filters method="get" action="/customers" data-testid="customer-search" {
                input name="q" value=(q.q) placeholder=(t.get("customers.search.placeholder")) aria-label=(t.get("customers.search.placeholder"));
                select name="by" aria-label=(t.get("customers.search.by")) {
                    @for (v, key) in [("name", "customers.field.name"), ("id_number", "customers.field.id_number"), ("phone", "customers.field.phone"), ("bank_card", "customers.field.bank_card")] {
                        option value=(v) selected[q.by == v] { (t.get(key)) }
                    }
                }
                select name="kind" aria-label=(t.get("customers.field.kind")) {
                    option value="" { (t.get("customers.filter.any_kind")) }
                    @for k in ["individual", "enterprise"] { option value=(k) selected[q.kind == k] { (kind_label(t, k)) } }
                }
                select name="status" aria-label=(t.get("customers.field.status")) {
                    option value="" { (t.get("customers.filter.any_status")) }
                    @for s in ["active", "closed", "erased"] { option value=(s) selected[q.status == s] { (t.get(&format!("customers.status.{s}"))) } }
                }
                button type="submit" { (t.get("customers.search.go")) }
                @if caller.can("customer.create") {
                    a.button href="/customers/new" data-testid="new-customer" { (t.get("customers.new")) }
                }
                @if caller.can("customer.import") {
                    a.button.secondary href="/customers/import" { (t.get("customers.import")) }
                }
            }
            @if let Some(e) = &search_error { p.field-error role="alert" data-testid="search-error" { (e) } }
            p.muted { (t.get("customers.search.hint")) }
            table.table data-testid="customer-table" {
                thead { tr {
                    th { (t.get("customers.field.name")) } th { (t.get("customers.field.kind")) }
                    th { (t.get("customers.field.id_number")) } th { (t.get("customers.field.phone")) }
                    th { (t.get("customers.field.region")) } th { (t.get("customers.field.status")) } th {}
                } }
                tbody { @for c in &rows { tr {
                    td { a href=(format!("/customers/{}", c.id)) { (c.name) } }
                    td { (kind_label(t, &c.kind)) }
                    td { code { (c.id_number.clone().unwrap_or_default()) } }
                    td { (c.phone.clone().unwrap_or_default()) }
                    td { (c.province.clone().unwrap_or_default()) }
                    td { (status_badge(t, &c.status)) }
                    td { @if c.duplicate { span.badge.badge-warn title=(t.get("customers.duplicate.hint")) { (t.get("customers.duplicate")) } } }
                } } }
            }
            @if rows.is_empty() { p.muted data-testid="no-customers" { (t.get("customers.none")) } }
            p.muted {
                (t.get("customers.total")) " " (total)
                @if pages > 1 {
                    " · "
                    @if page_no > 1 { a href=(link(page_no - 1)) { (t.get("customers.prev")) } " " }
                    (page_no) " / " (pages)
                    @if page_no < pages { " " a href=(link(page_no + 1)) { (t.get("customers.next")) } }
                }
            }
        }
    };
    let ctx = Ctx {
        lang,
        caller: Some(caller),
    };
    let resp = page(
        &state,
        &ctx,
        "customers",
        &t.get("customers.title"),
        content,
    )
    .into_response();
    Ok(svc::with_clear_read_audit(resp, clear_reads))
}

#[derive(Debug, Deserialize, Default, Clone)]
pub struct CustomerForm {
    #[serde(default)]
    kind: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    id_number: String,
    #[serde(default)]
    phone: String,
    #[serde(default)]
    bank_card: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    address: String,
    #[serde(default)]
    monthly_income: String,
    #[serde(default)]
    version: i64,
    #[serde(default)]
    status: String,
    #[serde(rename = "_csrf", default)]
    _csrf: String,
}

impl CustomerForm {
    fn input(&self) -> CustomerInput {
        let o = |s: &str| Some(s.to_owned());
        CustomerInput {
            kind: o(&self.kind),
            name: o(&self.name),
            id_number: o(&self.id_number),
            phone: o(&self.phone),
            bank_card: o(&self.bank_card),
            email: o(&self.email),
            address: o(&self.address),
            monthly_income: o(&self.monthly_income),
        }
    }
}

fn field(t: &Bundle, name: &str, value: &str, errors: &[FieldError], attrs: &str) -> Markup {
    let id = format!("cf-{name}");
    let e = err_for(errors, name);
    html! {
        div.field {
            label for=(id) { (t.get(&format!("customers.field.{name}"))) }
            input id=(id) name=(name) value=(value) inputmode=(attrs) aria-invalid=(if e.is_empty() { "false" } else { "true" });
            span.field-error data-testid=(format!("error-{name}")) { (e) }
        }
    }
}

fn form_page(
    state: &AppState,
    lang: Lang,
    caller: Caller,
    form: &CustomerForm,
    errors: &[FieldError],
    general: Option<String>,
) -> Response {
    let t = state.i18n().bundle(lang);
    let csrf = caller.csrf.clone().unwrap_or_default();
    let content = html! {
        section.card data-testid="customer-form" {
            h2 { (t.get("customers.new")) }
            @if !errors.is_empty() || general.is_some() {
                p.field-error role="alert" data-testid="form-error" { (general.clone().unwrap_or_else(|| t.get("customers.fix_errors"))) }
            }
            form method="post" action="/customers/new" {
                input type="hidden" name=(CSRF_FIELD) value=(csrf);
                div.field {
                    label for="cf-kind" { (t.get("customers.field.kind")) }
                    select #cf-kind name="kind" {
                        @for k in ["individual", "enterprise"] { option value=(k) selected[form.kind == k] { (kind_label(t, k)) } }
                    }
                    span.field-error { (err_for(errors, "kind")) }
                }
                (field(t, "name", &form.name, errors, "text"))
                (field(t, "id_number", &form.id_number, errors, "text"))
                p.muted { (t.get("customers.id_number.hint")) }
                (field(t, "phone", &form.phone, errors, "tel"))
                (field(t, "bank_card", &form.bank_card, errors, "numeric"))
                (field(t, "email", &form.email, errors, "email"))
                (field(t, "address", &form.address, errors, "text"))
                (field(t, "monthly_income", &form.monthly_income, errors, "decimal"))
                button type="submit" data-testid="create-customer" { (t.get("customers.create")) }
            }
        }
    };
    let ctx = Ctx {
        lang,
        caller: Some(caller),
    };
    page(state, &ctx, "customers", &t.get("customers.new"), content).into_response()
}

/// GET `/customers/new`.
pub async fn new_form(State(state): State<AppState>, lang: Lang, caller: Caller) -> Response {
    let form = CustomerForm {
        kind: "individual".into(),
        ..Default::default()
    };
    form_page(&state, lang, caller, &form, &[], None)
}

/// POST `/customers/new`.
pub async fn create(
    State(state): State<AppState>,
    lang: Lang,
    caller: Caller,
    Form(form): Form<CustomerForm>,
) -> Result<Response, ApiError> {
    match svc::create(&state, &caller, &form.input()).await {
        Ok(c) => {
            let mut r = Redirect::to(&format!("/customers/{}?created=1", c.id)).into_response();
            r.extensions_mut().insert(AuditNote {
                recorded: true,
                ..Default::default()
            });
            Ok(r)
        }
        Err(ApiError::Validation(errors)) => {
            let mut r = form_page(&state, lang, caller, &form, &errors, None);
            *r.status_mut() = axum::http::StatusCode::UNPROCESSABLE_ENTITY;
            Ok(r)
        }
        Err(ApiError::Conflict(message)) => {
            let mut r = form_page(&state, lang, caller, &form, &[], Some(message));
            *r.status_mut() = axum::http::StatusCode::CONFLICT;
            Ok(r)
        }
        Err(e) => Err(e),
    }
}

#[derive(Debug, Deserialize, Default)]
pub struct DetailQuery {
    created: Option<String>,
    updated: Option<String>,
}

fn relation_row(t: &Bundle, r: &RelationView, this: i64) -> Markup {
    let (other_id, other_name) = if r.enterprise_id == this {
        (r.person_id, r.person_name.clone())
    } else {
        (r.enterprise_id, r.enterprise_name.clone())
    };
    html! { tr {
        td { (t.get(&format!("customers.role.{}", r.role))) }
        td { @match other_name { Some(n) => a href=(format!("/customers/{other_id}")) { (n) }, None => span.muted { (t.get("customers.outside_scope")) } } }
        td.num { @if let Some(bp) = r.share_bp { (format!("{}.{:02} %", bp / 100, bp % 100)) } }
    } }
}

#[allow(clippy::too_many_arguments)]
async fn detail_page(
    state: &AppState,
    lang: Lang,
    caller: Caller,
    id: i64,
    notice: Option<String>,
    revealed: Option<(String, String)>,
    edit: Option<(&CustomerForm, &[FieldError], Option<String>)>,
) -> Result<Response, ApiError> {
    let t = state.i18n().bundle(lang);
    let (row, scope) = svc::load_in_scope(state, &caller, id).await?;
    let mut clear_reads = Vec::new();
    let c: CustomerView = svc::view(state, &caller, &scope, &row, true, &mut clear_reads).await?;
    let relations = svc::relations(state, &scope, id).await?;
    let history = svc::history(state, id, 50).await?;
    // Materials, verification and consents (documents and privacy modules).
    let section_ctx = Ctx {
        lang,
        caller: Some(caller.clone()),
    };
    let documents = crate::ui::documents::documents_section(state, &section_ctx, &row).await;
    let consents = crate::ui::privacy::consents_section(state, &section_ctx, &row).await;
    let csrf = caller.csrf.clone().unwrap_or_default();
    let shown = |f: &str, v: &Option<String>| -> Markup {
        match (&revealed, v) {
            (Some((rf, rv)), _) if rf == f => {
                html! { strong data-testid=(format!("revealed-{f}")) { (rv) } }
            }
            (_, Some(v)) => html! { span data-testid=(format!("value-{f}")) { (v) } },
            (_, None) => html! { span.muted { "—" } },
        }
    };
    let can_reveal = caller.can("customer.reveal") && c.status != "erased";
    let edit_form = edit
        .as_ref()
        .map(|(f, _, _)| (*f).clone())
        .unwrap_or_else(|| CustomerForm {
            name: c.name.clone(),
            version: c.version,
            status: c.status.clone(),
            ..Default::default()
        });
    let (edit_errors, edit_general) = edit.map(|(_, e, g)| (e.to_vec(), g)).unwrap_or_default();
    let content = html! {
        @if let Some(n) = &notice { section.card.notice data-testid="notice" { p { (n) } } }
        @if !c.duplicates.is_empty() {
            section.card.notice data-testid="duplicate-flag" {
                h2 { (t.get("customers.duplicate.title")) }
                ul { @for d in &c.duplicates { li {
                    (t.get(&format!("customers.field.{}", d.field))) ": "
                    @for other in &d.visible_ids { a href=(format!("/customers/{other}")) { "#" (other) } " " }
                    @if d.outside_scope > 0 { span.muted { (t.get("customers.duplicate.outside")) " " (d.outside_scope) } }
                } } }
            }
        }
        div.grid {
            section.card data-testid="customer-facts" {
                h2 { (c.name) " " (status_badge(t, &c.status)) }
                dl.facts {
                    dt { (t.get("customers.field.kind")) } dd { (kind_label(t, &c.kind)) }
                    dt { (t.get("customers.field.id_number")) } dd { code { (shown("id_number", &c.id_number)) } " " span.muted { (t.get(&format!("customers.id_kind.{}", c.id_kind))) } }
                    dt { (t.get("customers.field.phone")) } dd { (shown("phone", &c.phone)) }
                    dt { (t.get("customers.field.bank_card")) } dd { (shown("bank_card", &c.bank_card)) }
                    dt { (t.get("customers.field.monthly_income")) } dd { (shown("monthly_income", &c.monthly_income)) }
                    dt { (t.get("customers.field.email")) } dd { (shown("email", &c.email)) }
                    dt { (t.get("customers.field.address")) } dd { (shown("address", &c.address)) }
                    @if c.kind == "individual" {
                        dt { (t.get("customers.field.gender")) } dd { @if let Some(g) = &c.gender { (t.get(&format!("customers.gender.{g}"))) } }
                        dt { (t.get("customers.field.age")) } dd data-testid="age" { @if let Some(a) = c.age { (a) } }
                    }
                    dt { (t.get("customers.field.region")) } dd { (c.province.clone().unwrap_or_default()) " " span.muted { (c.region_code.clone().unwrap_or_default()) } }
                    dt { (t.get("customers.created_at")) } dd { (shanghai(c.created_at_ms, false)) }
                }
                p.muted { (t.get("customers.derived.hint")) }
            }
            @if can_reveal {
                section.card data-testid="reveal" {
                    h2 { (t.get("customers.reveal.title")) }
                    p.muted { (t.get("customers.reveal.hint")) }
                    form method="post" action=(format!("/customers/{id}/reveal")) {
                        input type="hidden" name=(CSRF_FIELD) value=(csrf);
                        div.field { label for="rv-field" { (t.get("customers.reveal.field")) }
                            select #rv-field name="field" { @for f in ["id_number", "phone", "bank_card", "monthly_income"] { option value=(f) { (t.get(&format!("customers.field.{f}"))) } } } }
                        div.field { label for="rv-reason" { (t.get("customers.reveal.reason")) } input #rv-reason name="reason" required minlength="4"; }
                        button type="submit" { (t.get("customers.reveal.go")) }
                    }
                }
            }
        }
        @if caller.can("customer.update") && c.status != "erased" {
            section.card data-testid="customer-edit" {
                h2 { (t.get("customers.edit")) }
                p.muted { (t.get("customers.edit.hint")) }
                @if !edit_errors.is_empty() || edit_general.is_some() {
                    p.field-error role="alert" data-testid="edit-error" { (edit_general.clone().unwrap_or_else(|| t.get("customers.fix_errors"))) }
                }
                form method="post" action=(format!("/customers/{id}")) {
                    input type="hidden" name=(CSRF_FIELD) value=(csrf);
                    input type="hidden" name="version" value=(edit_form.version);
                    (field(t, "name", &edit_form.name, &edit_errors, "text"))
                    (field(t, "phone", &edit_form.phone, &edit_errors, "tel"))
                    (field(t, "bank_card", &edit_form.bank_card, &edit_errors, "numeric"))
                    (field(t, "email", &edit_form.email, &edit_errors, "email"))
                    (field(t, "address", &edit_form.address, &edit_errors, "text"))
                    @if c.kind == "individual" { (field(t, "monthly_income", &edit_form.monthly_income, &edit_errors, "decimal")) }
                    div.field { label for="ce-status" { (t.get("customers.field.status")) }
                        select #ce-status name="status" { @for s in ["active", "closed"] { option value=(s) selected[edit_form.status == s] { (t.get(&format!("customers.status.{s}"))) } } } }
                    button type="submit" data-testid="save-customer" { (t.get("customers.save")) }
                }
            }
        }
        @if c.kind == "enterprise" || !relations.is_empty() {
            section.card data-testid="relations" {
                h2 { (t.get("customers.relations")) }
                table.table { tbody { @for r in &relations { (relation_row(t, r, id)) } } }
                @if relations.is_empty() { p.muted { (t.get("customers.relations.none")) } }
                @if c.kind == "enterprise" && caller.can("customer.update") {
                    form.inline method="post" action=(format!("/customers/{id}/relations")) {
                        input type="hidden" name=(CSRF_FIELD) value=(csrf);
                        input name="person_id" inputmode="numeric" placeholder=(t.get("customers.relations.person_id")) aria-label=(t.get("customers.relations.person_id")) required;
                        select name="role" aria-label=(t.get("customers.relations.role")) { @for r in ["legal_representative", "beneficial_owner", "actual_controller", "shareholder"] { option value=(r) { (t.get(&format!("customers.role.{r}"))) } } }
                        input name="share_bp" inputmode="numeric" placeholder=(t.get("customers.relations.share_bp")) aria-label=(t.get("customers.relations.share_bp"));
                        button type="submit" { (t.get("customers.relations.add")) }
                    }
                }
            }
        }
        (documents)
        (consents)
        section.card data-testid="history" {
            h2 { (t.get("customers.history")) }
            table.table {
                thead { tr { th { (t.get("customers.history.at")) } th { (t.get("customers.history.actor")) } th { (t.get("customers.history.action")) } th { (t.get("customers.history.detail")) } } }
                tbody { @for r in &history { tr {
                    td { (shanghai(r.at_ms, false)) }
                    td { (r.actor.clone().unwrap_or_default()) }
                    td { code { (r.action) } }
                    td { (r.reason.clone().unwrap_or_default()) }
                } } }
            }
        }
    };
    let title = c.name.clone();
    let ctx = Ctx {
        lang,
        caller: Some(caller),
    };
    let resp = page(state, &ctx, "customers", &title, content).into_response();
    Ok(svc::with_clear_read_audit(resp, clear_reads))
}

/// GET `/customers/{id}`.
pub async fn detail(
    State(state): State<AppState>,
    lang: Lang,
    caller: Caller,
    Path(id): Path<i64>,
    Query(q): Query<DetailQuery>,
) -> Result<Response, ApiError> {
    let t = state.i18n().bundle(lang);
    let notice = if q.created.is_some() {
        Some(t.get("customers.created"))
    } else if q.updated.is_some() {
        Some(t.get("customers.updated"))
    } else {
        None
    };
    detail_page(&state, lang, caller, id, notice, None, None).await
}

/// POST `/customers/{id}`: the edit form. Empty optional fields are left unchanged.
pub async fn update(
    State(state): State<AppState>,
    lang: Lang,
    caller: Caller,
    Path(id): Path<i64>,
    Form(form): Form<CustomerForm>,
) -> Result<Response, ApiError> {
    let keep_or = |s: &str| (!s.trim().is_empty()).then(|| s.to_owned());
    let changes = CustomerInput {
        kind: None,
        name: Some(form.name.clone()),
        id_number: None,
        phone: keep_or(&form.phone),
        bank_card: keep_or(&form.bank_card),
        email: keep_or(&form.email),
        address: keep_or(&form.address),
        monthly_income: keep_or(&form.monthly_income),
    };
    let status = (!form.status.is_empty()).then_some(form.status.as_str());
    match svc::update(&state, &caller, id, form.version, &changes, status).await {
        Ok(()) => {
            let mut r = Redirect::to(&format!("/customers/{id}?updated=1")).into_response();
            r.extensions_mut().insert(AuditNote {
                recorded: true,
                ..Default::default()
            });
            Ok(r)
        }
        Err(ApiError::Validation(errors)) => {
            let mut r = detail_page(
                &state,
                lang,
                caller,
                id,
                None,
                None,
                Some((&form, &errors, None)),
            )
            .await?;
            *r.status_mut() = axum::http::StatusCode::UNPROCESSABLE_ENTITY;
            Ok(r)
        }
        Err(ApiError::Conflict(m)) => {
            let mut r = detail_page(
                &state,
                lang,
                caller,
                id,
                None,
                None,
                Some((&form, &[], Some(m))),
            )
            .await?;
            *r.status_mut() = axum::http::StatusCode::CONFLICT;
            Ok(r)
        }
        Err(e) => Err(e),
    }
}

#[derive(Debug, Deserialize)]
pub struct RevealForm {
    field: String,
    reason: String,
}

/// POST `/customers/{id}/reveal`.
pub async fn reveal(
    State(state): State<AppState>,
    lang: Lang,
    caller: Caller,
    Path(id): Path<i64>,
    Form(form): Form<RevealForm>,
) -> Result<Response, ApiError> {
    let t = state.i18n().bundle(lang);
    match svc::reveal(&state, &caller, id, &form.field, &form.reason).await {
        Ok(value) => {
            let mut r = detail_page(
                &state,
                lang,
                caller,
                id,
                Some(t.get("customers.reveal.done")),
                Some((form.field.clone(), value)),
                None,
            )
            .await?;
            r.extensions_mut().insert(AuditNote {
                recorded: true,
                ..Default::default()
            });
            Ok(r)
        }
        Err(ApiError::Validation(errors)) => {
            let msg = errors
                .into_iter()
                .map(|e| e.message)
                .collect::<Vec<_>>()
                .join("; ");
            detail_page(&state, lang, caller, id, Some(msg), None, None).await
        }
        Err(ApiError::TooManyRequests(m)) => {
            detail_page(&state, lang, caller, id, Some(m), None, None).await
        }
        Err(e) => Err(e),
    }
}

#[derive(Debug, Deserialize)]
pub struct RelationForm {
    person_id: String,
    role: String,
    #[serde(default)]
    share_bp: String,
}

/// POST `/customers/{id}/relations`.
pub async fn add_relation(
    State(state): State<AppState>,
    lang: Lang,
    caller: Caller,
    Path(id): Path<i64>,
    Form(form): Form<RelationForm>,
) -> Result<Response, ApiError> {
    let t = state.i18n().bundle(lang);
    let person: Option<i64> = form.person_id.trim().parse().ok();
    let share: Result<Option<i64>, _> = match form.share_bp.trim() {
        "" => Ok(None),
        s => s.parse().map(Some),
    };
    let result = match (person, share) {
        (Some(p), Ok(bp)) => svc::add_relation(&state, &caller, id, p, &form.role, bp).await,
        _ => Err(ApiError::field(
            "person_id",
            "invalid",
            t.get("customers.relations.bad_number"),
        )),
    };
    match result {
        Ok(()) => {
            let mut r = Redirect::to(&format!("/customers/{id}?updated=1")).into_response();
            r.extensions_mut().insert(AuditNote {
                recorded: true,
                ..Default::default()
            });
            Ok(r)
        }
        Err(ApiError::Validation(errors)) => {
            let msg = errors
                .into_iter()
                .map(|e| e.message)
                .collect::<Vec<_>>()
                .join("; ");
            detail_page(&state, lang, caller, id, Some(msg), None, None).await
        }
        Err(ApiError::Conflict(m)) => {
            detail_page(&state, lang, caller, id, Some(m), None, None).await
        }
        Err(e) => Err(e),
    }
}
