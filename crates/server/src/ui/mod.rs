//! The server-rendered web UI: zh-CN by default with English, no CDN, no build step.
//! Pages are HTML rendered with `maud`; assets are embedded in the binary; charts are SVG
//! drawn on the server; JavaScript only enhances what already works without it.

pub mod account;
pub mod admin_users;
pub mod applications;
pub mod assets;
pub mod audit;
pub mod chart;
// Contracts and disbursement (issue #6).
pub mod contracts;
pub mod customers;
pub mod documents;
// Funder network (issue #5).
pub mod funders;
pub mod i18n;
pub mod imports;
pub mod layout;
// Loans, repayments and the ledger (issue #8).
pub mod loans;
pub mod modules;
pub mod pages;
pub mod privacy;
pub mod products;
// Credit decisions (issue #7).
pub mod risk;
pub mod workflows;
// Risk warnings and credit limits (issue #7 items 3 and 4).
pub mod limits;
pub mod warnings;
// Worklists, exception alerts, notifications, process analytics (issue #6 items 3–4).
pub mod analytics;
pub mod notifications;
pub mod worklists;
// Daily close, collections, reconciliation and portfolio reports (issue #8 items 3–6).
pub mod cob;
pub mod collections;
pub mod portfolio;
pub mod reconciliation;

