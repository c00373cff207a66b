//! Products and pricing pages (issue #5): the product list, a product's versions, fees
//! and cap check, the create / new-version form (the cap refusal shown as a field
//! message), and the quote calculator with its schedule, 综合融资成本明示表 and chart.
//!
//! Every write goes through the same functions as the API (`api::products`), so the rules
//! and the audit are the same.

use crate::api::products::{
    self as api, EligibilityInput, FeeInput, NewProductRequest, NewVersionRequest, QuoteInput,
    VersionInput,
};
use crate::auth::{AuditNote, Caller, CSRF_FIELD};
use crate::error::{ApiError, FieldError};
use crate::state::AppState;
use crate::ui::chart;
use crate::ui::i18n::{Bundle, Lang};
use crate::ui::layout::{page, Ctx};
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{html, Markup};
use serde::Deserialize;
use zhudai_domain::product::{
    collector_code, fee_code, ProductSpec, ProductStatus, MATERIAL_TYPES,
};
use zhudai_domain::schedule::{DayCount, FeeCharge, RepaymentMethod};

const METHODS: [RepaymentMethod; 4] = RepaymentMethod::ALL;
const FEE_ROWS: usize = 3;
const FEE_KINDS: [&str; 5] = ["service", "guarantee", "insurance", "management", "other"];

fn ctx(lang: Lang, caller: Caller) -> Ctx {
    Ctx {
        lang,
        caller: Some(caller),
    }
}

fn status_badge(t: &Bundle, s: ProductStatus) -> Markup {
    let class = match s {
        ProductStatus::Active => "badge badge-ok",
        ProductStatus::Draft => "badge badge-warn",
        ProductStatus::Retired => "badge",
    };
    html! { span class=(class) data-testid="product-status" { (t.get(&format!("products.status.{}", s.code()))) } }
}

fn method_name(t: &Bundle, m: RepaymentMethod) -> String {
    t.get(&format!("products.method.{}", m.code()))
}

// ---------------------------------------------------------------------------------------
// List and detail
// ---------------------------------------------------------------------------------------

pub async fn list(
    State(state): State<AppState>,
    lang: Lang,
    caller: Caller,
) -> Result<Markup, ApiError> {
    let t = state.i18n().bundle(lang);
    let mut rows = Vec::new();
    for p in state.store().products().await? {
        let v = state.store().product_version(p.id, None).await?;
        rows.push((p, v));
    }
    let content = html! {
        section.card {
            p {
                @if caller.can("product.manage") { a href="/products/new" data-testid="new-product" { (t.get("products.new")) } " · " }
                @if caller.can("quote.create") { a href="/quotes/new" data-testid="quote-calculator" { (t.get("quotes.calculator")) } }
                // Contracts (issue #6).
                " · " a href="/contract-templates" data-testid="contract-templates" { (t.get("products.contract_templates")) }
            }
            p.muted { (t.get("products.cap_hint")) " " strong { (state.settings().apr_cap) } }
            @if rows.is_empty() {
                p.muted { (t.get("products.empty")) }
            } @else {
                table.table data-testid="product-table" {
                    thead { tr {
                        th { (t.get("products.code")) } th { (t.get("products.name")) } th { (t.get("products.status")) }
                        th { (t.get("products.version")) } th { (t.get("products.methods")) } th { (t.get("products.terms")) }
                        th.num { (t.get("products.amounts")) } th.num { (t.get("products.rate")) } th.num { (t.get("products.worst_apr")) }
                    } }
                    tbody { @for (p, v) in &rows { tr {
                        td { a href=(format!("/products/{}", p.code)) { code { (p.code) } } }
                        td { (p.name) }
                        td { (status_badge(t, p.status)) }
                        td { "v" (p.current_version) }
                        @if let Some(v) = v {
                            td { @for m in &v.spec.methods { span.badge { (method_name(t, *m)) } " " } }
                            td { (v.spec.min_months) "–" (v.spec.max_months) }
                            td.num { (v.spec.min_amount) " – " (v.spec.max_amount) }
                            td.num { (v.spec.annual_rate) }
                            td.num { (v.worst_apr) }
                        } @else { td {} td {} td {} td {} td {} }
                    } } }
                }
            }
        }
    };
    Ok(page(
        &state,
        &ctx(lang, caller),
        "products",
        &t.get("module.products.title"),
        content,
    ))
}

