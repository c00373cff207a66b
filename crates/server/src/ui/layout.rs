//! The page shell: header, navigation, content area. One look for every page.

use crate::auth::{Caller, CSRF_FIELD};
use crate::state::AppState;
use crate::ui::i18n::Lang;
use crate::ui::modules::{Status, GROUPS, MODULES};
use maud::{html, Markup, DOCTYPE};

/// What every page needs to know about the request.
#[derive(Debug, Clone)]
pub struct Ctx {
    pub lang: Lang,
    pub caller: Option<Caller>,
}

/// A whole page around `content`. `active` is the key of the navigation entry to
/// highlight (`home`, a module key, or `api`).
pub fn page(state: &AppState, ctx: &Ctx, active: &str, title: &str, content: Markup) -> Markup {
    let lang = ctx.lang;
    let t = state.i18n().bundle(lang);
    let other = lang.other();
    html! {
        (DOCTYPE)
        html lang=(lang.code()) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · " (t.get("app.name")) }
                link rel="stylesheet" href=(format!("/assets/app.css?v={}", env!("CARGO_PKG_VERSION")));
                link rel="icon" href="/assets/favicon.svg" type="image/svg+xml";
                script src=(format!("/assets/app.js?v={}", env!("CARGO_PKG_VERSION"))) defer {}
            }
            body {
                header.topbar {
                    a.brand href="/" { span.logo { "助" } span { (t.get("app.name")) } }
                    @if state.settings().demo {
                        span.badge.badge-warn title=(t.get("app.demo.hint")) { (t.get("app.demo")) }
                    }
                    span.spacer {}
                    span.muted data-testid="business-date" { (t.get("app.business_date")) " " (state.clock().today()) }
                    a.lang-switch href=(format!("/lang/{}", other.code())) lang=(other.code()) { (t.get("app.switch_language")) }
                    @match &ctx.caller {
                        Some(c) => {
                            // Notifications (issue #6 item 3): the bell with the unread count.
                            (crate::ui::notifications::bell(t))
                            a.user href="/account" data-testid="current-user" { (c.display_name) }
                            form.inline method="post" action="/logout" {
                                input type="hidden" name=(CSRF_FIELD) value=(c.csrf.clone().unwrap_or_default());
                                button.link type="submit" { (t.get("app.sign_out")) }
                            }
                        }
                        None => { a.user href="/login" { (t.get("app.sign_in")) } }
                    }
                }
                div.shell {
                    nav.sidebar aria-label=(t.get("nav.label")) {
                        a.nav-item.(if active == "home" { "active" } else { "" }) href="/" { (t.get("nav.home")) }
                        @for group in GROUPS {
                            div.nav-group { (t.get(&format!("nav.group.{group}"))) }
                            @for m in MODULES.iter().filter(|m| m.group == *group) {
                                a.nav-item.(if active == m.key { "active" } else { "" }) href=(format!("/m/{}", m.key)) {
                                    (t.get(&format!("module.{}.title", m.key)))
                                    @if matches!(m.status, Status::Planned(_)) { span.soon { (t.get("nav.soon")) } }
                                }
                            }
                        }
                        div.nav-group { (t.get("nav.group.developer")) }
                        a.nav-item.(if active == "api" { "active" } else { "" }) href="/api/docs" { (t.get("api.title")) }
                    }
                    main.content {
                        h1.page-title { (title) }
                        (content)
                    }
                }
                footer.footer.muted { "zhudai " (env!("CARGO_PKG_VERSION")) " · " (state.store().backend().name()) }
            }
        }
    }
}
