//! The JSON API. Every route is registered through [`utoipa_axum`], so the OpenAPI
//! document at `/api/v1/openapi.json` is generated from the same code that routes
//! requests and cannot forget a route.

pub mod audit;
pub mod auth;
// Bulk customer import and export (issue #4 part 5).
pub mod customer_exports;
pub mod customer_imports;
pub mod docs;
pub mod system;
pub mod users;

use crate::error::{FieldError, Problem};
use crate::state::AppState;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

#[derive(OpenApi, Debug)]
#[openapi(
    info(
        title = "zhudai API",
        description = "The HTTP API of zhudai (助贷), the operating system of a loan-facilitation company. \
            Every error is an RFC 9457 `application/problem+json` body; validation errors list each bad field in `errors`.",
        license(name = "Apache-2.0")
    ),
    components(schemas(Problem, FieldError)),
    tags(
        (name = "system", description = "Health, readiness, metrics and instance information"),
        (name = "organisation", description = "Company, branches and teams"),
        (name = "auth", description = "Signing in and out; the caller's own account, sessions and tokens"),
        (name = "audit", description = "The tamper-evident audit trail: search, CSV export, chain verification, signed checkpoints"),
        (name = "users", description = "Users, roles, permissions; masked personal fields and audited reveal"),
        (name = "customers", description = "Customers; bulk import (CSV/XLSX) and export with four-eyes approval"),
    )
)]
pub struct ApiDoc;

/// Every API route with its OpenAPI description.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(system::healthz))
        .routes(routes!(system::readyz))
        .routes(routes!(system::metrics))
        .routes(routes!(system::info))
        .routes(routes!(system::job_stats))
        .routes(routes!(system::org_units))
        .routes(routes!(docs::openapi_json))
        .routes(routes!(auth::login_api))
        .routes(routes!(auth::me))
        .routes(routes!(auth::logout))
        .routes(routes!(auth::logout_all))
        .routes(routes!(auth::sessions))
        .routes(routes!(auth::totp_enrol))
        .routes(routes!(auth::totp_confirm))
        .routes(routes!(auth::token_create, auth::token_list))
        .routes(routes!(auth::token_revoke))
        .routes(routes!(auth::change_password))
        .routes(routes!(audit::search))
        .routes(routes!(audit::export))
        .routes(routes!(audit::verify))
        .routes(routes!(audit::checkpoints))
        .routes(routes!(users::list, users::create))
        .routes(routes!(users::get_one, users::patch))
        .routes(routes!(users::reveal))
        .routes(routes!(users::roles))
        .routes(routes!(users::update_role))
        .routes(routes!(users::permissions))
        // --- Bulk customer import and export (issue #4 part 5) ---
        .routes(routes!(customer_imports::create))
        .routes(routes!(customer_imports::get_one))
        .routes(routes!(customer_imports::errors))
        .routes(routes!(customer_exports::export))
        .routes(routes!(customer_exports::request, customer_exports::mine))
        .routes(routes!(customer_exports::pending))
        .routes(routes!(customer_exports::decide))
        .routes(routes!(customer_exports::download))
    // --- end bulk import and export ---
}