fn fee_rows(t: &Bundle, spec: &ProductSpec) -> Markup {
    html! {
        table.table data-testid="fee-table" {
            thead { tr { th { (t.get("products.fee.kind")) } th { (t.get("products.fee.charge")) } th.num { (t.get("products.fee.value")) } th { (t.get("products.fee.collector")) } } }
            tbody {
                tr { td { (t.get("quotes.item.interest")) } td { (t.get(&format!("products.day_count.{}", spec.day_count.code()))) } td.num { (spec.annual_rate) " / " (t.get("products.per_year")) } td { (t.get("products.collector.funder")) } }
                @for f in &spec.fees { tr {
                    td { (t.get(&format!("products.fee_kind.{}", fee_code(f.kind)))) }
                    @match f.charge {
                        FeeCharge::Upfront { amount } => { td { (t.get("products.charge.upfront")) } td.num { (amount) } }
                        FeeCharge::MonthlyOnPrincipal { rate } => { td { (t.get("products.charge.monthly_on_principal")) } td.num { (rate) " / " (t.get("products.per_month")) } }
                    }
                    td { (t.get(&format!("products.collector.{}", collector_code(f.collector)))) }
                } }
            }
        }
    }
}

pub async fn detail(
    State(state): State<AppState>,
    lang: Lang,
    caller: Caller,
    Path(code): Path<String>,
) -> Result<Response, ApiError> {
    let t = state.i18n().bundle(lang);
    let Some(p) = state.store().product_by_code(&code).await? else {
        return Err(ApiError::NotFound(format!("no product has code `{code}`")));
    };
    let versions = state.store().product_versions(p.id).await?;
    let csrf = caller.csrf.clone().unwrap_or_default();
    let current = versions.first();
    let content = html! {
        section.card data-testid="product-summary" {
            dl.facts {
                dt { (t.get("products.code")) } dd { code { (p.code) } }
                dt { (t.get("products.name")) } dd { (p.name) }
                dt { (t.get("products.status")) } dd { (status_badge(t, p.status)) }
                dt { (t.get("products.version")) } dd { "v" (p.current_version) }
            }
            @if caller.can("product.manage") {
                p {
                    a href=(format!("/products/{}/edit", p.code)) data-testid="new-version" { (t.get("products.new_version")) }
                    @for next in [ProductStatus::Active, ProductStatus::Retired] {
                        @if p.status.can_become(next) {
                            " "
                            form.inline method="post" action=(format!("/products/{}/status", p.code)) {
                                input type="hidden" name=(CSRF_FIELD) value=(csrf);
                                input type="hidden" name="status" value=(next.code());
                                button type="submit" data-testid=(format!("to-{}", next.code())) { (t.get(&format!("products.to.{}", next.code()))) }
                            }
                        }
                    }
                }
            }
            @if caller.can("quote.create") && p.status == ProductStatus::Active {
                p { a href=(format!("/quotes/new?product={}", p.code)) data-testid="quote-this" { (t.get("quotes.calculator")) } }
            }
        }
        @if let Some(v) = current {
            section.card data-testid="current-version" {
                h2 { (t.get("products.current_version")) " v" (v.version) }
                dl.facts {
                    dt { (t.get("products.methods")) } dd { @for m in &v.spec.methods { span.badge { (method_name(t, *m)) } " " } }
                    dt { (t.get("products.terms")) } dd { (v.spec.min_months) "–" (v.spec.max_months) " " (t.get("products.months")) }
                    dt { (t.get("products.amounts")) } dd { (v.spec.min_amount) " – " (v.spec.max_amount) }
                    dt { (t.get("products.penalty")) } dd { (v.spec.penalty_annual_rate().normalize()) " / " (t.get("products.per_year")) }
                    dt { (t.get("products.ages")) } dd { (v.spec.eligibility.min_age) "–" (v.spec.eligibility.max_age) }
                    dt { (t.get("products.materials")) } dd { @for m in &v.spec.eligibility.required_materials { span.badge { (t.get(&format!("products.material.{m}"))) } " " } }
                    dt { (t.get("products.funders")) } dd { @for f in &v.spec.funder_codes { code { (f) } " " } }
                }
                h3 { (t.get("products.fees")) }
                (fee_rows(t, &v.spec))
                h3 { (t.get("products.cap_check")) }
                div.notice data-testid="cap-explanation" {
                    p { (t.get("products.cap_check.result")) " " strong { (v.worst_apr) } " ≤ " (v.apr_cap) }
                    @if let Some(w) = v.cap_check.get("worst") {
                        p.muted { (t.get("products.cap_check.worst")) " "
                            (w["amount"].as_str().unwrap_or_default()) " / " (w["months"]) " " (t.get("products.months")) " / "
                            (w["method"].as_str().map(|m| RepaymentMethod::parse(m).map(|m| method_name(t, m)).unwrap_or_default()).unwrap_or_default())
                            " · " (t.get("products.cap_check.count")) " " (v.cap_check["combinations"]) }
                    }
                    p.muted { (t.get("products.cap_check.how")) }
                }
            }
        }
        section.card data-testid="version-history" {
            h2 { (t.get("products.history")) }
            table.table {
                thead { tr { th { (t.get("products.version")) } th.num { (t.get("products.rate")) } th { (t.get("products.terms")) } th.num { (t.get("products.amounts")) } th.num { (t.get("products.worst_apr")) } th { (t.get("products.note")) } th { (t.get("products.created_by")) } } }
                tbody { @for v in &versions { tr {
                    td { "v" (v.version) }
                    td.num { (v.spec.annual_rate) }
                    td { (v.spec.min_months) "–" (v.spec.max_months) }
                    td.num { (v.spec.min_amount) " – " (v.spec.max_amount) }
                    td.num { (v.worst_apr) }
                    td { (v.note.clone().unwrap_or_default()) }
                    td { (v.created_by) }
                } } }
            }
        }
    };
    Ok(page(&state, &ctx(lang, caller), "products", &p.name, content).into_response())
}

