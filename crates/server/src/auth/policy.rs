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
    // Audit
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
