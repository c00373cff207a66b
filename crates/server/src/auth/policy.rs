//! The access policy of every route: one table, read by the one authorization layer.
//!
//! A route missing from this table is refused to everyone (fail closed) and reported by
//! the role × route matrix test, so a new route cannot ship unguarded.

use axum::http::Method;

/// What a route requires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone, signed in or not (health checks, login, assets).
    Public,
    /// Any signed-in user (their own account, sessions, tokens).
    SignedIn,
    /// A signed-in user holding this permission.
    Permission(&'static str),
}

use Access::{Permission as P, Public, SignedIn};

/// (method, route template as registered with axum, access).
pub const POLICY: &[(Method, &str, Access)] = &[
    // System
    (Method::GET, "/healthz", Public),
    (Method::GET, "/readyz", Public),
    (Method::GET, "/metrics", Public),
    (Method::GET, "/api/v1/openapi.json", Public),
    (Method::GET, "/api/docs", Public),
    (Method::GET, "/api/v1/system/info", SignedIn),
    (Method::GET, "/api/v1/system/jobs", P("system.read")),
    (Method::GET, "/api/v1/org-units", P("org.read")),
    // Authentication and the caller's own account
    (Method::POST, "/api/v1/auth/login", Public),
    (Method::POST, "/api/v1/auth/logout", SignedIn),
    (Method::POST, "/api/v1/auth/logout-all", SignedIn),
    (Method::GET, "/api/v1/auth/me", SignedIn),
    (Method::GET, "/api/v1/auth/sessions", SignedIn),
    (Method::POST, "/api/v1/auth/totp/enrol", SignedIn),
    (Method::POST, "/api/v1/auth/totp/confirm", SignedIn),
    (Method::GET, "/api/v1/auth/tokens", SignedIn),
    (Method::POST, "/api/v1/auth/tokens", SignedIn),
    (Method::DELETE, "/api/v1/auth/tokens/{id}", SignedIn),
    (Method::POST, "/api/v1/auth/password", SignedIn),
    // Users and roles
    (Method::GET, "/api/v1/users", P("user.read")),
    (Method::POST, "/api/v1/users", P("user.manage")),
    (Method::GET, "/api/v1/users/{id}", P("user.read")),
    (Method::PATCH, "/api/v1/users/{id}", P("user.manage")),
    (Method::POST, "/api/v1/users/{id}/reveal", P("user.reveal")),
    (Method::GET, "/api/v1/roles", P("role.read")),
    (Method::PUT, "/api/v1/roles/{code}", P("role.manage")),
    (Method::GET, "/api/v1/permissions", P("role.read")),
    (Method::GET, "/api/v1/audit", P("audit.read")),
    (Method::GET, "/api/v1/audit/export", P("audit.export")),
    (Method::POST, "/api/v1/audit/verify", P("audit.verify")),
    (Method::GET, "/api/v1/audit/checkpoints", P("audit.read")),
    // Applications (acting on one: the workflow engine checks the step's role and four eyes)
    (Method::GET, "/api/v1/applications", P("application.read")),
    (
        Method::POST,
        "/api/v1/applications",
        P("application.create"),
    ),
    (
        Method::GET,
        "/api/v1/applications/{id}",
        P("application.read"),
    ),
    (
        Method::POST,
        "/api/v1/applications/{id}/actions",
        P("application.read"),
    ),
    // --- Credit decisions (issue #7) ---
    (Method::GET, "/api/v1/decisions", P("risk.read")),
    (Method::POST, "/api/v1/decisions", P("risk.manage")),
    (Method::GET, "/api/v1/decisions/{id}", P("risk.read")),
    (
        Method::POST,
        "/api/v1/decisions/{id}/replay",
        P("risk.read"),
    ),
    (
        Method::POST,
        "/api/v1/decisions/{id}/overrides",
        P("risk.manage"),
    ),
    (
        Method::POST,
        "/api/v1/decisions/{id}/overrides/{override_id}/decision",
        P("risk.manage"),
    ),
    (Method::GET, "/api/v1/models", P("risk.read")),
    (Method::POST, "/api/v1/models", P("risk.manage")),
    (Method::GET, "/api/v1/models/{id}", P("risk.read")),
    (
        Method::POST,
        "/api/v1/models/{id}/promote",
        P("risk.manage"),
    ),
    (Method::POST, "/api/v1/models/{id}/status", P("risk.manage")),
    (Method::POST, "/api/v1/models/compare", P("risk.read")),
    (Method::GET, "/api/v1/rule-sets", P("risk.read")),
    (Method::POST, "/api/v1/rule-sets", P("risk.manage")),
    (Method::GET, "/api/v1/rule-sets/{id}", P("risk.read")),
    (
        Method::POST,
        "/api/v1/rule-sets/{id}/enable",
        P("risk.manage"),
    ),
    (Method::POST, "/api/v1/rule-sets/test", P("risk.read")),
    (Method::GET, "/api/v1/blacklist", P("risk.read")),
    (Method::POST, "/api/v1/blacklist", P("risk.manage")),
    (
        Method::POST,
        "/api/v1/blacklist/{id}/removal",
        P("risk.manage"),
    ),
    (Method::GET, "/risk", P("risk.read")),
    (Method::POST, "/risk/blacklist", P("risk.manage")),
    (
        Method::POST,
        "/risk/blacklist/{id}/remove",
        P("risk.manage"),
    ),
    (Method::GET, "/risk/decisions", P("risk.read")),
    (Method::GET, "/risk/decisions/{id}", P("risk.read")),
    (Method::POST, "/risk/decisions/{id}/replay", P("risk.read")),
    (
        Method::POST,
        "/risk/decisions/{id}/overrides",
        P("risk.manage"),
    ),
    (
        Method::POST,
        "/risk/decisions/{id}/overrides/{override_id}",
        P("risk.manage"),
    ),
    (Method::GET, "/risk/models", P("risk.read")),
    (Method::POST, "/risk/models", P("risk.manage")),
    (Method::GET, "/risk/models/compare", P("risk.read")),
    (Method::POST, "/risk/models/compare", P("risk.read")),
    (Method::GET, "/risk/models/{id}", P("risk.read")),
    (Method::POST, "/risk/models/{id}/promote", P("risk.manage")),
    (Method::POST, "/risk/models/{id}/status", P("risk.manage")),
    (Method::GET, "/risk/policy-rules", P("risk.read")),
    (Method::POST, "/risk/policy-rules", P("risk.read")),
    (Method::GET, "/risk/policy-rules/{id}", P("risk.read")),
    (
        Method::POST,
        "/risk/policy-rules/{id}/enable",
        P("risk.manage"),
    ),
    // --- end credit decisions ---
    // Workflow
    (Method::GET, "/api/v1/workflows", P("workflow.read")),
    (Method::POST, "/api/v1/workflows", P("workflow.manage")),
    (
        Method::POST,
        "/api/v1/workflows/validate",
        P("workflow.read"),
    ),
    (
        Method::GET,
        "/api/v1/workflows/{code}/{version}",
        P("workflow.read"),
    ),
    (Method::GET, "/api/v1/tasks", SignedIn),
    // Customers
    (Method::GET, "/api/v1/customers", P("customer.read")),
    (Method::POST, "/api/v1/customers", P("customer.create")),
    (Method::GET, "/api/v1/customers/{id}", P("customer.read")),
    (
        Method::PATCH,
        "/api/v1/customers/{id}",
        P("customer.update"),
    ),
    (
        Method::POST,
        "/api/v1/customers/{id}/reveal",
        P("customer.reveal"),
    ),
    (
        Method::POST,
        "/api/v1/customers/{id}/relations",
        P("customer.update"),
    ),
    (
        Method::GET,
        "/api/v1/customers/{id}/history",
        P("customer.read"),
    ),
    // Customer documents, consents and data-subject requests (issue #4 parts 2–4)
    (
        Method::POST,
        "/api/v1/customers/{id}/documents",
        P("document.upload"),
    ),
    (
        Method::GET,
        "/api/v1/customers/{id}/documents",
        P("document.read"),
    ),
    (
        Method::GET,
        "/api/v1/customers/{id}/documents/status",
        P("document.read"),
    ),
    (
        Method::GET,
        "/api/v1/customers/{id}/documents/{doc_id}",
        P("document.read"),
    ),
    (
        Method::GET,
        "/api/v1/customers/{id}/documents/{doc_id}/content",
        P("document.read"),
    ),
    (
        Method::POST,
        "/api/v1/customers/{id}/documents/{doc_id}/verification",
        P("document.verify"),
    ),
    (
        Method::GET,
        "/api/v1/documents/pending",
        P("document.verify"),
    ),
    (
        Method::POST,
        "/api/v1/customers/{id}/consents",
        P("consent.manage"),
    ),
    (
        Method::GET,
        "/api/v1/customers/{id}/consents",
        P("customer.read"),
    ),
    (
        Method::POST,
        "/api/v1/customers/{id}/consents/{cid}/withdraw",
        P("consent.manage"),
    ),
    (
        Method::POST,
        "/api/v1/privacy/requests",
        P("consent.manage"),
    ),
    (
        Method::GET,
        "/api/v1/privacy/requests",
        P("privacy.request.read"),
    ),
    (
        Method::GET,
        "/api/v1/privacy/requests/{id}",
        P("privacy.request.read"),
    ),
    (
        Method::POST,
        "/api/v1/privacy/requests/{id}/start",
        P("privacy.request.handle"),
    ),
    (
        Method::POST,
        "/api/v1/privacy/requests/{id}/complete",
        P("privacy.request.handle"),
    ),
    (
        Method::POST,
        "/api/v1/privacy/requests/{id}/refuse",
        P("privacy.request.handle"),
    ),
    (
        Method::GET,
        "/api/v1/privacy/requests/{id}/export",
        P("privacy.request.handle"),
    ),
    (Method::GET, "/documents/verify", P("document.verify")),
    (
        Method::POST,
        "/documents/verify/{doc_id}",
        P("document.verify"),
    ),
    (Method::GET, "/customers/{id}/documents", P("document.read")),
    (
        Method::POST,
        "/customers/{id}/documents",
        P("document.upload"),
    ),
    (
        Method::GET,
        "/customers/{id}/documents/{doc_id}/content",
        P("document.read"),
    ),
    (
        Method::POST,
        "/customers/{id}/consents",
        P("consent.manage"),
    ),
    (
        Method::POST,
        "/customers/{id}/consents/{cid}/withdraw",
        P("consent.manage"),
    ),
    (Method::GET, "/privacy/requests", P("privacy.request.read")),
    (Method::POST, "/privacy/requests", P("consent.manage")),
    (
        Method::POST,
        "/privacy/requests/{id}/{action}",
        P("privacy.request.handle"),
    ),
    // Funder network (issue #5): partners, admission, limits, routing, callbacks
    (Method::GET, "/api/v1/partners", P("funder.read")),
    (Method::POST, "/api/v1/partners", P("funder.manage")),
    (Method::GET, "/api/v1/partners/{code}", P("funder.read")),
    (Method::PATCH, "/api/v1/partners/{code}", P("funder.manage")),
    (
        Method::POST,
        "/api/v1/partners/{code}/status",
        P("funder.manage"),
    ),
    (
        Method::POST,
        "/api/v1/partners/{code}/licences",
        P("funder.manage"),
    ),
    (
        Method::POST,
        "/api/v1/partners/{code}/documents",
        P("funder.manage"),
    ),
    (
        Method::POST,
        "/api/v1/partners/{code}/contacts",
        P("funder.manage"),
    ),
    (
        Method::POST,
        "/api/v1/partners/{code}/admission",
        P("funder.manage"),
    ),
    (
        Method::POST,
        "/api/v1/partners/{code}/admission/decision",
        P("funder.admit"),
    ),
    (
        Method::PUT,
        "/api/v1/partners/{code}/limits",
        P("funder.manage"),
    ),
    (
        Method::PUT,
        "/api/v1/partners/{code}/pricing",
        P("funder.manage"),
    ),
    (
        Method::GET,
        "/api/v1/partners/{code}/performance",
        P("funder.read"),
    ),
    (
        Method::GET,
        "/api/v1/funder-performance.xlsx",
        P("funder.read"),
    ),
    (Method::GET, "/api/v1/admission-standards", P("funder.read")),
    (
        Method::PUT,
        "/api/v1/admission-standards",
        P("funder.manage"),
    ),
    (Method::POST, "/api/v1/routing/runs", P("routing.run")),
    (Method::GET, "/api/v1/routing/runs", P("funder.read")),
    (Method::GET, "/api/v1/routing/runs/{id}", P("funder.read")),
    (Method::GET, "/api/v1/routing/waterfall", P("funder.read")),
    (Method::PUT, "/api/v1/routing/waterfall", P("funder.manage")),
    // Signed by the funder (HMAC), not by a user session.
    (Method::POST, "/api/v1/funder-callbacks/{code}", Public),
    // Contracts and disbursement (issue #6); the disbursement callback is the funder
    // callback above. Acting on a contract also needs the application in scope.
    (Method::GET, "/api/v1/contract-templates", P("product.read")),
    (
        Method::POST,
        "/api/v1/contract-templates",
        P("contract.template.manage"),
    ),
    (
        Method::GET,
        "/api/v1/contract-templates/placeholders",
        P("product.read"),
    ),
    (
        Method::GET,
        "/api/v1/contract-templates/{code}",
        P("product.read"),
    ),
    (
        Method::GET,
        "/api/v1/contract-templates/{code}/versions/{version}",
        P("product.read"),
    ),
    (
        Method::GET,
        "/api/v1/contract-templates/{code}/versions/{version}/preview",
        P("product.read"),
    ),
    (
        Method::POST,
        "/api/v1/applications/{id}/contract",
        P("contract.manage"),
    ),
    (
        Method::GET,
        "/api/v1/applications/{id}/contract",
        P("application.read"),
    ),
    (
        Method::GET,
        "/api/v1/contracts/{id}/pdf",
        P("contract.read"),
    ),
    (
        Method::POST,
        "/api/v1/contracts/{id}/signatures",
        P("contract.manage"),
    ),
    (
        Method::POST,
        "/api/v1/contracts/{id}/void",
        P("contract.manage"),
    ),
    (Method::GET, "/funders", P("funder.read")),
    (Method::GET, "/funders/{code}", P("funder.read")),
    (Method::GET, "/funders/{code}/admission", P("funder.manage")),
    (
        Method::POST,
        "/funders/{code}/admission",
        P("funder.manage"),
    ),
    (
        Method::POST,
        "/funders/{code}/admission/decision",
        P("funder.admit"),
    ),
    // Products and pricing (issue #5)
    (Method::GET, "/api/v1/products", P("product.read")),
    (Method::POST, "/api/v1/products", P("product.manage")),
    (Method::GET, "/api/v1/products/{code}", P("product.read")),
    (
        Method::GET,
        "/api/v1/products/{code}/versions",
        P("product.read"),
    ),
    (
        Method::POST,
        "/api/v1/products/{code}/versions",
        P("product.manage"),
    ),
    (
        Method::POST,
        "/api/v1/products/{code}/status",
        P("product.manage"),
    ),
    (Method::POST, "/api/v1/quotes", P("quote.create")),
    (Method::GET, "/api/v1/quotes/{id}", P("product.read")),
    // Loans, repayments and the ledger (issue #8)
    (Method::GET, "/api/v1/loans", P("loan.read")),
    (Method::GET, "/api/v1/loans/{id}", P("loan.read")),
    (
        Method::POST,
        "/api/v1/loans/{id}/repayments",
        P("loan.repay"),
    ),
    (
        Method::POST,
        "/api/v1/loans/{id}/repayments/{rid}/reversal",
        P("loan.reverse"),
    ),
    (Method::GET, "/api/v1/loans/{id}/balances", P("loan.read")),
    (Method::GET, "/api/v1/ledger/accounts", P("ledger.read")),
    (Method::GET, "/api/v1/ledger/funders", P("ledger.read")),
    // Daily close, collections, reconciliation, reports (issue #8 items 3–7)
    (Method::GET, "/api/v1/cob/runs", P("loan.read")),
    (Method::POST, "/api/v1/cob/runs", P("cob.run")),
    (Method::GET, "/api/v1/cob/runs/{date}", P("loan.read")),
    (Method::GET, "/api/v1/loans/{id}/servicing", P("loan.read")),
    (
        Method::POST,
        "/api/v1/loans/{id}/classification-requests",
        P("loan.classify"),
    ),
    (
        Method::GET,
        "/api/v1/classification-requests",
        P("loan.classify.approve"),
    ),
    (
        Method::POST,
        "/api/v1/classification-requests/{id}/decision",
        P("loan.classify.approve"),
    ),
    (
        Method::POST,
        "/api/v1/loans/{id}/restructuring",
        P("loan.classify"),
    ),
    (
        Method::PUT,
        "/api/v1/partners/{code}/guarantee",
        P("funder.manage"),
    ),
    (
        Method::GET,
        "/api/v1/collections/cases",
        P("collection.read"),
    ),
    (
        Method::GET,
        "/api/v1/collections/cases/{id}",
        P("collection.read"),
    ),
    (
        Method::POST,
        "/api/v1/collections/cases/{id}/contacts",
        P("collection.work"),
    ),
    (
        Method::POST,
        "/api/v1/collections/cases/{id}/assignment",
        P("collection.assign"),
    ),
    (
        Method::POST,
        "/api/v1/collections/cases/{id}/agency",
        P("collection.assign"),
    ),
    (
        Method::POST,
        "/api/v1/collections/cases/{id}/agency/end",
        P("collection.assign"),
    ),
    (
        Method::POST,
        "/api/v1/collections/cases/{id}/closure",
        P("collection.manage"),
    ),
    (
        Method::GET,
        "/api/v1/collections/agencies",
        P("collection.read"),
    ),
    (
        Method::PUT,
        "/api/v1/collections/agencies/{code}",
        P("collection.manage"),
    ),
    (
        Method::GET,
        "/api/v1/reconciliation/files",
        P("funder.reconcile"),
    ),
    (
        Method::POST,
        "/api/v1/reconciliation/files",
        P("funder.reconcile"),
    ),
    (
        Method::GET,
        "/api/v1/reconciliation/files/{id}",
        P("funder.reconcile"),
    ),
    (
        Method::GET,
        "/api/v1/reconciliation/breaks",
        P("funder.reconcile"),
    ),
    (
        Method::POST,
        "/api/v1/reconciliation/breaks/{id}/resolution",
        P("funder.reconcile"),
    ),
    (Method::GET, "/api/v1/reports/portfolio", P("report.read")),
    (
        Method::GET,
        "/api/v1/reports/portfolio.xlsx",
        P("report.export"),
    ),
    (Method::GET, "/api/v1/reports/roll-rates", P("report.read")),
    // UI pages of the daily close, collections, reconciliation, reports
    (Method::GET, "/cob", P("loan.read")),
    (Method::POST, "/cob/run", P("cob.run")),
    (Method::GET, "/collections", P("collection.read")),
    (Method::GET, "/collections/cases/{id}", P("collection.read")),
    (
        Method::POST,
        "/collections/cases/{id}/contacts",
        P("collection.work"),
    ),
    (
        Method::POST,
        "/collections/cases/{id}/assign",
        P("collection.assign"),
    ),
    (
        Method::POST,
        "/collections/cases/{id}/agency",
        P("collection.assign"),
    ),
    (
        Method::POST,
        "/collections/cases/{id}/agency/end",
        P("collection.assign"),
    ),
    (
        Method::POST,
        "/collections/cases/{id}/close",
        P("collection.manage"),
    ),
    (Method::GET, "/reconciliation", P("funder.reconcile")),
    (Method::POST, "/reconciliation", P("funder.reconcile")),
    (
        Method::GET,
        "/reconciliation/files/{id}",
        P("funder.reconcile"),
    ),
    (
        Method::POST,
        "/reconciliation/breaks/{id}/resolve",
        P("funder.reconcile"),
    ),
    (Method::GET, "/reports", P("report.read")),
    (Method::GET, "/reports/portfolio", P("report.read")),
    (Method::GET, "/reports/portfolio.xlsx", P("report.export")),
    (Method::GET, "/loans/{id}/servicing", P("loan.read")),
    (
        Method::POST,
        "/loans/{id}/classification-requests",
        P("loan.classify"),
    ),
    (
        Method::POST,
        "/classification-requests/{id}/decision",
        P("loan.classify.approve"),
    ),
    // --- end daily close ---
    // Bulk customer import and export (issue #4 part 5)
    (
        Method::POST,
        "/api/v1/customers/imports",
        P("customer.import"),
    ),
    (
        Method::GET,
        "/api/v1/customers/imports/{id}",
        P("customer.import"),
    ),
    (
        Method::GET,
        "/api/v1/customers/imports/{id}/errors.xlsx",
        P("customer.import"),
    ),
    (
        Method::GET,
        "/api/v1/customers/export",
        P("customer.export"),
    ),
    (
        Method::POST,
        "/api/v1/customers/exports",
        P("customer.export"),
    ),
    (
        Method::GET,
        "/api/v1/customers/exports",
        P("customer.export"),
    ),
    (
        Method::GET,
        "/api/v1/customers/exports/pending",
        P("customer.export.approve"),
    ),
    (
        Method::POST,
        "/api/v1/customers/exports/{id}/decision",
        P("customer.export.approve"),
    ),
    (
        Method::GET,
        "/api/v1/customers/exports/{id}/file",
        P("customer.export"),
    ),
    // Risk warnings and credit limits (issue #7 items 3 and 4)
    (Method::GET, "/api/v1/risk/rules", P("risk.read")),
    (Method::POST, "/api/v1/risk/rules", P("risk.manage")),
    (Method::POST, "/api/v1/risk/rules/test", P("risk.manage")),
    (Method::GET, "/api/v1/risk/rules/{code}", P("risk.read")),
    (Method::PUT, "/api/v1/risk/rules/{code}", P("risk.manage")),
    (
        Method::POST,
        "/api/v1/risk/rules/{code}/enable",
        P("risk.manage"),
    ),
    (
        Method::POST,
        "/api/v1/risk/rules/{code}/disable",
        P("risk.manage"),
    ),
    (Method::POST, "/api/v1/risk/events", P("risk.event")),
    (Method::GET, "/api/v1/risk/warnings", P("risk.read")),
    (Method::GET, "/api/v1/risk/warnings/{id}", P("risk.read")),
    (
        Method::POST,
        "/api/v1/risk/warnings/{id}/acknowledge",
        P("risk.manage"),
    ),
    (
        Method::POST,
        "/api/v1/risk/warnings/{id}/close",
        P("risk.manage"),
    ),
    (Method::GET, "/api/v1/risk/tasks", P("risk.read")),
    // The task's role is checked inside (or risk.manage).
    (Method::POST, "/api/v1/risk/tasks/{id}/done", P("risk.read")),
    (Method::GET, "/api/v1/risk/playbooks", P("risk.read")),
    (
        Method::PUT,
        "/api/v1/risk/playbooks/{severity}",
        P("risk.manage"),
    ),
    (Method::GET, "/api/v1/risk/dashboard", P("risk.read")),
    (Method::GET, "/api/v1/risk/psi", P("risk.read")),
    (Method::POST, "/api/v1/risk/psi/baselines", P("risk.manage")),
    (Method::POST, "/api/v1/risk/psi/run", P("risk.manage")),
    (Method::GET, "/api/v1/risk/limits", P("risk.read")),
    (Method::GET, "/api/v1/risk/limits/{id}", P("risk.read")),
    (
        Method::POST,
        "/api/v1/risk/limits/adjustments",
        P("risk.limit"),
    ),
    (
        Method::GET,
        "/api/v1/risk/limits/adjustments",
        P("risk.read"),
    ),
    (
        Method::POST,
        "/api/v1/risk/limits/adjustments/{id}/decision",
        P("risk.limit.approve"),
    ),
    (
        Method::POST,
        "/api/v1/risk/limits/{id}/freeze",
        P("risk.limit"),
    ),
    (
        Method::POST,
        "/api/v1/risk/limits/{id}/unfreeze",
        P("risk.limit"),
    ),
    (Method::GET, "/risk/dashboard", P("risk.read")),
    (Method::GET, "/risk/warnings", P("risk.read")),
    (Method::GET, "/risk/warnings/{id}", P("risk.read")),
    (
        Method::POST,
        "/risk/warnings/{id}/acknowledge",
        P("risk.manage"),
    ),
    (Method::POST, "/risk/warnings/{id}/close", P("risk.manage")),
    (Method::POST, "/risk/tasks/{id}/done", P("risk.read")),
    (Method::GET, "/risk/rules", P("risk.read")),
    (Method::GET, "/risk/rules/new", P("risk.manage")),
    (Method::POST, "/risk/rules/new", P("risk.manage")),
    (Method::GET, "/risk/rules/{code}", P("risk.read")),
    (Method::POST, "/risk/rules/{code}", P("risk.manage")),
    (Method::POST, "/risk/rules/{code}/test", P("risk.manage")),
    (Method::POST, "/risk/rules/{code}/enable", P("risk.manage")),
    (Method::POST, "/risk/rules/{code}/disable", P("risk.manage")),
    (Method::GET, "/risk/playbooks", P("risk.read")),
    (Method::POST, "/risk/playbooks/{severity}", P("risk.manage")),
    (Method::GET, "/risk/limits", P("risk.read")),
    (Method::POST, "/risk/limits/request", P("risk.limit")),
    (Method::GET, "/risk/limits/{id}", P("risk.read")),
    (Method::POST, "/risk/limits/{id}/freeze", P("risk.limit")),
    (Method::POST, "/risk/limits/{id}/unfreeze", P("risk.limit")),
    (
        Method::POST,
        "/risk/limits/adjustments/{id}/decision",
        P("risk.limit.approve"),
    ),
    // Web UI
    (Method::GET, "/", SignedIn),
    (Method::GET, "/m/{module}", SignedIn),
    (Method::GET, "/lang/{code}", Public),
    (Method::GET, "/assets/{file}", Public),
    (Method::GET, "/login", Public),
    (Method::POST, "/login", Public),
    (Method::POST, "/logout", SignedIn),
    (Method::GET, "/account", SignedIn),
    (Method::GET, "/audit", P("audit.read")),
    (Method::POST, "/audit/verify", P("audit.verify")),
    (Method::POST, "/account/sessions/revoke-others", SignedIn),
    (Method::POST, "/account/totp", SignedIn),
    (Method::POST, "/account/totp/confirm", SignedIn),
    (Method::GET, "/admin/users", P("user.read")),
    (Method::POST, "/admin/users", P("user.manage")),
    (Method::GET, "/admin/roles", P("role.read")),
    (Method::GET, "/admin/roles/{code}", P("role.read")),
    (Method::POST, "/admin/roles/{code}", P("role.manage")),
    // Application pages
    (Method::GET, "/applications", P("application.read")),
    (Method::GET, "/applications/new", P("application.create")),
    (Method::POST, "/applications/new", P("application.create")),
    (Method::GET, "/applications/{id}", P("application.read")),
    (
        Method::POST,
        "/applications/{id}/actions",
        P("application.read"),
    ),
    // Workflow designer and to-do list
    (Method::GET, "/tasks", SignedIn),
    (Method::GET, "/workflows", P("workflow.read")),
    (
        Method::GET,
        "/workflows/{code}/{version}",
        P("workflow.read"),
    ),
    (
        Method::POST,
        "/workflows/{code}/{version}",
        P("workflow.read"),
    ),
    // Customer pages
    (Method::GET, "/customers", P("customer.read")),
    (Method::GET, "/customers/new", P("customer.create")),
    (Method::POST, "/customers/new", P("customer.create")),
    (Method::GET, "/customers/import", P("customer.import")),
    (Method::POST, "/customers/import", P("customer.import")),
    (Method::GET, "/customers/import/{id}", P("customer.import")),
    (
        Method::POST,
        "/customers/import/{id}/confirm",
        P("customer.import"),
    ),
    (Method::GET, "/customers/{id}", P("customer.read")),
    (Method::POST, "/customers/{id}", P("customer.update")),
    (Method::POST, "/customers/{id}/reveal", P("customer.reveal")),
    (
        Method::POST,
        "/customers/{id}/relations",
        P("customer.update"),
    ),
    // Products and pricing pages (issue #5)
    (Method::GET, "/products", P("product.read")),
    (Method::GET, "/products/new", P("product.manage")),
    (Method::POST, "/products/new", P("product.manage")),
    (Method::GET, "/products/{code}", P("product.read")),
    (Method::GET, "/products/{code}/edit", P("product.manage")),
    (Method::POST, "/products/{code}/edit", P("product.manage")),
    (Method::POST, "/products/{code}/status", P("product.manage")),
    (Method::GET, "/quotes/new", P("quote.create")),
    (Method::POST, "/quotes/new", P("quote.create")),
    (Method::GET, "/quotes/{id}", P("product.read")),
    // Contracts and disbursement pages (issue #6)
    (Method::GET, "/contract-templates", P("product.read")),
    (Method::GET, "/contract-templates/{code}", P("product.read")),
    (
        Method::POST,
        "/contract-templates/{code}",
        P("contract.template.manage"),
    ),
    (
        Method::GET,
        "/contract-templates/{code}/{version}",
        P("product.read"),
    ),
    (
        Method::GET,
        "/contract-templates/{code}/{version}/preview.pdf",
        P("product.read"),
    ),
    (
        Method::POST,
        "/applications/{id}/contract",
        P("contract.manage"),
    ),
    (Method::GET, "/contracts/{id}/pdf", P("contract.read")),
    (
        Method::POST,
        "/contracts/{id}/signatures",
        P("contract.manage"),
    ),
    (Method::POST, "/contracts/{id}/void", P("contract.manage")),
    // Loan pages (issue #8)
    (Method::GET, "/loans", P("loan.read")),
    (Method::GET, "/loans/{id}", P("loan.read")),
    (Method::POST, "/loans/{id}/repayments", P("loan.repay")),
    (
        Method::POST,
        "/loans/{id}/repayments/{rid}/reversal",
        P("loan.reverse"),
    ),
    // Worklists, exception alerts, notifications, process analytics (issue #6 items 3–4).
    // Watching checks read access to the instance itself (data scope or workflow.read).
    (Method::GET, "/api/v1/tasks/done", SignedIn),
    (Method::GET, "/api/v1/tasks/watched", SignedIn),
    (Method::POST, "/api/v1/tasks/watched/seen", SignedIn),
    (Method::PUT, "/api/v1/watches/{id}", SignedIn),
    (Method::DELETE, "/api/v1/watches/{id}", SignedIn),
    (Method::GET, "/api/v1/notifications", SignedIn),
    (Method::GET, "/api/v1/notifications/unread-count", SignedIn),
    (Method::POST, "/api/v1/notifications/{id}/read", SignedIn),
    (Method::POST, "/api/v1/notifications/read-all", SignedIn),
    (Method::GET, "/api/v1/webhooks", P("notification.manage")),
    (Method::POST, "/api/v1/webhooks", P("notification.manage")),
    (
        Method::GET,
        "/api/v1/webhooks/{id}",
        P("notification.manage"),
    ),
    (
        Method::PATCH,
        "/api/v1/webhooks/{id}",
        P("notification.manage"),
    ),
    (
        Method::POST,
        "/api/v1/webhooks/{id}/test",
        P("notification.manage"),
    ),
    (
        Method::PUT,
        "/api/v1/org-units/{id}/manager",
        P("org.manage"),
    ),
    (
        Method::GET,
        "/api/v1/workflows/analytics",
        P("workflow.read"),
    ),
    (
        Method::GET,
        "/api/v1/workflows/analytics.xlsx",
        P("workflow.read"),
    ),
    (Method::POST, "/tasks/watch/{id}", SignedIn),
    (Method::POST, "/tasks/unwatch/{id}", SignedIn),
    (Method::POST, "/tasks/watched/seen", SignedIn),
    (Method::GET, "/notifications", SignedIn),
    (Method::POST, "/notifications/{id}/read", SignedIn),
    (Method::POST, "/notifications/read-all", SignedIn),
    (Method::GET, "/admin/webhooks", P("notification.manage")),
    (Method::POST, "/admin/webhooks", P("notification.manage")),
    (
        Method::GET,
        "/admin/webhooks/{id}",
        P("notification.manage"),
    ),
    (
        Method::POST,
        "/admin/webhooks/{id}",
        P("notification.manage"),
    ),
    (
        Method::POST,
        "/admin/webhooks/{id}/test",
        P("notification.manage"),
    ),
    (
        Method::POST,
        "/admin/org-units/{id}/manager",
        P("org.manage"),
    ),
    (Method::GET, "/workflows/analytics", P("workflow.read")),
];

/// The access rule of a route, if it has one.
pub fn access_for(method: &Method, route: &str) -> Option<Access> {
    // HEAD is served by GET handlers.
    let method = if method == Method::HEAD {
        &Method::GET
    } else {
        method
    };
    POLICY
        .iter()
        .find(|(m, r, _)| m == method && *r == route)
        .map(|(_, _, a)| *a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_named_permission_exists_and_routes_are_unique() {
        let mut seen = std::collections::BTreeSet::new();
        for (m, r, a) in POLICY {
            assert!(
                seen.insert((m.as_str(), *r)),
                "duplicate policy for {m} {r}"
            );
            if let Access::Permission(p) = a {
                assert!(
                    zhudai_domain::access::is_permission(p),
                    "{m} {r}: unknown permission {p}"
                );
            }
        }
    }
}