// ---------------------------------------------------------------------------------------
// The product form
// ---------------------------------------------------------------------------------------

/// The form's values, as typed (re-shown with the errors).
#[derive(Debug, Clone, Default)]
pub struct ProductForm {
    code: String,
    name: String,
    methods: Vec<String>,
    min_months: String,
    max_months: String,
    min_amount: String,
    max_amount: String,
    annual_rate: String,
    day_count: String,
    penalty_markup: String,
    min_age: String,
    max_age: String,
    materials: Vec<String>,
    funder_codes: String,
    fees: [(String, String, String, String); FEE_ROWS],
    note: String,
}

impl ProductForm {
    fn parse(body: &[u8]) -> ProductForm {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(body).unwrap_or_default();
        let mut f = ProductForm::default();
        for (k, v) in pairs {
            match k.as_str() {
                "code" => f.code = v,
                "name" => f.name = v,
                "method" => f.methods.push(v),
                "min_months" => f.min_months = v,
                "max_months" => f.max_months = v,
                "min_amount" => f.min_amount = v,
                "max_amount" => f.max_amount = v,
                "annual_rate" => f.annual_rate = v,
                "day_count" => f.day_count = v,
                "penalty_markup" => f.penalty_markup = v,
                "min_age" => f.min_age = v,
                "max_age" => f.max_age = v,
                "material" => f.materials.push(v),
                "funder_codes" => f.funder_codes = v,
                "note" => f.note = v,
                other => {
                    for i in 0..FEE_ROWS {
                        let row = &mut f.fees[i];
                        if other == format!("fee{i}_kind") {
                            row.0 = v.clone();
                        } else if other == format!("fee{i}_collector") {
                            row.1 = v.clone();
                        } else if other == format!("fee{i}_charge") {
                            row.2 = v.clone();
                        } else if other == format!("fee{i}_value") {
                            row.3 = v.clone();
                        }
                    }
                }
            }
        }
        f
    }

    fn from_spec(code: &str, name: &str, s: &ProductSpec) -> ProductForm {
        let mut fees: [(String, String, String, String); FEE_ROWS] = Default::default();
        for (i, fee) in s.fees.iter().take(FEE_ROWS).enumerate() {
            let (charge, value) = match fee.charge {
                FeeCharge::Upfront { amount } => ("upfront", amount.to_string()),
                FeeCharge::MonthlyOnPrincipal { rate } => {
                    ("monthly_on_principal", rate.to_string())
                }
            };
            fees[i] = (
                fee_code(fee.kind).into(),
                collector_code(fee.collector).into(),
                charge.into(),
                value,
            );
        }
        ProductForm {
            code: code.into(),
            name: name.into(),
            methods: s.methods.iter().map(|m| m.code().to_owned()).collect(),
            min_months: s.min_months.to_string(),
            max_months: s.max_months.to_string(),
            min_amount: s.min_amount.to_string(),
            max_amount: s.max_amount.to_string(),
            annual_rate: s.annual_rate.to_string(),
            day_count: s.day_count.code().into(),
            penalty_markup: s.penalty_markup.to_string(),
            min_age: s.eligibility.min_age.to_string(),
            max_age: s.eligibility.max_age.to_string(),
            materials: s.eligibility.required_materials.clone(),
            funder_codes: s.funder_codes.join(", "),
            fees,
            note: String::new(),
        }
    }

