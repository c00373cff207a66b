//! The JSON API. Every route is registered through [`utoipa_axum`], so the OpenAPI
//! document at `/api/v1/openapi.json` is generated from the same code that routes
//! requests and cannot forget a route.

pub mod applications;
pub mod audit;
// Contracts and disbursement (issue #6).
pub mod auth;
pub mod contracts;
// Daily close, collections, funder reconciliation, reports (issue #8 items 3–7).
pub mod cob;
pub mod collections;
pub mod customers;
pub mod reconciliation;
pub mod reports;
// Bulk customer import and export (issue #4 part 5).
pub mod customer_exports;
pub mod customer_imports;
pub mod docs;
pub mod documents;
// Loans, the ledger and repayments (issue #8).
pub mod loans;
pub mod privacy;
// Funder network (issue #5).
pub mod partners;
pub mod products;
// Credit decisions (issue #7).
pub mod risk;
pub mod routing;
pub mod system;
pub mod users;
pub mod workflows;
// Risk warnings and credit limits (issue #7 items 3 and 4).
pub mod limits;
pub mod warnings;
// Worklists, exception alerts, notifications, process analytics (issue #6 items 3–4).
pub mod analytics;
pub mod notifications;
pub mod worklists;

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
    components(schemas(Problem, FieldError, crate::contracts::DisbursedResult)),
    tags(
        (name = "system", description = "Health, readiness, metrics and instance information"),
        (name = "organisation", description = "Company, branches and teams"),
        (name = "auth", description = "Signing in and out; the caller's own account, sessions and tokens"),
        (name = "audit", description = "The tamper-evident audit trail: search, CSV export, chain verification, signed checkpoints"),
        (name = "users", description = "Users, roles, permissions; masked personal fields and audited reveal"),
        (name = "applications", description = "Loan applications carried by the origination workflow"),
        (name = "workflow", description = "Workflow definitions (versioned, checked before use) and each user's to-do list"),
        (name = "customers", description = "Customers (individuals and enterprises) in the caller's data scope; masked sensitive fields, duplicate flags, audited reveal; bulk import (CSV/XLSX) and export with four-eyes approval"),
        (name = "documents", description = "Customer documents: encrypted upload and download, versions, four-eyes verification with cross-checks, completeness"),
        (name = "privacy", description = "PIPL: consents per purpose and recipient, data-subject requests (access/copy, correction, deletion) with deadlines"),
        // Funder network (issue #5).
        (name = "partners", description = "Partners (合作机构): funders, credit enhancers, data providers, collection agencies; admission, limits, pricing, performance"),
        (name = "routing", description = "Funder routing: waterfall runs, their steps, and funders' signed callbacks"),
        (name = "products", description = "Versioned loan products, the all-in cost cap, quotes with the 综合融资成本明示表"),
        (name = "contracts", description = "Versioned contract templates; contracts generated as PDF with the frozen cost disclosure, content hash, signatures; disbursement (issue #6)"),
        // Loans and the ledger (issue #8).
        (name = "loans", description = "Loans, their schedules and repayments (idempotent), reversals, the double-entry ledger and its balances"),
        // Credit decisions, risk warnings and credit limits (issue #7).
        (name = "risk", description = "Risk control: credit decisions with reason codes, replay and two-person overrides; scorecard models (champion/challenger); policy rule sets; the blacklist; warning rules (tested, compiled, enabled), risk events, warnings with their tasks and playbooks, population stability (PSI); credit lines with maker-checker changes"),
        // Daily close, collections, reconciliation, reports (issue #8 items 3–7).
        (name = "cob", description = "The daily close of business: runs, a loan's classification and bucket history, manual floors (maker-checker), restructuring, guarantee payouts"),
        (name = "collections", description = "Collection cases: queues by bucket and assignee, contact log with compliance guards, agencies and commission, closure"),
        (name = "reconciliation", description = "Funder reconciliation: repayment files matched against our repayments, breaks and their resolution"),
        (name = "reports", description = "Portfolio dashboard figures, XLSX export, roll rates"),
        // Worklists and exception alerts (issue #6 item 3).
        (name = "notifications", description = "In-app notifications of exception alerts (stuck, SLA breach, funder timeout, manual override), group-bot webhooks (WeCom, DingTalk, Feishu) and their delivery log"),
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
        // Applications
        .routes(routes!(applications::list, applications::create))
        .routes(routes!(applications::get_one))
        .routes(routes!(applications::act))
        // Workflow
        .routes(routes!(workflows::list, workflows::install))
        .routes(routes!(workflows::validate))
        .routes(routes!(workflows::get_one))
        .routes(routes!(workflows::tasks))
        // Customers
        .routes(routes!(customers::list, customers::create))
        .routes(routes!(customers::get_one, customers::patch))
        .routes(routes!(customers::reveal))
        .routes(routes!(customers::add_relation))
        .routes(routes!(customers::history))
        // Customer documents and privacy (issue #4 parts 2–4). The upload route takes
        // bodies up to `document_max_bytes`: it disables the default body limit and
        // counts the bytes itself.
        .routes({
            let (schemas, paths, method_router) =
                routes!(documents::upload_document, documents::list_documents);
            (
                schemas,
                paths,
                method_router.layer(axum::extract::DefaultBodyLimit::disable()),
            )
        })
        .routes(routes!(documents::documents_status))
        .routes(routes!(documents::get_document))
        .routes(routes!(documents::download_document))
        .routes(routes!(documents::verify_document))
        .routes(routes!(documents::pending_documents))
        .routes(routes!(privacy::consent_create, privacy::consent_list))
        .routes(routes!(privacy::consent_withdraw))
        .routes(routes!(privacy::request_create, privacy::request_list))
        .routes(routes!(privacy::request_get))
        .routes(routes!(privacy::request_start))
        .routes(routes!(privacy::request_complete))
        .routes(routes!(privacy::request_refuse))
        .routes(routes!(privacy::request_export))
        // Funder network (issue #5).
        .routes(routes!(partners::partner_list, partners::partner_create))
        .routes(routes!(partners::partner_get, partners::partner_patch))
        .routes(routes!(partners::partner_status))
        .routes(routes!(partners::partner_add_licence))
        .routes(routes!(partners::partner_add_document))
        .routes(routes!(partners::partner_add_contact))
        .routes(routes!(partners::partner_submit_admission))
        .routes(routes!(partners::partner_decide_admission))
        .routes(routes!(partners::partner_set_limits))
        .routes(routes!(partners::partner_set_pricing))
        .routes(routes!(partners::partner_performance))
        .routes(routes!(partners::funder_performance_export))
        .routes(routes!(
            partners::admission_standards,
            partners::admission_standards_replace
        ))
        .routes(routes!(routing::routing_start, routing::routing_list))
        .routes(routes!(routing::routing_get))
        .routes(routes!(
            routing::routing_waterfall_get,
            routing::routing_waterfall_put
        ))
        .routes(routes!(routing::funder_callback))
        // Contracts and disbursement (issue #6).
        .routes(routes!(
            contracts::templates_list,
            contracts::templates_save
        ))
        .routes(routes!(contracts::placeholders))
        .routes(routes!(contracts::template_versions))
        .routes(routes!(contracts::template_get))
        .routes(routes!(contracts::template_preview))
        .routes(routes!(contracts::generate, contracts::of_application))
        .routes(routes!(contracts::pdf))
        .routes(routes!(contracts::sign))
        .routes(routes!(contracts::void))
        // Products and pricing (issue #5)
        .routes(routes!(products::list, products::create))
        .routes(routes!(products::get_one))
        .routes(routes!(products::versions, products::add_version_route))
        .routes(routes!(products::set_status))
        .routes(routes!(products::create_quote))
        .routes(routes!(products::get_quote))
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
        // --- Loans and the ledger (issue #8) ---
        .routes(routes!(loans::list))
        .routes(routes!(loans::get_one))
        .routes(routes!(loans::repay))
        .routes(routes!(loans::reverse))
        .routes(routes!(loans::loan_balances))
        .routes(routes!(loans::accounts))
        .routes(routes!(loans::funders))
        // --- Daily close, collections, reconciliation, reports (issue #8 items 3–7) ---
        .routes(routes!(cob::runs, cob::request))
        .routes(routes!(cob::run_one))
        .routes(routes!(cob::servicing))
        .routes(routes!(cob::floor_request))
        .routes(routes!(cob::floor_requests))
        .routes(routes!(cob::floor_decide))
        .routes(routes!(cob::restructure))
        .routes(routes!(cob::guarantee))
        .routes(routes!(collections::list))
        .routes(routes!(collections::get_one))
        .routes(routes!(collections::contact))
        .routes(routes!(collections::assign))
        .routes(routes!(collections::agency))
        .routes(routes!(collections::agency_end))
        .routes(routes!(collections::close))
        .routes(routes!(collections::agencies))
        .routes(routes!(collections::agency_rate))
        .routes(routes!(reconciliation::import, reconciliation::files))
        .routes(routes!(reconciliation::file))
        .routes(routes!(reconciliation::breaks))
        .routes(routes!(reconciliation::resolve))
        .routes(routes!(reports::portfolio))
        .routes(routes!(reports::portfolio_xlsx))
        .routes(routes!(reports::roll_rates))
        // --- end daily close ---
        // --- end loans ---
        // --- Credit decisions (issue #7) ---
        .routes(routes!(risk::list, risk::create))
        .routes(routes!(risk::get_one))
        .routes(routes!(risk::replay))
        .routes(routes!(risk::request_override))
        .routes(routes!(risk::decide_override))
        .routes(routes!(risk::models, risk::upload))
        .routes(routes!(risk::model))
        .routes(routes!(risk::promote))
        .routes(routes!(risk::model_status))
        .routes(routes!(risk::compare))
        .routes(routes!(risk::rule_sets, risk::save_rule_set))
        .routes(routes!(risk::rule_set))
        .routes(routes!(risk::enable_rule_set))
        .routes(routes!(risk::test_rule_set))
        .routes(routes!(risk::blacklist, risk::blacklist_add))
        .routes(routes!(risk::blacklist_remove))
        // --- end credit decisions ---
        // --- Risk warnings and credit limits (issue #7 items 3 and 4) ---
        .routes(routes!(warnings::rule_list, warnings::rule_create))
        .routes(routes!(warnings::rule_test))
        .routes(routes!(warnings::rule_get, warnings::rule_update))
        .routes(routes!(warnings::rule_enable))
        .routes(routes!(warnings::rule_disable))
        .routes(routes!(warnings::events_submit))
        .routes(routes!(warnings::warning_list))
        .routes(routes!(warnings::warning_get))
        .routes(routes!(warnings::warning_acknowledge))
        .routes(routes!(warnings::warning_close))
        .routes(routes!(warnings::task_list))
        .routes(routes!(warnings::task_done))
        .routes(routes!(warnings::playbook_list))
        .routes(routes!(warnings::playbook_update))
        .routes(routes!(warnings::dashboard))
        .routes(routes!(warnings::psi_overview))
        .routes(routes!(warnings::psi_register))
        .routes(routes!(warnings::psi_run))
        .routes(routes!(limits::limit_list))
        .routes(routes!(
            limits::adjustment_request,
            limits::adjustment_pending
        ))
        .routes(routes!(limits::adjustment_decide))
        .routes(routes!(limits::limit_get))
        .routes(routes!(limits::limit_freeze))
        .routes(routes!(limits::limit_unfreeze))
        // --- end risk warnings and credit limits ---
        // --- Worklists, exception alerts, notifications, analytics (issue #6 items 3–4) ---
        .routes(routes!(worklists::done))
        .routes(routes!(worklists::watched))
        .routes(routes!(worklists::seen))
        .routes(routes!(worklists::watch, worklists::unwatch))
        .routes(routes!(notifications::list))
        .routes(routes!(notifications::unread))
        .routes(routes!(notifications::read))
        .routes(routes!(notifications::read_all))
        .routes(routes!(notifications::targets, notifications::create))
        .routes(routes!(notifications::target, notifications::patch))
        .routes(routes!(notifications::test))
        .routes(routes!(notifications::set_manager))
        .routes(routes!(analytics::report))
        .routes(routes!(analytics::export))
    // --- end worklists and notifications ---
}
