//! The OpenAPI document and a human-readable API reference page rendered from it on the
//! server (no CDN, no JavaScript: it works offline).

use crate::state::AppState;
use crate::ui::i18n::Lang;
use crate::ui::layout;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use maud::{html, Markup};
use serde_json::Value;
use std::sync::Arc;
use utoipa::openapi::OpenApi;

/// The OpenAPI 3.1 document describing every API route.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "system",
    responses((status = 200, description = "OpenAPI document", content_type = "application/json")))]
pub async fn openapi_json(Extension(doc): Extension<Arc<OpenApi>>) -> Response {
    Json(doc.as_ref()).into_response()
}

/// Routes of the reference page; the document itself travels as an extension.
pub fn router(doc: Arc<OpenApi>) -> Router<AppState> {
    Router::new()
        .route("/api/docs", get(reference_page))
        .layer(Extension(doc))
}

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

async fn reference_page(
    lang: Lang,
    caller: crate::auth::MaybeCaller,
    axum::extract::State(state): axum::extract::State<AppState>,
    Extension(doc): Extension<Arc<OpenApi>>,
) -> Markup {
    let t = state.i18n().bundle(lang);
    let value = serde_json::to_value(doc.as_ref()).unwrap_or(Value::Null);
    let body = render_reference(&value, lang);
    layout::page(
        &state,
        &layout::Ctx {
            lang,
            caller: caller.0,
        },
        "api",
        &t.get("api.title"),
        body,
    )
}

fn render_reference(doc: &Value, lang: Lang) -> Markup {
    let title = doc
        .pointer("/info/title")
        .and_then(Value::as_str)
        .unwrap_or("API");
    let version = doc
        .pointer("/info/version")
        .and_then(Value::as_str)
        .unwrap_or("");
    let description = doc
        .pointer("/info/description")
        .and_then(Value::as_str)
        .unwrap_or("");
    let empty = serde_json::Map::new();
    let paths = doc
        .get("paths")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let schemas = doc
        .pointer("/components/schemas")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    html! {
        section.card {
            h2 { (title) " " span.muted { (version) } }
            p { (description) }
            p { a href="/api/v1/openapi.json" { "openapi.json" } " · "
                @if lang == Lang::ZhCn { "共 " (paths.len()) " 个路径" } @else { (paths.len()) " paths" } }
        }
        @for (path, item) in paths {
            @for method in METHODS {
                @if let Some(op) = item.get(method) {
                    section.card.api-op id=(format!("{method}-{path}")) {
                        h3 { span class=(format!("method method-{method}")) { (method.to_uppercase()) } " " code { (path) } }
                        @if let Some(s) = op.get("summary").and_then(Value::as_str) { p { strong { (s) } } }
                        @if let Some(d) = op.get("description").and_then(Value::as_str) { p.muted { (d) } }
                        @if let Some(params) = op.get("parameters").and_then(Value::as_array) {
                            table.table { thead { tr { th { "parameter" } th { "in" } th { "required" } th { "description" } } }
                                tbody { @for p in params { tr {
                                    td { code { (p.get("name").and_then(Value::as_str).unwrap_or("")) } }
                                    td { (p.get("in").and_then(Value::as_str).unwrap_or("")) }
                                    td { (p.get("required").and_then(Value::as_bool).unwrap_or(false)) }
                                    td { (p.get("description").and_then(Value::as_str).unwrap_or("")) }
                                } } } }
                        }
                        @if let Some(body) = op.pointer("/requestBody/content/application~1json/schema") {
                            p { "request body: " code { (schema_name(body)) } }
                        }
                        @if let Some(responses) = op.get("responses").and_then(Value::as_object) {
                            ul { @for (code, r) in responses {
                                li { code { (code) } " " (r.get("description").and_then(Value::as_str).unwrap_or(""))
                                    @if let Some(content) = r.get("content").and_then(Value::as_object) {
                                        @for (ct, c) in content { " — " code { (ct) } @if let Some(s) = c.get("schema") { " " code { (schema_name(s)) } } }
                                    }
                                }
                            } }
                        }
                    }
                }
            }
        }
        section.card {
            h2 { "schemas" }
            @for (name, schema) in schemas {
                h3 id=(format!("schema-{name}")) { code { (name) } }
                @if let Some(props) = schema.get("properties").and_then(Value::as_object) {
                    table.table { thead { tr { th { "field" } th { "type" } th { "description" } } }
                        tbody { @for (field, p) in props { tr {
                            td { code { (field) } }
                            td { (schema_name(p)) }
                            td { (p.get("description").and_then(Value::as_str).unwrap_or("")) }
                        } } } }
                }
            }
        }
    }
}

fn schema_name(schema: &Value) -> String {
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        return r.rsplit('/').next().unwrap_or(r).to_owned();
    }
    if let Some(items) = schema.get("items") {
        return format!("[{}]", schema_name(items));
    }
    match schema.get("type") {
        Some(Value::String(t)) => t.clone(),
        Some(Value::Array(ts)) => ts
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(" | "),
        _ => schema
            .get("oneOf")
            .and_then(Value::as_array)
            .map(|v| v.iter().map(schema_name).collect::<Vec<_>>().join(" | "))
            .unwrap_or_else(|| "object".into()),
    }
}