    /// The API input, plus errors for numbers that do not parse.
    fn to_input(&self) -> (VersionInput, Vec<FieldError>) {
        let mut errors = Vec::new();
        let mut num = |field: &str, s: &str| -> u32 {
            match s.trim().parse::<u32>() {
                Ok(v) => v,
                Err(_) => {
                    errors.push(FieldError::new(field, "invalid", "a whole number"));
                    0
                }
            }
        };
        let min_months = num("min_months", &self.min_months);
        let max_months = num("max_months", &self.max_months);
        let min_age = num("eligibility.min_age", &self.min_age);
        let max_age = num("eligibility.max_age", &self.max_age);
        let fees = self
            .fees
            .iter()
            .filter(|r| !r.3.trim().is_empty())
            .map(|(kind, collector, charge, value)| FeeInput {
                kind: kind.clone(),
                collector: collector.clone(),
                charge: charge.clone(),
                amount: (charge == "upfront").then(|| value.trim().to_owned()),
                rate: (charge != "upfront").then(|| value.trim().to_owned()),
            })
            .collect();
        let input = VersionInput {
            methods: self.methods.clone(),
            min_months,
            max_months,
            min_amount: self.min_amount.trim().to_owned(),
            max_amount: self.max_amount.trim().to_owned(),
            annual_rate: self.annual_rate.trim().to_owned(),
            day_count: Some(self.day_count.clone()).filter(|s| !s.is_empty()),
            fees,
            penalty_markup: Some(self.penalty_markup.trim().to_owned()).filter(|s| !s.is_empty()),
            eligibility: Some(EligibilityInput {
                min_age,
                max_age,
                required_materials: self.materials.clone(),
            }),
            funder_codes: self
                .funder_codes
                .split([',', ' ', '，'])
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
            note: Some(self.note.trim().to_owned()).filter(|s| !s.is_empty()),
        };
        (input, errors)
    }
}

fn default_form() -> ProductForm {
    ProductForm {
        methods: vec!["equal_installment".into()],
        min_months: "6".into(),
        max_months: "36".into(),
        min_amount: "5000.00".into(),
        max_amount: "200000.00".into(),
        annual_rate: "0.18".into(),
        day_count: "monthly".into(),
        penalty_markup: "0.3".into(),
        min_age: "22".into(),
        max_age: "55".into(),
        materials: vec!["id_front".into(), "id_back".into()],
        funder_codes: "bank_a".into(),
        fees: [
            (
                "guarantee".into(),
                "guarantor".into(),
                "monthly_on_principal".into(),
                String::new(),
            ),
            (
                "service".into(),
                "funder".into(),
                "upfront".into(),
                String::new(),
            ),
            (
                "insurance".into(),
                "guarantor".into(),
                "monthly_on_principal".into(),
                String::new(),
            ),
        ],
        ..Default::default()
    }
}

/// `field` or a prefix of it (`fees[0]` matches `fees[0].amount`).
fn errs(errors: &[FieldError], prefix: &str) -> String {
    errors
        .iter()
        .filter(|e| {
            e.field == prefix
                || e.field.starts_with(&format!("{prefix}."))
                || e.field.starts_with(&format!("{prefix}["))
        })
        .map(|e| e.message.clone())
        .collect::<Vec<_>>()
        .join("; ")
}

