//! The server-rendered web UI: zh-CN by default with English, no CDN, no build step.
//! Pages are HTML rendered with `maud`; assets are embedded in the binary; charts are SVG
//! drawn on the server; JavaScript only enhances what already works without it.

pub mod account;
pub mod admin_users;
pub mod assets;
pub mod audit;
pub mod chart;
pub mod i18n;
pub mod layout;
pub mod modules;
pub mod pages;
pub mod products;

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
        .route("/account/totp", post(account::totp_start))
        .route("/account/totp/confirm", post(account::totp_confirm))
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
}
