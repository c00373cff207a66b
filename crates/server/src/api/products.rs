//! Products and pricing (issue #5): `/api/v1/products…` (versioned loan products, the
//! all-in cost cap check on every save) and `/api/v1/quotes…` (a schedule with its
//! 综合融资成本明示表, frozen with a SHA-256 digest).
//!
//! Every write appends its audit record inside its own transaction (the response carries
//! `AuditNote { recorded: true }`); a refused write is audited by the authorization layer.

use crate::auth::{AuditNote, Caller};
use crate::error::{ApiError, ApiJson, ApiResult, FieldError, Problem};
use crate::http::request_id::current_request_id;
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;
use zhudai_domain::money::{FeeRate, Fen, Rate};
use zhudai_domain::product::{
    self, apr_4dp, CapCheck, Eligibility, ProductSpec, ProductStatus, QuoteError, QuoteRequest,
};
use zhudai_domain::schedule::{DayCount, FeeCharge, FeeItem, RepaymentMethod, RepaymentSchedule};
use zhudai_store::audit::AuditDraft;
use zhudai_store::products::{NewQuote, NewVersion, Product, ProductVersion};

// ---------------------------------------------------------------------------------------
// Input
// ---------------------------------------------------------------------------------------

/// One fee of a product version.
#[derive(Debug, Clone, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FeeInput {
    /// `service`, `guarantee`, `insurance`, `management` or `other`.
    pub kind: String,
    /// Who receives it: `funder` or `guarantor` (the platform may not charge borrowers).
    pub collector: String,
    /// `upfront` (a fixed amount paid once at the start) or `monthly_on_principal`.
    pub charge: String,
    /// Yuan, for `upfront`, e.g. `"100.00"`.
    #[serde(default)]
    pub amount: Option<String>,
    /// Monthly fraction of the original principal, for `monthly_on_principal`, e.g. `"0.002"`.
    #[serde(default)]
    pub rate: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EligibilityInput {
    pub min_age: u32,
    pub max_age: u32,
    /// `id_front`, `id_back`, `income_proof`, `bank_statement`, `credit_report`, `business_licence`.
    #[serde(default)]
    pub required_materials: Vec<String>,
}