fn product_form(
    state: &AppState,
    lang: Lang,
    caller: Caller,
    existing: Option<(&str, i64)>,
    form: &ProductForm,
    errors: &[FieldError],
) -> Markup {
    let t = state.i18n().bundle(lang);
    let csrf = caller.csrf.clone().unwrap_or_default();
    let action = match existing {
        Some((code, _)) => format!("/products/{code}/edit"),
        None => "/products/new".into(),
    };
    let cap_message = errs(errors, "apr");
    let field = |id: &str, key: &str, name: &str, value: &str, err_field: &str| {
        html! {
            div.field { label for=(id) { (t.get(key)) } input #(id) name=(name) value=(value); span.field-error data-testid=(format!("error-{name}")) { (errs(errors, err_field)) } }
        }
    };
    let title = match existing {
        Some((code, v)) => format!("{} {code} · v{}", t.get("products.new_version"), v + 1),
        None => t.get("products.new"),
    };
    let content = html! {
        section.card data-testid="product-form" {
            @if !errors.is_empty() { p.field-error role="alert" { (t.get("products.fix_errors")) } }
            @if !cap_message.is_empty() {
                div.notice.field-error role="alert" data-testid="cap-error" {
                    strong { (t.get("products.cap_refused")) } " " (cap_message)
                    p.muted { (t.get("products.cap_refused.hint")) }
                }
            }
            form method="post" action=(action) {
                input type="hidden" name=(CSRF_FIELD) value=(csrf);
                @if existing.is_none() {
                    (field("pf-code", "products.code", "code", &form.code, "code"))
                }
                (field("pf-name", "products.name", "name", &form.name, "name"))
                h3 { (t.get("products.methods")) }
                div.checks { @for m in METHODS {
                    label { input type="checkbox" name="method" value=(m.code()) checked[form.methods.iter().any(|x| x == m.code())]; " " (method_name(t, m)) }
                } }
                span.field-error { (errs(errors, "methods")) }
                div.grid {
                    (field("pf-min-months", "products.min_months", "min_months", &form.min_months, "min_months"))
                    (field("pf-max-months", "products.max_months", "max_months", &form.max_months, "max_months"))
                    (field("pf-min-amount", "products.min_amount", "min_amount", &form.min_amount, "min_amount"))
                    (field("pf-max-amount", "products.max_amount", "max_amount", &form.max_amount, "max_amount"))
                    (field("pf-rate", "products.rate", "annual_rate", &form.annual_rate, "annual_rate"))
                    div.field { label for="pf-day-count" { (t.get("products.day_count")) }
                        select #pf-day-count name="day_count" { @for d in DayCount::ALL { option value=(d.code()) selected[form.day_count == d.code()] { (t.get(&format!("products.day_count.{}", d.code()))) } } } }
                    (field("pf-penalty", "products.penalty_markup", "penalty_markup", &form.penalty_markup, "penalty_markup"))
                }
                h3 { (t.get("products.fees")) }
                p.muted { (t.get("products.fees.hint")) }
                @for i in 0..FEE_ROWS {
                    @let row = &form.fees[i];
                    div.grid data-testid=(format!("fee-row-{i}")) {
                        div.field { label { (t.get("products.fee.kind")) }
                            select name=(format!("fee{i}_kind")) { @for k in FEE_KINDS { option value=(k) selected[row.0 == k] { (t.get(&format!("products.fee_kind.{k}"))) } } } }
                        div.field { label { (t.get("products.fee.collector")) }
                            select name=(format!("fee{i}_collector")) { @for c in ["funder", "guarantor"] { option value=(c) selected[row.1 == c] { (t.get(&format!("products.collector.{c}"))) } } } }
                        div.field { label { (t.get("products.fee.charge")) }
                            select name=(format!("fee{i}_charge")) { @for c in ["monthly_on_principal", "upfront"] { option value=(c) selected[row.2 == c] { (t.get(&format!("products.charge.{c}"))) } } } }
                        div.field { label for=(format!("pf-fee{i}")) { (t.get("products.fee.value")) }
                            input id=(format!("pf-fee{i}")) name=(format!("fee{i}_value")) value=(row.3);
                            span.field-error { (errs(errors, &format!("fees[{i}]"))) } }
                    }
                }
                h3 { (t.get("products.eligibility")) }
                div.grid {
                    (field("pf-min-age", "products.min_age", "min_age", &form.min_age, "eligibility.min_age"))
                    (field("pf-max-age", "products.max_age", "max_age", &form.max_age, "eligibility.max_age"))
                }
                div.checks { @for m in MATERIAL_TYPES {
                    label { input type="checkbox" name="material" value=(m) checked[form.materials.iter().any(|x| x == m)]; " " (t.get(&format!("products.material.{m}"))) }
                } }
                span.field-error { (errs(errors, "eligibility.required_materials")) }
                (field("pf-funders", "products.funders", "funder_codes", &form.funder_codes, "funder_codes"))
                (field("pf-note", "products.note", "note", &form.note, "note"))
                button type="submit" data-testid="save-product" { (t.get("products.save")) }
            }
        }
    };
    page(state, &ctx(lang, caller), "products", &title, content)
}

pub async fn new_form(State(state): State<AppState>, lang: Lang, caller: Caller) -> Markup {
    product_form(&state, lang, caller, None, &default_form(), &[])
}

fn refused(markup: Markup, action: &str) -> Response {
    let mut r = (StatusCode::UNPROCESSABLE_ENTITY, markup).into_response();
    r.extensions_mut()
        .insert(AuditNote::action(action).outcome("rejected"));
    r
}

pub async fn create(
    State(state): State<AppState>,
    lang: Lang,
    caller: Caller,
    body: Bytes,
) -> Result<Response, ApiError> {
    let form = ProductForm::parse(&body);
    let (input, mut errors) = form.to_input();
    if errors.is_empty() {
        let req = NewProductRequest {
            code: form.code.trim().to_owned(),
            name: form.name.clone(),
            version: input,
        };
        match api::create_product(&state, &caller, &req).await {
            Ok((p, _)) => {
                let mut r = Redirect::to(&format!("/products/{}", p.code)).into_response();
                r.extensions_mut().insert(AuditNote {
                    recorded: true,
                    ..AuditNote::action("product.create")
                });
                return Ok(r);
            }
            Err(ApiError::Validation(e)) => errors = e,
            Err(e) => return Err(e),
        }
    }
    Ok(refused(
        product_form(&state, lang, caller, None, &form, &errors),
        "product.create",
    ))
}

pub async fn edit_form(
    State(state): State<AppState>,
    lang: Lang,
    caller: Caller,
    Path(code): Path<String>,
) -> Result<Markup, ApiError> {
    let p = state
        .store()
        .product_by_code(&code)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no product has code `{code}`")))?;
    let v = state
        .store()
        .product_version(p.id, None)
        .await?
        .ok_or_else(|| ApiError::NotFound("no version".into()))?;
    let form = ProductForm::from_spec(&p.code, &p.name, &v.spec);
    Ok(product_form(
        &state,
        lang,
        caller,
        Some((&p.code, p.current_version)),
        &form,
        &[],
    ))
}

pub async fn edit_save(
    State(state): State<AppState>,
    lang: Lang,
    caller: Caller,
    Path(code): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let p = state
        .store()
        .product_by_code(&code)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no product has code `{code}`")))?;
    let mut form = ProductForm::parse(&body);
    form.code = p.code.clone();
    let (input, mut errors) = form.to_input();
    if errors.is_empty() {
        let req = NewVersionRequest {
            name: Some(form.name.clone()),
            version: input,
        };
        match api::add_version(&state, &caller, &code, &req).await {
            Ok(_) => {
                let mut r = Redirect::to(&format!("/products/{code}")).into_response();
                r.extensions_mut().insert(AuditNote {
                    recorded: true,
                    ..AuditNote::action("product.version")
                });
                return Ok(r);
            }
            Err(ApiError::Validation(e)) => errors = e,
            Err(e) => return Err(e),
        }
    }
    Ok(refused(
        product_form(
            &state,
            lang,
            caller,
            Some((&p.code, p.current_version)),
            &form,
            &errors,
        ),
        "product.version",
    ))
}

#[derive(Debug, Deserialize)]
pub struct StatusForm {
    status: String,
}

pub async fn status_submit(
    State(state): State<AppState>,
    caller: Caller,
    Path(code): Path<String>,
    axum::Form(form): axum::Form<StatusForm>,
) -> Result<Response, ApiError> {
    api::change_status(&state, &caller, &code, &form.status).await?;
    let mut r = Redirect::to(&format!("/products/{code}")).into_response();
    r.extensions_mut().insert(AuditNote {
        recorded: true,
        ..AuditNote::action("product.status")
    });
    Ok(r)
}

// ---------------------------------------------------------------------------------------
// Quotes
// ---------------------------------------------------------------------------------------

#[derive(Debug, Deserialize, Default, Clone)]
pub struct QuoteForm {
    #[serde(default)]
    product: String,
    #[serde(default)]
    amount: String,
    #[serde(default)]
    months: String,
    #[serde(default)]
    method: String,
    #[serde(default)]
    start_date: String,
}

async fn quote_form_page(
    state: &AppState,
    lang: Lang,
    caller: Caller,
    form: &QuoteForm,
    errors: &[FieldError],
) -> Result<Markup, ApiError> {
    let t = state.i18n().bundle(lang);
    let csrf = caller.csrf.clone().unwrap_or_default();
    let mut products = Vec::new();
    for p in state.store().products().await? {
        if p.status == ProductStatus::Active {
            if let Some(v) = state.store().product_version(p.id, None).await? {
                products.push((p, v));
            }
        }
    }
    let selected = products
        .iter()
        .find(|(p, _)| p.code == form.product)
        .or(products.first());
    let start = if form.start_date.is_empty() {
        state.clock().today().to_string()
    } else {
        form.start_date.clone()
    };
    let content = html! {
        section.card data-testid="quote-form" {
            @if !errors.is_empty() { ul.field-error role="alert" { @for e in errors { li { code { (e.field) } " " (e.message) } } } }
            @if products.is_empty() { p.muted { (t.get("quotes.no_active")) } } @else {
                form method="post" action="/quotes/new" {
                    input type="hidden" name=(CSRF_FIELD) value=(csrf);
                    div.field { label for="qf-product" { (t.get("quotes.product")) }
                        select #qf-product name="product" { @for (p, v) in &products {
                            option value=(p.code) selected[selected.is_some_and(|s| s.0.code == p.code)] { (p.name) " (" (p.code) " v" (v.version) ")" }
                        } }
                        span.field-error { (errs(errors, "product_code")) }
                    }
                    @if let Some((_, v)) = selected {
                        p.muted { (t.get("products.amounts")) " " (v.spec.min_amount) " – " (v.spec.max_amount) " · "
                            (t.get("products.terms")) " " (v.spec.min_months) "–" (v.spec.max_months) " · "
                            @for m in &v.spec.methods { (method_name(t, *m)) " " } }
                    }
                    div.grid {
                        div.field { label for="qf-amount" { (t.get("quotes.amount")) } input #qf-amount name="amount" value=(form.amount) required; span.field-error { (errs(errors, "amount")) } }
                        div.field { label for="qf-months" { (t.get("quotes.months")) } input #qf-months name="months" value=(form.months) required; span.field-error { (errs(errors, "months")) } }
                        div.field { label for="qf-method" { (t.get("quotes.method")) }
                            select #qf-method name="method" { @for m in METHODS { option value=(m.code()) selected[form.method == m.code()] { (method_name(t, m)) } } }
                            span.field-error { (errs(errors, "method")) } }
                        div.field { label for="qf-start" { (t.get("quotes.start_date")) } input #qf-start name="start_date" type="date" value=(start); span.field-error { (errs(errors, "start_date")) } }
                    }
                    button type="submit" data-testid="run-quote" { (t.get("quotes.run")) }
                }
            }
        }
    };
    Ok(page(
        state,
        &ctx(lang, caller),
        "products",
        &t.get("quotes.calculator"),
        content,
    ))
}

pub async fn quote_new(
    State(state): State<AppState>,
    lang: Lang,
    caller: Caller,
    Query(form): Query<QuoteForm>,
) -> Result<Markup, ApiError> {
    quote_form_page(&state, lang, caller, &form, &[]).await
}

pub async fn quote_submit(
    State(state): State<AppState>,
    lang: Lang,
    caller: Caller,
    axum::Form(form): axum::Form<QuoteForm>,
) -> Result<Response, ApiError> {
    let months = form.months.trim().parse::<u32>();
    let result = match months {
        Ok(months) => {
            api::make_quote(
                &state,
                &caller,
                &QuoteInput {
                    product_code: form.product.clone(),
                    version: None,
                    amount: form.amount.trim().to_owned(),
                    months,
                    method: form.method.clone(),
                    start_date: Some(form.start_date.clone()).filter(|s| !s.is_empty()),
                },
            )
            .await
        }
        Err(_) => Err(ApiError::field(
            "months",
            "invalid",
            "a whole number of months",
        )),
    };
    match result {
        Ok(q) => {
            let mut r = Redirect::to(&format!("/quotes/{}", q.id)).into_response();
            r.extensions_mut().insert(AuditNote {
                recorded: true,
                ..AuditNote::action("quote.create")
            });
            Ok(r)
        }
        Err(ApiError::Validation(errors)) => Ok(refused(
            quote_form_page(&state, lang, caller, &form, &errors).await?,
            "quote.create",
        )),
        Err(e) => Err(e),
    }
}

fn fen_of(v: &serde_json::Value) -> i64 {
    v.as_str()
        .and_then(|s| zhudai_domain::money::Fen::parse(s).ok())
        .map_or(0, |f| f.as_fen())
}

pub async fn quote_page(
    State(state): State<AppState>,
    lang: Lang,
    caller: Caller,
    Path(id): Path<i64>,
) -> Result<Markup, ApiError> {
    let t = state.i18n().bundle(lang);
    let q = api::load_quote(&state, id).await?;
    let s = &q.snapshot;
    let d = &s["disclosure"];
    let empty = Vec::new();
    let periods = s["schedule"]["periods"].as_array().unwrap_or(&empty);
    let items = d["items"].as_array().unwrap_or(&empty);
    let bars: Vec<(String, i64, i64)> = periods
        .iter()
        .map(|p| {
            (
                p["period"].to_string(),
                fen_of(&p["principal"]) / 100,
                fen_of(&p["interest"]) / 100,
            )
        })
        .collect();
    let zh = lang == Lang::ZhCn;
    let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_owned();
    let content = html! {
        section.card data-testid="disclosure" {
            h2 { (t.get("quotes.disclosure")) }
            dl.facts {
                dt { (t.get("quotes.product")) } dd { (text(&s["product"]["name"])) " (" code { (text(&s["product"]["code"])) } " v" (s["product"]["version"]) ")" }
                dt { (t.get("quotes.amount")) } dd { (text(&d["principal"])) " · " (t.get("quotes.disbursed")) " " (text(&d["disbursed"])) }
                dt { (t.get("quotes.months")) } dd { (d["months"]) " · " (text(&d[if zh { "method_zh" } else { "method" }])) }
                dt { (t.get("quotes.apr")) } dd { strong data-testid="quote-apr" { (text(&d["apr"])) } " " span.muted { "(" (t.get("quotes.apr_hint")) ")" } }
            }
            table.table data-testid="disclosure-items" {
                thead { tr { th { (t.get("quotes.item")) } th { (t.get("products.fee.charge")) } th.num { (t.get("products.fee.value")) } th { (t.get("products.fee.collector")) } th.num { (t.get("quotes.total")) } } }
                tbody {
                    @for i in items { tr {
                        td { (text(&i[if zh { "item_zh" } else { "item" }])) }
                        td { (text(&i[if zh { "charged_zh" } else { "charged" }])) }
                        td.num { (text(&i["rate"])) }
                        td { (text(&i[if zh { "collector_zh" } else { "collector" }])) }
                        td.num { (text(&i["total"])) }
                    } }
                    tr { td { strong { (t.get("quotes.total_cost")) } } td {} td {} td {} td.num { strong { (text(&d["total_cost"])) } } }
                    tr { td { (t.get("quotes.total_repayment")) } td {} td {} td {} td.num { (text(&d["total_repayment"])) } }
                }
            }
            h3 { (t.get("quotes.default_cost")) }
            p data-testid="default-cost" { (text(&d["default_cost"][if zh { "rule_zh" } else { "rule" }])) " · "
                (t.get("quotes.penalty_rate")) " " (text(&d["default_cost"]["penalty_annual_rate"])) " · "
                (t.get("quotes.penalty_example")) " " (text(&d["default_cost"]["example_30_days"])) }
            p.muted { (t.get("quotes.digest")) " " code { (q.digest) } }
        }
        section.card data-testid="quote-chart" {
            h2 { (t.get("quotes.chart")) }
            (chart::stacked_columns(&t.get("quotes.chart"), (&t.get("quotes.principal"), &t.get("quotes.interest")), &bars))
        }
        section.card data-testid="quote-schedule" {
            h2 { (t.get("quotes.schedule")) }
            table.table {
                thead { tr { th { (t.get("quotes.period")) } th { (t.get("quotes.due")) } th.num { (t.get("quotes.principal")) } th.num { (t.get("quotes.interest")) } th.num { (t.get("quotes.fee")) } th.num { (t.get("quotes.payment")) } th.num { (t.get("quotes.balance")) } } }
                tbody { @for p in periods { tr {
                    td { (p["period"]) } td { (text(&p["due_date"])) }
                    td.num { (text(&p["principal"])) } td.num { (text(&p["interest"])) } td.num { (text(&p["fee"])) }
                    td.num { (text(&p["payment"])) } td.num { (text(&p["balance"])) }
                } }
                    tr { td { strong { (t.get("quotes.total")) } } td {}
                        td.num { (text(&s["schedule"]["totals"]["principal"])) } td.num { (text(&s["schedule"]["totals"]["interest"])) }
                        td.num { (text(&s["schedule"]["totals"]["fee"])) } td.num { (text(&s["schedule"]["totals"]["payment"])) } td {} }
                }
            }
            p.muted { (t.get("quotes.upfront_fee")) " " (text(&s["schedule"]["upfront_fee"])) }
        }
    };
    Ok(page(
        &state,
        &ctx(lang, caller),
        "products",
        &format!("{} #{}", t.get("quotes.title"), q.id),
        content,
    ))
}
