//! The workflow designer pages (list, a definition drawn as a diagram with its source,
//! check a changed definition and install it as a new version). The worklists are in
//! [`crate::ui::worklists`].

use crate::api::audit::shanghai;
use crate::api::workflows::{detail, DefinitionDetail};
use crate::auth::{AuditNote, Caller, CSRF_FIELD};
use crate::error::{ApiError, FieldError};
use crate::state::AppState;
use crate::ui::i18n::Lang;
use crate::ui::layout::{page, Ctx};
use crate::workflow as wf;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use maud::{html, Markup};
use serde::Deserialize;
use std::collections::BTreeMap;
use zhudai_workflow::Definition;

/// The definition as an SVG diagram: nodes in layers by distance from the start, edges as
/// arrows labelled with their action (and a `*` when guarded).
pub fn diagram(d: &DefinitionDetail) -> Markup {
    // Layer = shortest distance from the start.
    let mut layer: BTreeMap<&str, usize> = BTreeMap::new();
    layer.insert(d.start.as_str(), 0);
    let mut frontier = vec![d.start.as_str()];
    while !frontier.is_empty() {
        let mut next = Vec::new();
        for n in frontier {
            let depth = layer.get(n).copied().unwrap_or(0);
            for e in d.edges.iter().filter(|e| e.from == n) {
                if !layer.contains_key(e.to.as_str()) {
                    layer.insert(e.to.as_str(), depth + 1);
                    next.push(e.to.as_str());
                }
            }
        }
        frontier = next;
    }
    let (w, h, gap_x, gap_y) = (150_i64, 44_i64, 40_i64, 34_i64);
    let mut row_of: BTreeMap<usize, i64> = BTreeMap::new();
    let mut pos: BTreeMap<&str, (i64, i64)> = BTreeMap::new();
    for n in &d.nodes {
        let l = layer.get(n.id.as_str()).copied().unwrap_or(0);
        let r = row_of.entry(l).or_insert(0);
        pos.insert(
            n.id.as_str(),
            (20 + l as i64 * (w + gap_x), 20 + *r * (h + gap_y)),
        );
        *r += 1;
    }
    let width = pos.values().map(|p| p.0).max().unwrap_or(0) + w + 40;
    let height = pos.values().map(|p| p.1).max().unwrap_or(0) + h + 40;
    let fill = |kind: &str| match kind {
        "task" => "#e8f0fe",
        "approval" => "#fff4e5",
        "automatic" => "#e6f4ea",
        "wait" => "#f3e8fd",
        _ => "#eeeeee",
    };
    html! {
        svg.chart.diagram role="img" aria-label=(d.name) viewBox=(format!("0 0 {width} {height}")) width=(width) height=(height) data-testid="workflow-diagram" {
            title { (d.name) }
            defs { marker #arrow viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse" { path d="M 0 0 L 10 5 L 0 10 z" fill="#666" {} } }
            @for e in &d.edges {
                @if let (Some(a), Some(b)) = (pos.get(e.from.as_str()), pos.get(e.to.as_str())) {
                    @let (x1, y1) = (a.0 + w, a.1 + h / 2);
                    @let (x2, y2) = if b.0 > a.0 { (b.0, b.1 + h / 2) } else { (b.0 + w / 2, b.1 + if b.1 > a.1 { 0 } else { h }) };
                    line x1=(x1) y1=(y1) x2=(x2) y2=(y2) stroke="#888" stroke-width="1.2" marker-end="url(#arrow)" {}
                    text x=((x1 + x2) / 2) y=((y1 + y2) / 2 - 3) font-size="10" fill="#555" text-anchor="middle" {
                        (e.on) @if e.guard.is_some() { "*" }
                        title { (e.on) @if let Some(g) = &e.guard { " [" (g) "]" } }
                    }
                }
            }
            @for n in &d.nodes {
                @if let Some((x, y)) = pos.get(n.id.as_str()) {
                    g data-node=(n.id) {
                        rect x=(x) y=(y) width=(w) height=(h) rx="8" fill=(fill(&n.kind)) stroke="#667" {}
                        text x=(x + w / 2) y=(y + 18) text-anchor="middle" font-size="13" { (n.name) }
                        text x=(x + w / 2) y=(y + 34) text-anchor="middle" font-size="10" fill="#666" {
                            (n.kind) @if let Some(r) = &n.assignee_role { " · " (r) }
                        }
                    }
                }
            }
        }
    }
}

/// GET `/workflows`.
pub async fn list(
    State(state): State<AppState>,
    lang: Lang,
    caller: Caller,
) -> Result<Response, ApiError> {
    wf::ensure_defaults(state.store(), state.now_ms()).await?;
    let t = state.i18n().bundle(lang);
    let defs = state.store().definitions().await?;
    let content = html! {
        section.card {
            p.muted { (t.get("workflows.intro")) }
            table.table data-testid="workflow-table" {
                thead { tr { th { (t.get("workflows.code")) } th { (t.get("workflows.name")) } th { (t.get("workflows.version")) } th { (t.get("workflows.created")) } } }
                tbody { @for d in &defs { tr {
                    td { a href=(format!("/workflows/{}/{}", d.code, d.version)) { code { (d.code) } } }
                    td { (d.name) }
                    td.num { "v" (d.version) }
                    td { (shanghai(d.created_at_ms, false)) }
                } } }
            }
        }
    };
    let ctx = Ctx {
        lang,
        caller: Some(caller),
    };
    Ok(page(&state, &ctx, "tasks", &t.get("workflows.title"), content).into_response())
}

fn definition_page(
    state: &AppState,
    lang: Lang,
    caller: Caller,
    d: &DefinitionDetail,
    draft: &str,
    problems: Option<&[FieldError]>,
) -> Response {
    let t = state.i18n().bundle(lang);
    let csrf = caller.csrf.clone().unwrap_or_default();
    let can_manage = caller.can("workflow.manage");
    let content = html! {
        section.card.wide {
            h2 { (d.name) " · v" (d.version) }
            div style="overflow-x:auto" { (diagram(d)) }
            p.muted { (t.get("workflows.legend")) }
        }
        section.card {
            h2 { (t.get("workflows.edit")) }
            p.muted { (t.get("workflows.edit.hint")) }
            @if let Some(ps) = problems {
                @if ps.is_empty() {
                    p.badge.badge-ok data-testid="workflow-valid" { (t.get("workflows.valid")) }
                } @else {
                    div.field-error role="alert" data-testid="workflow-problems" {
                        p { (t.get("workflows.problems")) }
                        ul { @for p in ps { li { code { (p.field) } " — " (p.message) } } }
                    }
                }
            }
            form method="post" action=(format!("/workflows/{}/{}", d.code, d.version)) {
                input type="hidden" name=(CSRF_FIELD) value=(csrf);
                textarea name="source" rows="24" style="width:100%;font-family:monospace" aria-label=(t.get("workflows.source")) { (draft) }
                button type="submit" data-testid="workflow-validate" { (t.get("workflows.validate")) }
                @if can_manage {
                    " " button.secondary type="submit" formaction=(format!("/workflows/{}/{}?install=1", d.code, d.version)) data-testid="workflow-install" { (t.get("workflows.install")) }
                }
            }
        }
    };
    let ctx = Ctx {
        lang,
        caller: Some(caller),
    };
    page(state, &ctx, "tasks", &d.name, content).into_response()
}

async fn load(state: &AppState, code: &str, version: i64) -> Result<DefinitionDetail, ApiError> {
    wf::ensure_defaults(state.store(), state.now_ms()).await?;
    let row = state
        .store()
        .definition_version(code, version)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no workflow `{code}` version {version}")))?;
    let def = wf::definition(state.store(), code, version).await?;
    Ok(detail(&def, version, row.source))
}

/// GET `/workflows/{code}/{version}`.
pub async fn show(
    State(state): State<AppState>,
    lang: Lang,
    caller: Caller,
    Path((code, version)): Path<(String, i64)>,
) -> Result<Response, ApiError> {
    let d = load(&state, &code, version).await?;
    let source = d.source.clone();
    Ok(definition_page(&state, lang, caller, &d, &source, None))
}

#[derive(Debug, Deserialize)]
pub struct EditForm {
    source: String,
}

/// `?install=1` (the install button's form action): store the checked source.
#[derive(Debug, Deserialize, Default)]
pub struct EditQuery {
    install: Option<String>,
}

/// POST `/workflows/{code}/{version}`: check the edited source, or install it.
pub async fn edit(
    State(state): State<AppState>,
    lang: Lang,
    caller: Caller,
    Path((code, version)): Path<(String, i64)>,
    Query(q): Query<EditQuery>,
    Form(form): Form<EditForm>,
) -> Result<Response, ApiError> {
    let d = load(&state, &code, version).await?;
    let problems = match Definition::from_toml(&form.source) {
        Ok(_) => Vec::new(),
        Err(p) => wf::problems_to_fields(p),
    };
    if q.install.is_some() && problems.is_empty() {
        if !caller.can("workflow.manage") {
            return Err(ApiError::Forbidden(
                "installing a definition needs `workflow.manage`".into(),
            ));
        }
        let (new_code, new_version) = wf::install(
            state.store(),
            &form.source,
            Some(caller.user_id),
            state.now_ms(),
        )
        .await?;
        let mut r = Redirect::to(&format!("/workflows/{new_code}/{new_version}")).into_response();
        r.extensions_mut().insert(
            AuditNote::action("workflow.install")
                .target(format!("workflow:{new_code}"))
                .reason(format!(
                    "version {new_version}, sha256 {}",
                    wf::digest(&form.source)
                )),
        );
        return Ok(r);
    }
    let mut r = definition_page(&state, lang, caller, &d, &form.source, Some(&problems));
    if !problems.is_empty() {
        *r.status_mut() = axum::http::StatusCode::UNPROCESSABLE_ENTITY;
    }
    Ok(r)
}