/// The content of a product version.
#[derive(Debug, Clone, Default, Deserialize, Serialize, ToSchema)]
pub struct VersionInput {
    /// `equal_installment`, `equal_principal`, `interest_first`, `bullet`.
    pub methods: Vec<String>,
    pub min_months: u32,
    pub max_months: u32,
    /// Yuan, e.g. `"1000.00"`.
    pub min_amount: String,
    pub max_amount: String,
    /// Nominal annual rate, e.g. `"0.18"`.
    pub annual_rate: String,
    /// `monthly` (default), `actual_360` or `actual_365`.
    #[serde(default)]
    pub day_count: Option<String>,
    #[serde(default)]
    pub fees: Vec<FeeInput>,
    /// Penalty rate = annual rate × (1 + markup), 0–0.5; default `"0.5"`.
    #[serde(default)]
    pub penalty_markup: Option<String>,
    #[serde(default)]
    pub eligibility: Option<EligibilityInput>,
    /// Codes of the funders that may take the product (partner codes).
    #[serde(default)]
    pub funder_codes: Vec<String>,
    /// Why this version was made.
    #[serde(default)]
    pub note: Option<String>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct NewProductRequest {
    /// 2–32 of `a-z 0-9 _`, starting with a letter.
    pub code: String,
    pub name: String,
    #[serde(flatten)]
    pub version: VersionInput,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct NewVersionRequest {
    /// A new name for the product (optional).
    #[serde(default)]
    pub name: Option<String>,
    #[serde(flatten)]
    pub version: VersionInput,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StatusRequest {
    /// `active` or `retired`.
    pub status: String,
}

fn fe(field: impl Into<String>, code: &str, message: impl Into<String>) -> FieldError {
    FieldError::new(field, code, message)
}

/// Parses a version input into a spec; every bad field is reported.
pub fn parse_spec(input: &VersionInput) -> Result<ProductSpec, Vec<FieldError>> {
    let mut errors = Vec::new();
    let mut methods = Vec::new();
    for (i, m) in input.methods.iter().enumerate() {
        match RepaymentMethod::parse(&m.replace('-', "_")) {
            Ok(m) => methods.push(m),
            Err(_) => errors.push(fe(
                format!("methods[{i}]"),
                "unknown",
                "use equal_installment, equal_principal, interest_first or bullet",
            )),
        }
    }
    let mut amount = |field: &str, s: &str| match Fen::parse(s) {
        Ok(v) => v,
        Err(e) => {
            errors.push(fe(field, e.code(), e.to_string()));
            Fen::ZERO
        }
    };
    let min_amount = amount("min_amount", &input.min_amount);
    let max_amount = amount("max_amount", &input.max_amount);
    let annual_rate = match Rate::parse(&input.annual_rate) {
        Ok(r) => r,
        Err(e) => {
            errors.push(fe("annual_rate", e.code(), e.to_string()));
            Rate::ZERO
        }
    };
    let day_count = match input.day_count.as_deref().filter(|s| !s.is_empty()) {
        None => DayCount::Monthly,
        Some(s) => DayCount::parse(s).unwrap_or_else(|| {
            errors.push(fe(
                "day_count",
                "unknown",
                "use monthly, actual_360 or actual_365",
            ));
            DayCount::Monthly
        }),
    };
    let penalty_markup = match input.penalty_markup.as_deref().filter(|s| !s.is_empty()) {
        None => Decimal::new(5, 1),
        Some(s) => s.trim().parse::<Decimal>().unwrap_or_else(|_| {
            errors.push(fe("penalty_markup", "invalid", "a decimal such as 0.3"));
            Decimal::ZERO
        }),
    };
    let mut fees = Vec::new();
    for (i, f) in input.fees.iter().enumerate() {
        let kind = product::parse_fee_kind(&f.kind);
        if kind.is_none() {
            errors.push(fe(
                format!("fees[{i}].kind"),
                "unknown",
                "use service, guarantee, insurance, management or other",
            ));
        }
        let collector = product::parse_collector(&f.collector);
        if collector.is_none() {
            errors.push(fe(
                format!("fees[{i}].collector"),
                "unknown",
                "use funder or guarantor",
            ));
        }
        let charge = match f.charge.as_str() {
            "upfront" => match Fen::parse(f.amount.as_deref().unwrap_or("")) {
                Ok(amount) => Some(FeeCharge::Upfront { amount }),
                Err(e) => {
                    errors.push(fe(format!("fees[{i}].amount"), e.code(), e.to_string()));
                    None
                }
            },
            "monthly_on_principal" => match FeeRate::parse(f.rate.as_deref().unwrap_or("")) {
                Ok(rate) => Some(FeeCharge::MonthlyOnPrincipal { rate }),
                Err(e) => {
                    errors.push(fe(format!("fees[{i}].rate"), e.code(), e.to_string()));
                    None
                }
            },
            _ => {
                errors.push(fe(
                    format!("fees[{i}].charge"),
                    "unknown",
                    "use upfront or monthly_on_principal",
                ));
                None
            }
        };
        if let (Some(kind), Some(collector), Some(charge)) = (kind, collector, charge) {
            fees.push(FeeItem {
                kind,
                collector,
                charge,
            });
        }
    }
    let eligibility = match &input.eligibility {
        Some(e) => Eligibility {
            min_age: e.min_age,
            max_age: e.max_age,
            required_materials: e.required_materials.clone(),
        },
        None => Eligibility::default(),
    };
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(ProductSpec {
        methods,
        min_months: input.min_months,
        max_months: input.max_months,
        min_amount,
        max_amount,
        annual_rate,
        day_count,
        fees,
        penalty_markup,
        eligibility,
        funder_codes: input
            .funder_codes
            .iter()
            .map(|c| c.trim().to_owned())
            .collect(),
    })
}

/// The field error that names the combination breaking the cap.
pub fn cap_error(check: &CapCheck) -> FieldError {
    let w = &check.worst;
    fe(
        "apr",
        "above_cap",
        format!(
            "the all-in annual cost exceeds the cap {}: {} yuan over {} months ({}) costs {} a year (APR by IRR); {} of {} combinations checked are above the cap",
            check.cap,
            w.amount,
            w.months,
            w.method.code(),
            apr_4dp(w.apr),
            check.violations,
            check.combinations
        ),
    )
}

/// Validates a version completely (fields, then the cap search). On success returns the
/// spec and its cap check.
pub fn validate_version(
    input: &VersionInput,
    cap: Decimal,
) -> Result<(ProductSpec, CapCheck), Vec<FieldError>> {
    let spec = parse_spec(input)?;
    let problems: Vec<FieldError> = spec
        .problems(cap)
        .into_iter()
        .map(|p| fe(p.field, p.code, p.message))
        .collect();
    if !problems.is_empty() {
        return Err(problems);
    }
    let check = spec.cap_check(cap).ok_or_else(|| {
        vec![fe(
            "annual_rate",
            "unpriceable",
            "the product cannot be priced",
        )]
    })?;
    if !check.within_cap() {
        return Err(vec![cap_error(&check)]);
    }
    Ok((spec, check))
}

fn check_name(name: &str) -> Option<FieldError> {
    let n = name.trim();
    if n.is_empty() || n.chars().count() > 100 {
        Some(fe("name", "required", "a name of 1–100 characters"))
    } else {
        None
    }
}

/// The audit record of a write by `caller`.
pub fn audit_draft(state: &AppState, caller: &Caller, action: &str, target: String) -> AuditDraft {
    let mut d = AuditDraft::new(state.now_ms(), action, "success")
        .actor(caller.username.clone())
        .role(caller.roles.join(","))
        .target(target);
    if let Some(id) = current_request_id() {
        d = d.request_id(id);
    }
    d
}

fn recorded(mut resp: Response, action: &str) -> Response {
    resp.extensions_mut().insert(AuditNote {
        recorded: true,
        ..AuditNote::action(action)
    });
    resp
}

fn change_digest(v: &impl Serialize) -> String {
    zhudai_crypto::audit_chain::digest_change(
        &serde_json::Value::Null,
        &serde_json::to_value(v).unwrap_or_default(),
    )
}

// ---------------------------------------------------------------------------------------
// Writes shared by the API and the UI
// ---------------------------------------------------------------------------------------

/// Creates a product (draft, version 1). Field errors are 422.
pub async fn create_product(
    state: &AppState,
    caller: &Caller,
    req: &NewProductRequest,
) -> ApiResult<(Product, ProductVersion)> {
    let cap = state.settings().apr_cap;
    let mut errors = Vec::new();
    let code = req.code.trim();
    if !product::is_code(code) {
        errors.push(fe(
            "code",
            "invalid",
            "2–32 lower-case letters, digits or _, starting with a letter",
        ));
    }
    errors.extend(check_name(&req.name));
    let validated = validate_version(&req.version, cap);
    let (spec, check) = match validated {
        Ok(v) if errors.is_empty() => v,
        Ok(_) => return Err(ApiError::Validation(errors)),
        Err(mut more) => {
            errors.append(&mut more);
            return Err(ApiError::Validation(errors));
        }
    };
    let check_json = serde_json::to_value(&check).map_err(ApiError::internal)?;
    let worst = format!("{:.6}", check.worst.apr);
    let cap_text = cap.to_string();
    let v = NewVersion {
        spec: &spec,
        worst_apr: &worst,
        apr_cap: &cap_text,
        cap_check: &check_json,
        note: req.version.note.as_deref(),
        created_by: &caller.username,
    };
    let draft = audit_draft(state, caller, "product.create", format!("product:{code}"))
        .change_digest(change_digest(&spec));
    match state
        .store()
        .product_create(code, req.name.trim(), &v, &draft, state.now_ms())
        .await
    {
        Ok(out) => Ok(out),
        Err(e) if e.is_unique_violation("products_code_key", "products.code") => {
            Err(ApiError::field(
                "code",
                "taken",
                format!("a product with code `{code}` exists; save a new version of it instead"),
            ))
        }
        Err(e) => Err(e.into()),
    }
}

/// Saves the next version of a product. Field errors are 422.
pub async fn add_version(
    state: &AppState,
    caller: &Caller,
    code: &str,
    req: &NewVersionRequest,
) -> ApiResult<ProductVersion> {
    let cap = state.settings().apr_cap;
    if state.store().product_by_code(code).await?.is_none() {
        return Err(ApiError::NotFound(format!("no product has code `{code}`")));
    }
    let mut errors: Vec<FieldError> = req
        .name
        .as_deref()
        .and_then(check_name)
        .into_iter()
        .collect();
    let (spec, check) = match validate_version(&req.version, cap) {
        Ok(v) if errors.is_empty() => v,
        Ok(_) => return Err(ApiError::Validation(errors)),
        Err(mut more) => {
            errors.append(&mut more);
            return Err(ApiError::Validation(errors));
        }
    };
    let check_json = serde_json::to_value(&check).map_err(ApiError::internal)?;
    let worst = format!("{:.6}", check.worst.apr);
    let cap_text = cap.to_string();
    let v = NewVersion {
        spec: &spec,
        worst_apr: &worst,
        apr_cap: &cap_text,
        cap_check: &check_json,
        note: req.version.note.as_deref(),
        created_by: &caller.username,
    };
    let draft = audit_draft(state, caller, "product.version", format!("product:{code}"))
        .change_digest(change_digest(&spec));
    Ok(state
        .store()
        .product_add_version(
            code,
            req.name.as_deref().map(str::trim),
            &v,
            &draft,
            state.now_ms(),
        )
        .await?)
}

/// Activates or retires a product.
pub async fn change_status(
    state: &AppState,
    caller: &Caller,
    code: &str,
    status: &str,
) -> ApiResult<Product> {
    let product = state
        .store()
        .product_by_code(code)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no product has code `{code}`")))?;
    let Some(next) = ProductStatus::parse(status) else {
        return Err(ApiError::field(
            "status",
            "unknown",
            "use active or retired",
        ));
    };
    if !product.status.can_become(next) {
        return Err(ApiError::field(
            "status",
            "not_allowed",
            format!(
                "a {} product cannot become {}",
                product.status.code(),
                next.code()
            ),
        ));
    }
    let draft = audit_draft(
        state,
        caller,
        &format!("product.{}", next.code()),
        format!("product:{code}"),
    )
    .reason(format!("{} → {}", product.status.code(), next.code()));
    if !state
        .store()
        .product_set_status(code, product.status, next, &draft, state.now_ms())
        .await?
    {
        return Err(ApiError::Conflict(
            "the product changed meanwhile; reload and try again".into(),
        ));
    }
    Ok(Product {
        status: next,
        ..product
    })
}

// ---------------------------------------------------------------------------------------
// Views
// ---------------------------------------------------------------------------------------

#[derive(Debug, Serialize, ToSchema)]
pub struct ProductView {
    pub code: String,
    pub name: String,
    /// `draft`, `active` or `retired`.
    pub status: String,
    pub current_version: i64,
    pub created_by: String,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    /// The newest version.
    #[schema(value_type = Object)]
    pub version: Option<VersionView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct VersionView {
    pub version: i64,
    /// The product's content (methods, ranges, rate, fees, eligibility, funder codes).
    #[schema(value_type = Object)]
    pub spec: ProductSpec,
    /// The highest APR the cap search found, 6 decimals.
    pub worst_apr: String,
    /// The cap in force when saved.
    pub apr_cap: String,
    /// The cap search: worst combination, combinations priced, violations.
    #[schema(value_type = Object)]
    pub cap_check: serde_json::Value,
    pub note: Option<String>,
    pub created_by: String,
    pub created_at_ms: i64,
}

pub fn version_view(v: ProductVersion) -> VersionView {
    VersionView {
        version: v.version,
        spec: v.spec,
        worst_apr: v.worst_apr,
        apr_cap: v.apr_cap,
        cap_check: v.cap_check,
        note: v.note,
        created_by: v.created_by,
        created_at_ms: v.created_at_ms,
    }
}

fn product_view(p: Product, v: Option<ProductVersion>) -> ProductView {
    ProductView {
        code: p.code,
        name: p.name,
        status: p.status.code().to_owned(),
        current_version: p.current_version,
        created_by: p.created_by,
        created_at_ms: p.created_at_ms,
        updated_at_ms: p.updated_at_ms,
        version: v.map(version_view),
    }
}

// ---------------------------------------------------------------------------------------
// Product routes
// ---------------------------------------------------------------------------------------

/// Every product with its newest version.
#[utoipa::path(get, path = "/api/v1/products", operation_id = "product_list", tag = "products",
    responses((status = 200, body = [ProductView]),
              (status = 403, description = "Needs `product.read`", body = Problem, content_type = "application/problem+json")))]
pub async fn list(State(state): State<AppState>, _caller: Caller) -> ApiResult<Response> {
    let mut out = Vec::new();
    for p in state.store().products().await? {
        let v = state.store().product_version(p.id, None).await?;
        out.push(product_view(p, v));
    }
    Ok(axum::Json(out).into_response())
}

/// Create a product (status draft, version 1). Refused with 422 when a field is bad or
/// when any loan it allows costs more than the APR cap; the `apr` error names the worst
/// combination (amount, months, method, APR).
#[utoipa::path(post, path = "/api/v1/products", operation_id = "product_create", tag = "products", request_body = NewProductRequest,
    responses((status = 201, body = ProductView),
              (status = 422, description = "Invalid fields or above the APR cap (each listed)", body = Problem, content_type = "application/problem+json")))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<NewProductRequest>,
) -> ApiResult<Response> {
    let (p, v) = create_product(&state, &caller, &req).await?;
    Ok(recorded(
        (StatusCode::CREATED, axum::Json(product_view(p, Some(v)))).into_response(),
        "product.create",
    ))
}

