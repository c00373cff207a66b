//! The server-rendered web UI: zh-CN by default with English, no CDN, no build step.
//! Pages are HTML rendered with `maud`; assets are embedded in the binary; charts are SVG
//! drawn on the server; JavaScript only enhances what already works without it.

pub mod account;
pub mod admin_users;
pub mod assets;
pub mod audit;
pub mod chart;
// Funder network (issue #5).
pub mod funders;
pub mod i18n;
pub mod layout;
pub mod modules;
pub mod pages;

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
}
