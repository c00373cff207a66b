//! Customers: `/api/v1/customers…`. Every read and write is limited to the caller's data
//! scope (403 outside it); sensitive fields come back masked unless the caller's role
//! sees them in clear, and every clear read or reveal is audited.

use crate::auth::{AuditNote, Caller};
use crate::customers::{self as svc, CustomerView, DuplicateFlag, RelationView};
use crate::error::{ApiJson, ApiResult, Problem};
use crate::state::AppState;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use zhudai_domain::customer::CustomerInput;

/// A new customer. Empty strings count as absent.
#[derive(Debug, Deserialize, ToSchema, Default)]
pub struct CustomerCreate {
    /// `individual` (default) or `enterprise`.
    pub kind: Option<String>,
    pub name: Option<String>,
    /// Resident ID (18 or legacy 15 digits) or HK/Macao/Taiwan residence permit; the
    /// unified social credit code for an enterprise.
    pub id_number: Option<String>,
    pub phone: Option<String>,
    pub bank_card: Option<String>,
    pub email: Option<String>,
    pub address: Option<String>,
    /// Yuan, e.g. `"12000.00"` (individuals).
    pub monthly_income: Option<String>,
}

impl From<CustomerCreate> for CustomerInput {
    fn from(c: CustomerCreate) -> Self {
        CustomerInput {
            kind: c.kind,
            name: c.name,
            id_number: c.id_number,
            phone: c.phone,
            bank_card: c.bank_card,
            email: c.email,
            address: c.address,
            monthly_income: c.monthly_income,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CustomerCreated {
    pub id: i64,
    #[serde(rename = "ref")]
    pub ref_: String,
    /// Other customers sharing this ID number, phone or bank card (a fraud signal).
    pub duplicates: Vec<DuplicateFlag>,
}

/// Create a customer.
#[utoipa::path(operation_id = "customers_create", post, path = "/api/v1/customers", tag = "customers", request_body = CustomerCreate,
    responses((status = 201, body = CustomerCreated),
              (status = 409, description = "A customer with this ID number already exists in your scope", body = Problem, content_type = "application/problem+json"),
              (status = 422, description = "Invalid fields, each named", body = Problem, content_type = "application/problem+json")))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CustomerCreate>,
) -> ApiResult<Response> {
    let created = svc::create(&state, &caller, &body.into()).await?;
    let mut resp = (
        StatusCode::CREATED,
        axum::Json(CustomerCreated {
            id: created.id,
            ref_: created.ref_,
            duplicates: created.duplicates,
        }),
    )
        .into_response();
    resp.extensions_mut().insert(AuditNote {
        recorded: true,
        ..Default::default()
    });
    Ok(resp)
}

#[derive(Debug, Deserialize, IntoParams, Default)]
#[into_params(parameter_in = Query)]
pub struct CustomerSearch {
    /// Part of the name.
    pub name: Option<String>,
    /// Exact ID number (searched through its blind index).
    pub id_number: Option<String>,
    /// Exact mobile number (blind index).
    pub phone: Option<String>,
    /// Exact bank card number (blind index).
    pub bank_card: Option<String>,
    /// `individual` or `enterprise`.
    pub kind: Option<String>,
    /// `active`, `closed` or `erased`.
    pub status: Option<String>,
    #[param(minimum = 0)]
    pub offset: Option<i64>,
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CustomerPageView {
    pub customers: Vec<CustomerView>,
    pub total: i64,
}

/// List or search the customers in the caller's scope.
#[utoipa::path(operation_id = "customers_list", get, path = "/api/v1/customers", tag = "customers", params(CustomerSearch),
    responses((status = 200, body = CustomerPageView),
              (status = 422, description = "Bad search", body = Problem, content_type = "application/problem+json")))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<CustomerSearch>,
) -> ApiResult<Response> {
    let search = svc::Search {
        name: q.name,
        id_number: q.id_number,
        phone: q.phone,
        bank_card: q.bank_card,
        kind: q.kind,
        status: q.status,
        offset: q.offset.unwrap_or(0),
        limit: q.limit.unwrap_or(50),
    };
    let mut clear_reads = Vec::new();
    let (customers, total) = svc::search(&state, &caller, &search, &mut clear_reads).await?;
    Ok(svc::with_clear_read_audit(
        axum::Json(CustomerPageView { customers, total }).into_response(),
        clear_reads,
    ))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CustomerDetail {
    #[serde(flatten)]
    pub customer: CustomerView,
    pub relations: Vec<RelationView>,
}

/// One customer with duplicate flags and enterprise links.
#[utoipa::path(operation_id = "customers_get_one", get, path = "/api/v1/customers/{id}", tag = "customers", params(("id" = i64, Path)),
    responses((status = 200, body = CustomerDetail),
              (status = 403, description = "Outside your data scope", body = Problem, content_type = "application/problem+json"),
              (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn get_one(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> ApiResult<Response> {
    let (row, scope) = svc::load_in_scope(&state, &caller, id).await?;
    let mut clear_reads = Vec::new();
    let customer = svc::view(&state, &caller, &scope, &row, true, &mut clear_reads).await?;
    let relations = svc::relations(&state, &scope, id).await?;
    Ok(svc::with_clear_read_audit(
        axum::Json(CustomerDetail {
            customer,
            relations,
        })
        .into_response(),
        clear_reads,
    ))
}

/// Changes to a customer. Absent fields stay; an empty string clears an optional field.
/// `version` must be the version you read (optimistic concurrency: 409 when someone
/// changed the customer since).
#[derive(Debug, Deserialize, ToSchema)]
pub struct CustomerPatch {
    pub version: i64,
    pub name: Option<String>,
    pub id_number: Option<String>,
    pub phone: Option<String>,
    pub bank_card: Option<String>,
    pub email: Option<String>,
    pub address: Option<String>,
    pub monthly_income: Option<String>,
    /// `active` or `closed`.
    pub status: Option<String>,
}

/// Change a customer.
#[utoipa::path(operation_id = "customers_patch", patch, path = "/api/v1/customers/{id}", tag = "customers", params(("id" = i64, Path)), request_body = CustomerPatch,
    responses((status = 200, body = CustomerDetail),
              (status = 409, description = "Changed by someone else since you read it", body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn patch(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
    ApiJson(p): ApiJson<CustomerPatch>,
) -> ApiResult<Response> {
    let changes = CustomerInput {
        kind: None,
        name: p.name,
        id_number: p.id_number,
        phone: p.phone,
        bank_card: p.bank_card,
        email: p.email,
        address: p.address,
        monthly_income: p.monthly_income,
    };
    svc::update(
        &state,
        &caller,
        id,
        p.version,
        &changes,
        p.status.as_deref(),
    )
    .await?;
    let (row, scope) = svc::load_in_scope(&state, &caller, id).await?;
    let mut clear_reads = Vec::new();
    let customer = svc::view(&state, &caller, &scope, &row, true, &mut clear_reads).await?;
    let relations = svc::relations(&state, &scope, id).await?;
    let mut resp = axum::Json(CustomerDetail {
        customer,
        relations,
    })
    .into_response();
    resp.extensions_mut().insert(AuditNote {
        recorded: true,
        ..Default::default()
    });
    Ok(resp)
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct CustomerRevealRequest {
    /// `id_number`, `phone`, `bank_card` or `monthly_income`.
    pub field: String,
    /// Why you need the clear value (recorded in the audit trail).
    pub reason: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CustomerRevealed {
    pub field: String,
    pub value: String,
}

/// Show one sensitive field in clear, with a reason; rate-limited and audited.
#[utoipa::path(operation_id = "customers_reveal", post, path = "/api/v1/customers/{id}/reveal", tag = "customers", params(("id" = i64, Path)), request_body = CustomerRevealRequest,
    responses((status = 200, body = CustomerRevealed),
              (status = 429, description = "Too many reveals in the last hour", body = Problem, content_type = "application/problem+json")))]
pub async fn reveal(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
    ApiJson(req): ApiJson<CustomerRevealRequest>,
) -> ApiResult<Response> {
    let value = svc::reveal(&state, &caller, id, &req.field, &req.reason).await?;
    let mut resp = axum::Json(CustomerRevealed {
        field: req.field,
        value,
    })
    .into_response();
    resp.extensions_mut().insert(AuditNote {
        recorded: true,
        ..Default::default()
    });
    Ok(resp)
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct RelationCreate {
    /// The individual customer linked to this enterprise.
    pub person_id: i64,
    /// `legal_representative`, `beneficial_owner`, `actual_controller` or `shareholder`.
    pub role: String,
    /// Ownership share in basis points (0–10000).
    pub share_bp: Option<i64>,
}

/// Link an individual to an enterprise (legal representative, beneficial owner…).
#[utoipa::path(operation_id = "customers_add_relation", post, path = "/api/v1/customers/{id}/relations", tag = "customers", params(("id" = i64, Path)), request_body = RelationCreate,
    responses((status = 201, body = [RelationView]),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn add_relation(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
    ApiJson(req): ApiJson<RelationCreate>,
) -> ApiResult<Response> {
    svc::add_relation(&state, &caller, id, req.person_id, &req.role, req.share_bp).await?;
    let scope = svc::scope_of(&caller, state.store()).await?;
    let relations = svc::relations(&state, &scope, id).await?;
    let mut resp = (StatusCode::CREATED, axum::Json(relations)).into_response();
    resp.extensions_mut().insert(AuditNote {
        recorded: true,
        ..Default::default()
    });
    Ok(resp)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HistoryEntry {
    pub seq: i64,
    pub at_ms: i64,
    pub actor: Option<String>,
    pub action: String,
    pub outcome: String,
    pub reason: Option<String>,
}

/// What happened to a customer, from the audit trail (newest first).
#[utoipa::path(operation_id = "customers_history", get, path = "/api/v1/customers/{id}/history", tag = "customers", params(("id" = i64, Path)),
    responses((status = 200, body = [HistoryEntry])))]
pub async fn history(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> ApiResult<ApiJson<Vec<HistoryEntry>>> {
    svc::load_in_scope(&state, &caller, id).await?;
    let records = svc::history(&state, id, 200).await?;
    Ok(ApiJson(
        records
            .into_iter()
            .map(|r| HistoryEntry {
                seq: r.seq,
                at_ms: r.at_ms,
                actor: r.actor,
                action: r.action,
                outcome: r.outcome,
                reason: r.reason,
            })
            .collect(),
    ))
}