/// One product with its newest version.
#[utoipa::path(get, path = "/api/v1/products/{code}", operation_id = "product_get", tag = "products", params(("code" = String, Path)),
    responses((status = 200, body = ProductView),
              (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn get_one(
    State(state): State<AppState>,
    _caller: Caller,
    Path(code): Path<String>,
) -> ApiResult<Response> {
    let p = state
        .store()
        .product_by_code(&code)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no product has code `{code}`")))?;
    let v = state.store().product_version(p.id, None).await?;
    Ok(axum::Json(product_view(p, v)).into_response())
}

/// Every version of a product, newest first. Versions are never edited.
#[utoipa::path(get, path = "/api/v1/products/{code}/versions", operation_id = "product_versions", tag = "products", params(("code" = String, Path)),
    responses((status = 200, body = [VersionView]),
              (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn versions(
    State(state): State<AppState>,
    _caller: Caller,
    Path(code): Path<String>,
) -> ApiResult<Response> {
    let p = state
        .store()
        .product_by_code(&code)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no product has code `{code}`")))?;
    let vs: Vec<VersionView> = state
        .store()
        .product_versions(p.id)
        .await?
        .into_iter()
        .map(version_view)
        .collect();
    Ok(axum::Json(vs).into_response())
}

/// Save a new version of a product (the old ones stay as they were). Same checks as
/// creating one.
#[utoipa::path(post, path = "/api/v1/products/{code}/versions", operation_id = "product_add_version", tag = "products", params(("code" = String, Path)),
    request_body = NewVersionRequest,
    responses((status = 201, body = VersionView),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 422, description = "Invalid fields or above the APR cap", body = Problem, content_type = "application/problem+json")))]
pub async fn add_version_route(
    State(state): State<AppState>,
    caller: Caller,
    Path(code): Path<String>,
    ApiJson(req): ApiJson<NewVersionRequest>,
) -> ApiResult<Response> {
    let v = add_version(&state, &caller, &code, &req).await?;
    Ok(recorded(
        (StatusCode::CREATED, axum::Json(version_view(v))).into_response(),
        "product.version",
    ))
}

/// Activate (draft/retired → active) or retire (→ retired) a product.
#[utoipa::path(post, path = "/api/v1/products/{code}/status", operation_id = "product_set_status", tag = "products", params(("code" = String, Path)),
    request_body = StatusRequest,
    responses((status = 200, body = ProductView),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn set_status(
    State(state): State<AppState>,
    caller: Caller,
    Path(code): Path<String>,
    ApiJson(req): ApiJson<StatusRequest>,
) -> ApiResult<Response> {
    let p = change_status(&state, &caller, &code, &req.status).await?;
    let v = state.store().product_version(p.id, None).await?;
    Ok(recorded(
        axum::Json(product_view(p, v)).into_response(),
        "product.status",
    ))
}

// ---------------------------------------------------------------------------------------
// Quotes
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QuoteInput {
    pub product_code: String,
    /// A version number; default the newest.
    #[serde(default)]
    pub version: Option<i64>,
    /// Yuan, e.g. `"50000.00"`.
    pub amount: String,
    pub months: u32,
    /// `equal_installment`, `equal_principal`, `interest_first`, `bullet`.
    pub method: String,
    /// Value date `YYYY-MM-DD`; default today (business date).
    #[serde(default)]
    pub start_date: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct QuoteView {
    pub id: i64,
    pub product_code: String,
    pub version: i64,
    /// SHA-256 hex of `snapshot` exactly as stored.
    pub digest: String,
    /// The frozen quote: product, request, schedule, disclosure (综合融资成本明示表), APR.
    #[schema(value_type = Object)]
    pub snapshot: serde_json::Value,
    pub created_by: String,
    pub created_at_ms: i64,
}

/// Builds a quote's snapshot JSON (the exact text that is stored and digested).
pub fn quote_snapshot(
    product: &Product,
    version: &ProductVersion,
    req: &QuoteRequest,
    schedule: &RepaymentSchedule,
    disclosure: &product::Disclosure,
    cap: Decimal,
) -> serde_json::Value {
    let periods: Vec<serde_json::Value> = schedule
        .periods
        .iter()
        .map(|p| {
            serde_json::json!({
                "period": p.number,
                "due_date": p.due_date.to_string(),
                "principal": p.principal.to_string(),
                "interest": p.interest.to_string(),
                "fee": p.fee.to_string(),
                "payment": p.payment.to_string(),
                "balance": p.remaining.to_string(),
            })
        })
        .collect();
    serde_json::json!({
        "product": {"code": product.code, "name": product.name, "version": version.version},
        "request": {
            "amount": req.amount.to_string(),
            "months": req.months,
            "method": req.method.code(),
            "start_date": req.start_date.to_string(),
        },
        "schedule": {
            "periods": periods,
            "upfront_fee": schedule.upfront_fee.to_string(),
            "totals": {
                "principal": schedule.total_principal().to_string(),
                "interest": schedule.total_interest().to_string(),
                "fee": schedule.total_fee().to_string(),
                "payment": schedule.total_payment().to_string(),
            },
        },
        "disclosure": disclosure,
        "apr": disclosure.apr,
        "apr_cap": cap.to_string(),
    })
}

/// Prices and freezes a quote. Field errors are 422.
pub async fn make_quote(
    state: &AppState,
    caller: &Caller,
    input: &QuoteInput,
) -> ApiResult<QuoteView> {
    let mut errors = Vec::new();
    let amount = Fen::parse(&input.amount)
        .map_err(|e| errors.push(fe("amount", e.code(), e.to_string())))
        .ok();
    let method = RepaymentMethod::parse(&input.method.replace('-', "_"))
        .map_err(|_| {
            errors.push(fe(
                "method",
                "unknown",
                "use equal_installment, equal_principal, interest_first or bullet",
            ))
        })
        .ok();
    let start_date = match input.start_date.as_deref().filter(|s| !s.is_empty()) {
        None => Some(state.clock().today()),
        Some(s) => NaiveDate::parse_from_str(s, "%Y-%m-%d")
            .map_err(|_| errors.push(fe("start_date", "invalid", "use YYYY-MM-DD")))
            .ok(),
    };
    let product = state
        .store()
        .product_by_code(input.product_code.trim())
        .await?;
    let Some(product) = product else {
        errors.push(fe(
            "product_code",
            "unknown",
            format!("no product has code `{}`", input.product_code),
        ));
        return Err(ApiError::Validation(errors));
    };
    if product.status != ProductStatus::Active {
        errors.push(fe(
            "product_code",
            "not_active",
            format!(
                "the product is {}; only active products are quoted",
                product.status.code()
            ),
        ));
    }
    let version = state
        .store()
        .product_version(product.id, input.version)
        .await?;
    let Some(version) = version else {
        errors.push(fe("version", "unknown", "the product has no such version"));
        return Err(ApiError::Validation(errors));
    };
    let (Some(amount), Some(method), Some(start_date), true) =
        (amount, method, start_date, errors.is_empty())
    else {
        return Err(ApiError::Validation(errors));
    };
    let req = QuoteRequest {
        amount,
        months: input.months,
        method,
        start_date,
    };
    let cap = state.settings().apr_cap;
    let (schedule, disclosure) = match product::quote(&version.spec, &req, cap) {
        Ok(v) => v,
        Err(QuoteError::Field(p)) => return Err(ApiError::field(&p.field, p.code, p.message)),
        Err(QuoteError::Pricing(m)) => return Err(ApiError::field("amount", "unpriceable", m)),
    };
    let snapshot = quote_snapshot(&product, &version, &req, &schedule, &disclosure, cap);
    let text = snapshot.to_string();
    let digest = hex::encode(Sha256::digest(text.as_bytes()));
    let start = req.start_date.to_string();
    let draft =
        audit_draft(state, caller, "quote.create", String::new()).change_digest(digest.clone());
    let now = state.now_ms();
    let id = state
        .store()
        .quote_create(
            &NewQuote {
                product_id: product.id,
                product_version_id: version.id,
                amount,
                months: req.months,
                method: method.code(),
                start_date: &start,
                apr: &disclosure.apr,
                snapshot: &text,
                digest: &digest,
                created_by: &caller.username,
            },
            &draft,
            now,
        )
        .await?;
    Ok(QuoteView {
        id,
        product_code: product.code,
        version: version.version,
        digest,
        snapshot,
        created_by: caller.username.clone(),
        created_at_ms: now,
    })
}

/// Quote a loan: its schedule and 综合融资成本明示表 (each fee, how it is charged, its rate,
/// who collects it, the all-in annual cost by IRR, the cost on default), frozen with a
/// digest. The amount, term and method must be within the product version.
#[utoipa::path(post, path = "/api/v1/quotes", operation_id = "quote_create", tag = "products", request_body = QuoteInput,
    responses((status = 201, body = QuoteView),
              (status = 422, description = "Outside the product, inactive product or above the cap", body = Problem, content_type = "application/problem+json")))]
pub async fn create_quote(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(input): ApiJson<QuoteInput>,
) -> ApiResult<Response> {
    let q = make_quote(&state, &caller, &input).await?;
    Ok(recorded(
        (StatusCode::CREATED, axum::Json(q)).into_response(),
        "quote.create",
    ))
}

/// Loads a stored quote.
pub async fn load_quote(state: &AppState, id: i64) -> ApiResult<QuoteView> {
    let q = state
        .store()
        .quote_by_id(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no quote has id {id}")))?;
    let snapshot = serde_json::from_str(&q.snapshot).map_err(ApiError::internal)?;
    Ok(QuoteView {
        id: q.id,
        product_code: q.product_code,
        version: q.version,
        digest: q.digest,
        snapshot,
        created_by: q.created_by,
        created_at_ms: q.created_at_ms,
    })
}

/// A frozen quote, exactly as it was given.
#[utoipa::path(get, path = "/api/v1/quotes/{id}", operation_id = "quote_get", tag = "products", params(("id" = i64, Path)),
    responses((status = 200, body = QuoteView),
              (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn get_quote(
    State(state): State<AppState>,
    _caller: Caller,
    Path(id): Path<i64>,
) -> ApiResult<Response> {
    Ok(axum::Json(load_quote(&state, id).await?).into_response())
}