use crate::state::AppState;
use axum::routing::{get, post};
use axum::Router;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(pages::home))
        .route("/m/{module}", get(pages::module))
        .route("/lang/{code}", get(pages::switch_language))
        .route("/assets/{file}", get(assets::serve))
        .route(
            "/login",
            get(account::login_page).post(account::login_submit),
        )
        .route("/logout", post(account::logout_submit))
        .route("/account", get(account::account_page))
        .route("/audit", get(audit::audit_page))
        .route("/audit/verify", post(audit::verify_submit))
        .route(
            "/account/sessions/revoke-others",
            post(account::revoke_other_sessions),
        )
        .route(
            "/admin/users",
            get(admin_users::list).post(admin_users::create),
        )
        .route("/admin/roles", get(admin_users::roles))
        .route(
            "/admin/roles/{code}",
            get(admin_users::role_edit).post(admin_users::role_save),
        )
        // Applications
        .route("/applications", get(applications::list))
        .route(
            "/applications/new",
            get(applications::new_form).post(applications::create),
        )
        .route("/applications/{id}", get(applications::detail))
        .route("/applications/{id}/actions", post(applications::act))
        // Workflow designer and worklists (the /tasks tabs: issue #6 item 3)
        .route("/tasks", get(worklists::tasks))
        .route("/workflows", get(workflows::list))
        .route(
            "/workflows/{code}/{version}",
            get(workflows::show).post(workflows::edit),
        )
        // Customers
        .route("/customers", get(customers::list))
        .route(
            "/customers/new",
            get(customers::new_form).post(customers::create),
        )
        .route(
            "/customers/{id}",
            get(customers::detail).post(customers::update),
        )
        .route(
            "/customers/import",
            get(imports::wizard).post(imports::upload),
        )
        .route("/customers/import/{id}", get(imports::progress))
        .route("/customers/import/{id}/confirm", post(imports::confirm))
        .route("/customers/{id}/reveal", post(customers::reveal))
        .route("/customers/{id}/relations", post(customers::add_relation))
        .route("/account/totp", post(account::totp_start))
        .route("/account/totp/confirm", post(account::totp_confirm))
        // Customer documents, consents and data-subject requests (issue #4 parts 2–4)
        .route(
            "/customers/{id}/documents",
            get(documents::customer_documents_page)
                .post(documents::upload_submit)
                .layer(
                    // Uploads count their bytes against document_max_bytes themselves.
                    axum::extract::DefaultBodyLimit::disable(),
                ),
        )
        .route(
            "/customers/{id}/documents/{doc_id}/content",
            get(documents::download),
        )
        .route("/documents/verify", get(documents::verify_queue))
        .route("/documents/verify/{doc_id}", post(documents::verify_submit))
        .route("/customers/{id}/consents", post(privacy::consent_submit))
        .route(
            "/customers/{id}/consents/{cid}/withdraw",
            post(privacy::withdraw_submit),
        )
        .route(
            "/privacy/requests",
            get(privacy::requests_page).post(privacy::request_submit),
        )
        .route("/privacy/requests/{id}/{action}", post(privacy::act_submit))
        // Funder network (issue #5).
        .route("/funders", get(funders::list))
        .route("/funders/{code}", get(funders::show))
        .route(
            "/funders/{code}/admission",
            get(funders::admission_form).post(funders::admission_submit),
        )
        .route(
            "/funders/{code}/admission/decision",
            post(funders::admission_decide),
        )
        // Products and pricing (issue #5)
        .route("/products", get(products::list))
        .route(
            "/products/new",
            get(products::new_form).post(products::create),
        )
        .route("/products/{code}", get(products::detail))
        .route(
            "/products/{code}/edit",
            get(products::edit_form).post(products::edit_save),
        )
        .route("/products/{code}/status", post(products::status_submit))
        .route(
            "/quotes/new",
            get(products::quote_new).post(products::quote_submit),
        )
        .route("/quotes/{id}", get(products::quote_page))
        // Contracts and disbursement (issue #6)
        .route("/contract-templates", get(contracts::templates))
        .route(
            "/contract-templates/{code}",
            get(contracts::edit).post(contracts::save),
        )
        .route(
            "/contract-templates/{code}/{version}",
            get(contracts::version),
        )
        .route(
            "/contract-templates/{code}/{version}/preview.pdf",
            get(contracts::preview_pdf),
        )
        .route("/applications/{id}/contract", post(contracts::generate))
        .route("/contracts/{id}/pdf", get(contracts::pdf))
        .route("/contracts/{id}/signatures", post(contracts::sign))
        .route("/contracts/{id}/void", post(contracts::void))
        // Loans, repayments and the ledger (issue #8)
        .route("/loans", get(loans::list))
        .route("/loans/{id}", get(loans::show))
        .route("/loans/{id}/repayments", post(loans::repay))
        .route(
            "/loans/{id}/repayments/{rid}/reversal",
            post(loans::reverse),
        )
        // --- Credit decisions (issue #7) ---
        .route("/risk", get(risk::overview))
        .route("/risk/blacklist", post(risk::blacklist_add))
        .route("/risk/blacklist/{id}/remove", post(risk::blacklist_remove))
        .route("/risk/decisions", get(risk::decisions))
        .route("/risk/decisions/{id}", get(risk::decision))
        .route("/risk/decisions/{id}/replay", post(risk::decision_replay))
        .route(
            "/risk/decisions/{id}/overrides",
            post(risk::override_request),
        )
        .route(
            "/risk/decisions/{id}/overrides/{override_id}",
            post(risk::override_decide),
        )
        .route("/risk/models", get(risk::models).post(risk::upload))
        .route(
            "/risk/models/compare",
            get(risk::compare).post(risk::compare_sample),
        )
        .route("/risk/models/{id}", get(risk::model))
        .route("/risk/models/{id}/promote", post(risk::promote))
        .route("/risk/models/{id}/status", post(risk::model_status))
        .route(
            "/risk/policy-rules",
            get(risk::rules).post(risk::rules_submit),
        )
        .route("/risk/policy-rules/{id}", get(risk::rule_set))
        .route(
            "/risk/policy-rules/{id}/enable",
            post(risk::rule_set_enable),
        )
        // --- end credit decisions ---
        // Risk warnings and credit limits (issue #7 items 3 and 4). /risk/decisions and
        // /risk/models belong to the credit decision pages.
        .route("/risk/dashboard", get(warnings::dashboard))
        .route("/risk/warnings", get(warnings::warnings_list))
        .route("/risk/warnings/{id}", get(warnings::warning_page))
        .route(
            "/risk/warnings/{id}/acknowledge",
            post(warnings::acknowledge_submit),
        )
        .route("/risk/warnings/{id}/close", post(warnings::close_submit))
        .route("/risk/tasks/{id}/done", post(warnings::task_done_submit))
        .route("/risk/rules", get(warnings::rules_list))
        .route(
            "/risk/rules/new",
            get(warnings::rule_new).post(warnings::rule_create_submit),
        )
        .route(
            "/risk/rules/{code}",
            get(warnings::rule_page).post(warnings::rule_update_submit),
        )
        .route("/risk/rules/{code}/test", post(warnings::rule_test_submit))
        .route(
            "/risk/rules/{code}/enable",
            post(warnings::rule_enable_submit),
        )
        .route(
            "/risk/rules/{code}/disable",
            post(warnings::rule_disable_submit),
        )
        .route("/risk/playbooks", get(warnings::playbooks_page))
        .route(
            "/risk/playbooks/{severity}",
            post(warnings::playbook_submit),
        )
        .route("/risk/limits", get(limits::list_page))
        .route("/risk/limits/request", post(limits::request_submit))
        .route("/risk/limits/{id}", get(limits::detail_page))
        .route("/risk/limits/{id}/freeze", post(limits::freeze_submit))
        .route("/risk/limits/{id}/unfreeze", post(limits::unfreeze_submit))
        .route(
            "/risk/limits/adjustments/{id}/decision",
            post(limits::decision_submit),
        )
        // Worklists, exception alerts, notifications, process analytics (issue #6 items 3–4)
        .route("/tasks/watch/{id}", post(worklists::watch))
        .route("/tasks/unwatch/{id}", post(worklists::unwatch))
        .route("/tasks/watched/seen", post(worklists::seen))
        .route("/notifications", get(notifications::list))
        .route("/notifications/{id}/read", post(notifications::read))
        .route("/notifications/read-all", post(notifications::read_all))
        .route(
            "/admin/webhooks",
            get(notifications::webhooks).post(notifications::webhook_create),
        )
        .route(
            "/admin/webhooks/{id}",
            get(notifications::webhook).post(notifications::webhook_update),
        )
        .route(
            "/admin/webhooks/{id}/test",
            post(notifications::webhook_test),
        )
        .route(
            "/admin/org-units/{id}/manager",
            post(notifications::set_manager),
        )
        .route("/workflows/analytics", get(analytics::page_handler))
        // Daily close, collections, reconciliation and portfolio reports (issue #8)
        .route("/cob", get(cob::runs))
        .route("/cob/run", post(cob::run_submit))
        .route("/loans/{id}/servicing", get(cob::servicing))
        .route(
            "/loans/{id}/classification-requests",
            post(cob::floor_submit),
        )
        .route(
            "/classification-requests/{id}/decision",
            post(cob::floor_decide),
        )
        .route("/collections", get(collections::queue))
        .route("/collections/cases/{id}", get(collections::case))
        .route(
            "/collections/cases/{id}/contacts",
            post(collections::contact_submit),
        )
        .route(
            "/collections/cases/{id}/assign",
            post(collections::assign_submit),
        )
        .route(
            "/collections/cases/{id}/agency",
            post(collections::agency_submit),
        )
        .route(
            "/collections/cases/{id}/agency/end",
            post(collections::agency_end_submit),
        )
        .route(
            "/collections/cases/{id}/close",
            post(collections::close_submit),
        )
        .route(
            "/reconciliation",
            get(reconciliation::list)
                .post(reconciliation::upload)
                .layer(axum::extract::DefaultBodyLimit::max(9 * 1024 * 1024)),
        )
        .route("/reconciliation/files/{id}", get(reconciliation::file))
        .route(
            "/reconciliation/breaks/{id}/resolve",
            post(reconciliation::resolve),
        )
        .route("/reports", get(portfolio::index))
        .route("/reports/portfolio", get(portfolio::portfolio))
        .route("/reports/portfolio.xlsx", get(portfolio::portfolio_xlsx))
}
