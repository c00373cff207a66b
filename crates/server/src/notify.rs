//! Exception alerts and notifications (issue #6 item 3).
//!
//! An exception — an instance stuck, a time limit breached, a funder that does not answer,
//! a decision overridden by hand — is raised once per dedupe key ([`raise`]) and goes to
//! the **manager of the node's owner**: the nearest `org_units.manager_user_id` walking up
//! from the owner's unit (team → branch → company), skipping the owner themself. The owner
//! is the person the step waits for when it waits for a person; otherwise the work
//! belongs to the subject's unit (an application's org unit). When nobody up the tree
//! manages, the holders of `workflow.manage` get it (`fallback`), so an alert is never
//! lost while the organisation is incomplete. Watchers of the instance get it too.
//!
//! Every recipient gets an in-app notification (the bell in the page header,
//! `/notifications`); every active group-bot webhook whose kinds and org unit match gets
//! a delivery, sent by the `notify.webhook` job with the job queue's retries and logged
//! per attempt. Message formats: WeCom group bot, DingTalk custom robot (signed with
//! HMAC-SHA256 over `timestamp + "\n" + secret` when a secret is set), Feishu/Lark custom
//! bot (`text`, `post` or `interactive`, signed with the key `timestamp + "\n" + secret`
//! over an empty message). See `docs/decisions/0016-notifications-and-process-analytics.md`.

use crate::auth::Caller;
use crate::error::{ApiError, FieldError};
use crate::state::AppState;
use crate::ui::i18n::{Bundle, Lang};
use crate::vault::FieldAad;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use std::collections::BTreeSet;
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use zhudai_store::audit::AuditDraft;
use zhudai_store::jobs::{Job, NewJob};
use zhudai_store::notify::{self as sn, EventRow, NewEvent, OrgNode, TargetRow};
use zhudai_store::workflow::InstanceRow;
use zhudai_store::Store;

/// The job kind that sends one webhook delivery.
pub const WEBHOOK_JOB: &str = "notify.webhook";
/// Webhook calls per delivery before it is given up (the queue backs off 2, 4, 8, 16 s…).
pub const WEBHOOK_ATTEMPTS: i64 = 6;
/// Where a target's URL and secret are encrypted, bound into their ciphertexts.
const TARGET_TABLE: &str = "webhook_targets";
const HOUR: i64 = 3_600_000;

/// What kind of exception.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An instance stopped moving (no step for the configured time), or a time-out had no
    /// path to take.
    Stuck,
    /// A node's escalation limit passed.
    SlaBreach,
    /// A wait for an outside party (the funder) passed its limit, or a routing run hangs.
    FunderTimeout,
    /// Someone overrode a decision by hand.
    Override,
    /// A test message from the webhook admin page.
    Test,
}

/// The kinds a webhook target can subscribe to.
pub const KINDS: &[Kind] = &[
    Kind::Stuck,
    Kind::SlaBreach,
    Kind::FunderTimeout,
    Kind::Override,
];

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Stuck => "stuck",
            Kind::SlaBreach => "sla_breach",
            Kind::FunderTimeout => "funder_timeout",
            Kind::Override => "override",
            Kind::Test => "test",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        [
            Kind::Stuck,
            Kind::SlaBreach,
            Kind::FunderTimeout,
            Kind::Override,
            Kind::Test,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }

    fn severity(self) -> &'static str {
        match self {
            Kind::SlaBreach | Kind::Override => "warning",
            Kind::Stuck | Kind::FunderTimeout => "critical",
            Kind::Test => "info",
        }
    }
}

/// An exception to raise.
#[derive(Debug, Clone)]
pub struct Exception<'a> {
    pub kind: Kind,
    /// The instance it is about (its subject, node and assignee are taken from it).
    pub instance: Option<&'a InstanceRow>,
    /// The subject when there is no instance.
    pub subject: Option<(&'a str, i64)>,
    /// The person who owns the work (default: the person the instance waits for).
    pub owner_user: Option<i64>,
    pub waited_ms: Option<i64>,
    pub limit_ms: Option<i64>,
    pub detail: Option<String>,
    /// `system`, or the username of whoever raised it.
    pub raised_by: &'a str,
    /// The same key is raised once, however many scans see the same situation.
    pub dedupe_key: String,
}

/// What raising did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Raised {
    pub event_id: i64,
    /// (user, `manager` | `watcher` | `fallback`).
    pub recipients: Vec<(i64, &'static str)>,
    pub deliveries: Vec<i64>,
}

/// The nearest manager of `start` and its ancestors who is not `owner`.
pub fn manager_of(tree: &[OrgNode], start: Option<i64>, owner: Option<i64>) -> Option<i64> {
    let mut unit = start;
    let mut hops = 0;
    while let Some(id) = unit {
        let node = tree.iter().find(|n| n.id == id)?;
        if let Some(m) = node.manager_user_id {
            if Some(m) != owner {
                return Some(m);
            }
        }
        unit = node.parent_id;
        hops += 1;
        if hops > 64 {
            return None; // a cycle in the tree
        }
    }
    None
}

/// Whether `unit` is `ancestor` or below it.
pub fn within(tree: &[OrgNode], unit: Option<i64>, ancestor: i64) -> bool {
    let mut u = unit;
    let mut hops = 0;
    while let Some(id) = u {
        if id == ancestor {
            return true;
        }
        u = tree.iter().find(|n| n.id == id).and_then(|n| n.parent_id);
        hops += 1;
        if hops > 64 {
            return false;
        }
    }
    false
}

/// Raises an exception once: stores the event, notifies the owner's manager (or the
/// fallback) and the watchers, and queues a delivery to every matching webhook — all in
/// one transaction. `None` when the dedupe key was raised before.
pub async fn raise(
    store: &Store,
    ex: &Exception<'_>,
    now_ms: i64,
) -> Result<Option<Raised>, ApiError> {
    let (subject_type, subject_id) = match (ex.instance, ex.subject) {
        (Some(i), _) => (Some(i.subject_type.as_str()), Some(i.subject_id)),
        (None, Some((t, id))) => (Some(t), Some(id)),
        (None, None) => (None, None),
    };
    let (subject_ref, subject_unit) = match (subject_type, subject_id) {
        (Some("application"), Some(id)) => match store.application(id).await? {
            Some(a) => (Some(a.ref_), a.org_unit_id),
            None => (None, None),
        },
        _ => (None, None),
    };
    let owner = ex
        .owner_user
        .or_else(|| ex.instance.and_then(|i| i.assignee_user));
    let owner_unit = match owner {
        Some(u) => store.user_by_id(u).await?.and_then(|u| u.org_unit_id),
        None => None,
    };
    let unit = owner_unit.or(subject_unit);
    let tree = store.org_tree().await?;
    let mut recipients: Vec<(i64, &'static str)> = Vec::new();
    let manager = match manager_of(&tree, unit, owner) {
        Some(m) => store
            .user_by_id(m)
            .await?
            .filter(|u| u.status == zhudai_store::identity::UserStatus::Active)
            .map(|u| u.id),
        None => None,
    };
    match manager {
        Some(m) => recipients.push((m, "manager")),
        None => {
            for u in store.users_with_permission("workflow.manage").await? {
                if Some(u) != owner {
                    recipients.push((u, "fallback"));
                }
            }
        }
    }
    if let Some(i) = ex.instance {
        for w in store.watchers(i.id).await? {
            if !recipients.iter().any(|(u, _)| *u == w) {
                recipients.push((w, "watcher"));
            }
        }
    }
    let kind = ex.kind.as_str();
    let targets: Vec<TargetRow> = store
        .webhook_targets()
        .await?
        .into_iter()
        .filter(|t| {
            t.active
                && (t.kinds.is_empty() || t.kinds.iter().any(|k| k == kind))
                && t.org_unit_id.is_none_or(|a| within(&tree, unit, a))
        })
        .collect();
    let mut tx = store.begin().await?;
    let Some(event_id) = sn::event_insert(
        &mut *tx,
        &NewEvent {
            kind,
            severity: ex.kind.severity(),
            subject_type,
            subject_id,
            subject_ref: subject_ref.as_deref(),
            instance_id: ex.instance.map(|i| i.id),
            node: ex.instance.map(|i| i.node.as_str()),
            owner_user_id: owner,
            org_unit_id: unit,
            waited_ms: ex.waited_ms,
            limit_ms: ex.limit_ms,
            detail: ex.detail.as_deref(),
            raised_by: ex.raised_by,
            dedupe_key: &ex.dedupe_key,
        },
        now_ms,
    )
    .await?
    else {
        tx.rollback().await?;
        return Ok(None);
    };
    for (u, reason) in &recipients {
        sn::notification_insert(&mut *tx, event_id, *u, reason, now_ms).await?;
    }
    let mut deliveries = Vec::new();
    for t in &targets {
        if let Some(d) = queue_delivery(&mut tx, event_id, t.id, now_ms).await? {
            deliveries.push(d);
        }
    }
    tx.commit().await?;
    Ok(Some(Raised {
        event_id,
        recipients,
        deliveries,
    }))
}

async fn queue_delivery(
    tx: &mut zhudai_store::sqlx::AnyConnection,
    event: i64,
    target: i64,
    now_ms: i64,
) -> Result<Option<i64>, ApiError> {
    let Some(d) = sn::delivery_insert(&mut *tx, event, target, now_ms).await? else {
        return Ok(None);
    };
    let mut job = NewJob::new(WEBHOOK_JOB, json!({ "delivery_id": d }), now_ms);
    job.max_attempts = WEBHOOK_ATTEMPTS;
    zhudai_store::jobs::enqueue(&mut *tx, &job, now_ms).await?;
    Ok(Some(d))
}

/// A manual override to report to the overrider's manager: e.g. a risk officer replacing
/// an automatic decision. The risk capability calls this when it records an override.
#[derive(Debug, Clone)]
pub struct Override<'a> {
    /// What was overridden, e.g. `("application", 42)`.
    pub subject_type: &'a str,
    pub subject_id: i64,
    /// Who overrode it (their manager is told).
    pub by_user: i64,
    pub by_username: &'a str,
    /// What changed and why, in a sentence (shown as the alert's detail).
    pub detail: &'a str,
    /// Makes the alert once per override, e.g. `risk_decision:17`.
    pub key: &'a str,
}

/// Raises a manual-override alert (once per `key`) to the overrider's manager and the
/// watchers of the subject's workflow instance.
pub async fn raise_override(
    store: &Store,
    o: &Override<'_>,
    now_ms: i64,
) -> Result<Option<Raised>, ApiError> {
    let inst = store.instance_of(o.subject_type, o.subject_id).await?;
    raise(
        store,
        &Exception {
            kind: Kind::Override,
            instance: inst.as_ref(),
            subject: Some((o.subject_type, o.subject_id)),
            owner_user: Some(o.by_user),
            waited_ms: None,
            limit_ms: None,
            detail: Some(o.detail.to_owned()),
            raised_by: o.by_username,
            dedupe_key: format!("override:{}", o.key),
        },
        now_ms,
    )
    .await
}

// ---------------------------------------------------------------------------------------
// Messages

/// An event rendered for people: a title, labelled lines and a link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub title: String,
    pub lines: Vec<(String, String)>,
    /// A path (`/applications/42`), or an absolute URL when `public_url` is set.
    pub link: String,
}

/// `9 小时 20 分钟` / `2 d 3 h` for a duration.
pub fn duration_text(t: &Bundle, ms: i64) -> String {
    let ms = ms.max(0);
    let (d, h, m) = (ms / (24 * HOUR), (ms / HOUR) % 24, (ms / 60_000) % 60);
    if d > 0 {
        t.get("notify.dur.days")
            .replace("{d}", &d.to_string())
            .replace("{h}", &h.to_string())
    } else if h > 0 {
        t.get("notify.dur.hours")
            .replace("{h}", &h.to_string())
            .replace("{m}", &m.to_string())
    } else {
        t.get("notify.dur.minutes").replace("{m}", &m.to_string())
    }
}

/// The node's display name in `lang` (its id when the definition is gone).
pub async fn node_name(store: &Store, instance: Option<i64>, node: &str, lang: Lang) -> String {
    let Some(id) = instance else {
        return node.to_owned();
    };
    let Ok(Some(row)) = store.instance(id).await else {
        return node.to_owned();
    };
    match crate::workflow::definition(store, &row.definition_code, row.definition_version).await {
        Ok(def) => def
            .node_index(node)
            .map(|i| &def.nodes[i].spec)
            .map(|n| match (lang, &n.name_en) {
                (Lang::En, Some(en)) => en.clone(),
                _ => n.name.clone(),
            })
            .unwrap_or_else(|| node.to_owned()),
        Err(_) => node.to_owned(),
    }
}

/// The page an event links to.
pub fn link_of(e: &EventRow) -> String {
    match (e.subject_type.as_deref(), e.subject_id) {
        (Some("application"), Some(id)) => format!("/applications/{id}"),
        _ => "/notifications".to_owned(),
    }
}

/// Renders an event in `lang`.
pub async fn message(state: &AppState, e: &EventRow, lang: Lang) -> Message {
    let t = state.i18n().bundle(lang);
    let mut lines = Vec::new();
    let subject = match (&e.subject_type, e.subject_id) {
        (Some(st), Some(id)) => {
            let label = t.get(&format!("notify.subject.{st}"));
            let label = if label.starts_with("notify.subject.") {
                st.clone()
            } else {
                label
            };
            match &e.subject_ref {
                Some(r) => format!("{label} {r}"),
                None => format!("{label} #{id}"),
            }
        }
        _ => String::new(),
    };
    if !subject.is_empty() {
        lines.push((t.get("notify.field.subject"), subject.clone()));
    }
    if let Some(node) = &e.node {
        lines.push((
            t.get("notify.field.node"),
            node_name(state.store(), e.instance_id, node, lang).await,
        ));
    }
    if let Some(w) = e.waited_ms {
        let mut text = duration_text(t, w);
        if let Some(l) = e.limit_ms {
            text = format!(
                "{text}{}",
                t.get("notify.limit")
                    .replace("{limit}", &duration_text(t, l))
            );
        }
        lines.push((t.get("notify.field.waited"), text));
    }
    if let Some(d) = e.detail.as_ref().filter(|d| !d.is_empty()) {
        lines.push((t.get("notify.field.detail"), d.clone()));
    }
    if let Some(owner) = e.owner_user_id {
        if let Ok(Some(u)) = state.store().user_by_id(owner).await {
            lines.push((t.get("notify.field.owner"), u.display_name));
        }
    }
    if e.raised_by != "system" {
        lines.push((t.get("notify.field.raised_by"), e.raised_by.clone()));
    }
    let kind = t.get(&format!("notify.kind.{}", e.kind));
    let title = if subject.is_empty() {
        kind
    } else {
        format!("{kind} · {subject}")
    };
    let path = link_of(e);
    let link = match &state.settings().public_url {
        Some(base) => format!("{}{path}", base.trim_end_matches('/')),
        None => path,
    };
    Message { title, lines, link }
}

// ---------------------------------------------------------------------------------------
// Webhook formats

/// A group-bot format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// 企业微信群机器人.
    WeCom,
    /// 钉钉自定义机器人.
    DingTalk,
    /// 飞书 / Lark 自定义机器人.
    Feishu,
}

impl Format {
    pub fn parse(s: &str) -> Option<Format> {
        match s {
            "wecom" => Some(Format::WeCom),
            "dingtalk" => Some(Format::DingTalk),
            "feishu" => Some(Format::Feishu),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Format::WeCom => "wecom",
            Format::DingTalk => "dingtalk",
            Format::Feishu => "feishu",
        }
    }

    /// The message types this bot accepts from us; the first is the default.
    pub fn msg_types(self) -> &'static [&'static str] {
        match self {
            Format::WeCom | Format::DingTalk => &["markdown", "text"],
            Format::Feishu => &["post", "text", "interactive"],
        }
    }
}

/// The HTTP request for one message.
#[derive(Debug, Clone, PartialEq)]
pub struct Outbound {
    pub url: String,
    pub body: Value,
}

/// DingTalk's signature: base64(HMAC-SHA256(key = secret, message = `timestamp_ms\nsecret`)).
pub fn dingtalk_sign(secret: &str, timestamp_ms: i64) -> String {
    hmac_b64(
        secret.as_bytes(),
        format!("{timestamp_ms}\n{secret}").as_bytes(),
    )
}

/// Feishu's signature: base64(HMAC-SHA256(key = `timestamp_s\nsecret`, message = empty)).
pub fn feishu_sign(secret: &str, timestamp_s: i64) -> String {
    hmac_b64(format!("{timestamp_s}\n{secret}").as_bytes(), b"")
}

fn hmac_b64(key: &[u8], msg: &[u8]) -> String {
    match Hmac::<Sha256>::new_from_slice(key) {
        Ok(mut mac) => {
            mac.update(msg);
            base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
        }
        // HMAC takes keys of any length; this arm cannot be reached.
        Err(_) => String::new(),
    }
}

fn markdown(m: &Message, quote: bool) -> String {
    let mut s = format!("**{}**\n", m.title);
    for (k, v) in &m.lines {
        if quote {
            s.push_str(&format!("> {k}：{v}\n"));
        } else {
            s.push_str(&format!("- {k}：{v}\n"));
        }
    }
    s.push_str(&format!("\n[{}]({})", "查看详情", m.link));
    s
}

fn plain(m: &Message) -> String {
    let mut s = m.title.clone();
    for (k, v) in &m.lines {
        s.push_str(&format!("\n{k}：{v}"));
    }
    s.push_str(&format!("\n{}", m.link));
    s
}

/// Builds the request for `m` in a bot's format. `now_ms` dates the signature.
pub fn build(
    format: Format,
    msg_type: &str,
    url: &str,
    secret: Option<&str>,
    m: &Message,
    now_ms: i64,
) -> Outbound {
    match format {
        Format::WeCom => {
            let body = if msg_type == "text" {
                json!({"msgtype": "text", "text": {"content": plain(m)}})
            } else {
                json!({"msgtype": "markdown", "markdown": {"content": markdown(m, true)}})
            };
            Outbound {
                url: url.to_owned(),
                body,
            }
        }
        Format::DingTalk => {
            let body = if msg_type == "text" {
                json!({"msgtype": "text", "text": {"content": plain(m)}})
            } else {
                json!({"msgtype": "markdown", "markdown": {"title": m.title, "text": markdown(m, false)}})
            };
            let url = match secret.filter(|s| !s.is_empty()) {
                Some(secret) => {
                    let query = serde_urlencoded::to_string([
                        ("timestamp", now_ms.to_string()),
                        ("sign", dingtalk_sign(secret, now_ms)),
                    ])
                    .unwrap_or_default();
                    let sep = if url.contains('?') { '&' } else { '?' };
                    format!("{url}{sep}{query}")
                }
                None => url.to_owned(),
            };
            Outbound { url, body }
        }
        Format::Feishu => {
            let mut body = match msg_type {
                "text" => json!({"msg_type": "text", "content": {"text": plain(m)}}),
                "interactive" => {
                    let mut md = String::new();
                    for (k, v) in &m.lines {
                        md.push_str(&format!("**{k}**：{v}\n"));
                    }
                    json!({"msg_type": "interactive", "card": {
                        "config": {"wide_screen_mode": true},
                        "header": {"title": {"tag": "plain_text", "content": m.title}, "template": "red"},
                        "elements": [
                            {"tag": "div", "text": {"tag": "lark_md", "content": md.trim_end()}},
                            {"tag": "action", "actions": [{"tag": "button", "text": {"tag": "plain_text", "content": "查看详情"}, "type": "primary", "url": m.link}]}
                        ]
                    }})
                }
                _ => {
                    let mut content: Vec<Value> = m
                        .lines
                        .iter()
                        .map(|(k, v)| json!([{"tag": "text", "text": format!("{k}：{v}")}]))
                        .collect();
                    content.push(json!([{"tag": "a", "text": "查看详情", "href": m.link}]));
                    json!({"msg_type": "post", "content": {"post": {"zh_cn": {"title": m.title, "content": content}}}})
                }
            };
            if let Some(secret) = secret.filter(|s| !s.is_empty()) {
                let ts = now_ms.div_euclid(1000);
                if let Some(o) = body.as_object_mut() {
                    o.insert("timestamp".into(), Value::String(ts.to_string()));
                    o.insert("sign".into(), Value::String(feishu_sign(secret, ts)));
                }
            }
            Outbound {
                url: url.to_owned(),
                body,
            }
        }
    }
}

/// Whether a bot's answer means it took the message: a 2xx whose JSON (if any) says
/// `errcode` 0 (WeCom, DingTalk) or `code`/`StatusCode` 0 (Feishu).
pub fn accepted(status: u16, body: &str) -> bool {
    if !(200..300).contains(&status) {
        return false;
    }
    let Ok(v) = serde_json::from_str::<Value>(body) else {
        return true;
    };
    ["errcode", "code", "StatusCode"]
        .iter()
        .filter_map(|k| v.get(*k))
        .all(|c| c.as_i64() == Some(0))
}

/// A URL shown without its key: scheme, host and the last four characters.
pub fn url_hint(url: &str) -> String {
    let tail: String = url
        .chars()
        .rev()
        .take(4)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    match reqwest::Url::parse(url) {
        Ok(u) => format!(
            "{}://{}{}/…{tail}",
            u.scheme(),
            u.host_str().unwrap_or(""),
            u.port().map(|p| format!(":{p}")).unwrap_or_default()
        ),
        Err(_) => format!("…{tail}"),
    }
}

fn http_client() -> reqwest::Client {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    CLIENT
        .get_or_init(|| {
            reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(5))
                .timeout(Duration::from_secs(10))
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap_or_default()
        })
        .clone()
}

async fn decrypt(state: &AppState, t: &TargetRow) -> Result<(String, Option<String>), String> {
    let url = state
        .vault()
        .decrypt_field(
            None,
            &FieldAad::new(TARGET_TABLE, "url_enc", &t.name),
            &t.url_enc,
        )
        .await
        .map_err(|e| e.to_string())?;
    let secret = match &t.secret_enc {
        Some(enc) => Some(
            state
                .vault()
                .decrypt_field(
                    None,
                    &FieldAad::new(TARGET_TABLE, "secret_enc", &t.name),
                    enc,
                )
                .await
                .map_err(|e| e.to_string())?
                .to_string(),
        ),
        None => None,
    };
    Ok((url.to_string(), secret))
}

/// Logs a delivery attempt that could not even be made, and returns it as the job's error.
async fn fail_delivery(
    state: &AppState,
    id: i64,
    last: bool,
    detail: String,
) -> Result<(), String> {
    state
        .store()
        .delivery_record(
            id,
            &sn::Attempt {
                http_status: None,
                ok: false,
                detail: Some(&detail),
                duration_ms: 0,
                last,
            },
            state.now_ms(),
        )
        .await
        .map_err(|e| e.to_string())?;
    Err(detail)
}

/// Sends one delivery (the `notify.webhook` job). Idempotent: a delivery already sent or
/// given up is not sent again. A failure is logged and returned, so the queue retries it
/// with backoff; on the last attempt the delivery becomes `failed`.
pub async fn run_webhook_job(state: AppState, job: Job) -> Result<(), String> {
    let id = job
        .payload
        .get("delivery_id")
        .and_then(Value::as_i64)
        .ok_or("the job has no delivery_id")?;
    let store = state.store();
    let d = store
        .delivery(id)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("no webhook delivery {id}"))?;
    if d.state != "pending" {
        return Ok(());
    }
    let last = job.attempts >= job.max_attempts;
    let fail = |detail: String| fail_delivery(&state, id, last, detail);
    let Some(target) = store
        .webhook_target(d.target_id)
        .await
        .map_err(|e| e.to_string())?
    else {
        return fail("the webhook target is gone".into()).await;
    };
    let Some(event) = store.event(d.event_id).await.map_err(|e| e.to_string())? else {
        return fail("the event is gone".into()).await;
    };
    let Some(format) = Format::parse(&target.format) else {
        return fail(format!("unknown format {}", target.format)).await;
    };
    let (url, secret) = match decrypt(&state, &target).await {
        Ok(v) => v,
        Err(e) => return fail(format!("cannot decrypt the target: {e}")).await,
    };
    let msg = message(&state, &event, Lang::ZhCn).await;
    let now = state.now_ms();
    let out = build(format, &target.msg_type, &url, secret.as_deref(), &msg, now);
    let started = Instant::now();
    let result = http_client().post(&out.url).json(&out.body).send().await;
    let duration_ms = started.elapsed().as_millis() as i64;
    let (status, text, error) = match result {
        Ok(resp) => {
            let status = resp.status().as_u16();
            let text = resp.text().await.unwrap_or_default();
            (Some(i64::from(status)), text, None)
        }
        Err(e) => (None, String::new(), Some(e.to_string())),
    };
    let ok = error.is_none() && status.is_some_and(|s| accepted(s as u16, &text));
    let detail: String = error
        .clone()
        .unwrap_or_else(|| text.chars().take(500).collect());
    store
        .delivery_record(
            id,
            &sn::Attempt {
                http_status: status,
                ok,
                detail: (!detail.is_empty()).then_some(detail.as_str()),
                duration_ms,
                last,
            },
            state.now_ms(),
        )
        .await
        .map_err(|e| e.to_string())?;
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{} answered {}: {detail}",
            target.name,
            status.map_or("nothing".to_owned(), |s| s.to_string())
        ))
    }
}

// ---------------------------------------------------------------------------------------
// Webhook administration

/// A target as given by an administrator.
#[derive(Debug, Clone, Default)]
pub struct TargetInput {
    pub name: String,
    pub format: String,
    /// Empty: the format's default.
    pub msg_type: String,
    pub url: String,
    /// Empty: no signing.
    pub secret: String,
    pub kinds: Vec<String>,
    pub org_unit_id: Option<i64>,
}

fn check_url(url: &str, errors: &mut Vec<FieldError>) {
    match reqwest::Url::parse(url.trim()) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => {}
        _ => errors.push(FieldError::new(
            "url",
            "invalid",
            "give the bot's webhook address (https://…)",
        )),
    }
}

fn check_kinds(kinds: &[String], errors: &mut Vec<FieldError>) {
    for k in kinds {
        if !KINDS.iter().any(|x| x.as_str() == k) {
            errors.push(FieldError::new(
                "kinds",
                "unknown",
                format!(
                    "`{k}` is not an alert kind ({})",
                    KINDS
                        .iter()
                        .map(|k| k.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
    }
}

fn check_msg_type(format: Option<Format>, msg_type: &str, errors: &mut Vec<FieldError>) -> String {
    let Some(f) = format else {
        return msg_type.to_owned();
    };
    if msg_type.is_empty() {
        return f.msg_types()[0].to_owned();
    }
    if !f.msg_types().contains(&msg_type) {
        errors.push(FieldError::new(
            "msg_type",
            "unsupported",
            format!("{} accepts {}", f.as_str(), f.msg_types().join(", ")),
        ));
    }
    msg_type.to_owned()
}

async fn check_unit(
    state: &AppState,
    unit: Option<i64>,
    errors: &mut Vec<FieldError>,
) -> Result<(), ApiError> {
    if let Some(u) = unit {
        if !state.store().org_tree().await?.iter().any(|n| n.id == u) {
            errors.push(FieldError::new(
                "org_unit_id",
                "unknown",
                "no such org unit",
            ));
        }
    }
    Ok(())
}

fn draft(caller: &Caller, now_ms: i64, action: &str, target: String) -> AuditDraft {
    crate::customers::audit_draft(caller, now_ms, action, target)
}

/// Adds a webhook target (URL and secret encrypted); its id.
pub async fn create_target(
    state: &AppState,
    caller: &Caller,
    input: &TargetInput,
) -> Result<i64, ApiError> {
    let mut errors = Vec::new();
    let name = input.name.trim();
    if name.is_empty() || name.chars().count() > 60 {
        errors.push(FieldError::new(
            "name",
            "invalid",
            "a name of 1–60 characters",
        ));
    }
    let format = Format::parse(&input.format);
    if format.is_none() {
        errors.push(FieldError::new(
            "format",
            "unknown",
            "`wecom`, `dingtalk` or `feishu`",
        ));
    }
    let msg_type = check_msg_type(format, input.msg_type.trim(), &mut errors);
    check_url(&input.url, &mut errors);
    check_kinds(&input.kinds, &mut errors);
    if input.secret.chars().count() > 200 {
        errors.push(FieldError::new(
            "secret",
            "too_long",
            "at most 200 characters",
        ));
    }
    check_unit(state, input.org_unit_id, &mut errors).await?;
    if state
        .store()
        .webhook_targets()
        .await?
        .iter()
        .any(|t| t.name == name)
    {
        errors.push(FieldError::new("name", "taken", "a target has this name"));
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let url = input.url.trim();
    let url_enc = state
        .vault()
        .encrypt_field(None, &FieldAad::new(TARGET_TABLE, "url_enc", name), url)
        .await
        .map_err(ApiError::internal)?;
    let secret = input.secret.trim();
    let secret_enc = if secret.is_empty() {
        None
    } else {
        Some(
            state
                .vault()
                .encrypt_field(
                    None,
                    &FieldAad::new(TARGET_TABLE, "secret_enc", name),
                    secret,
                )
                .await
                .map_err(ApiError::internal)?,
        )
    };
    let now = state.now_ms();
    let mut tx = state.store().begin().await?;
    let id = match sn::webhook_target_insert(
        &mut *tx,
        &sn::NewTarget {
            name,
            format: format.map(Format::as_str).unwrap_or_default(),
            msg_type: &msg_type,
            url_enc: &url_enc,
            url_hint: &url_hint(url),
            secret_enc: secret_enc.as_deref(),
            kinds: &input.kinds,
            org_unit_id: input.org_unit_id,
            created_by: Some(caller.user_id),
        },
        now,
    )
    .await
    {
        Ok(id) => id,
        Err(e) if e.is_unique_violation("webhook_targets_name_key", "webhook_targets.name") => {
            return Err(ApiError::field("name", "taken", "a target has this name"))
        }
        Err(e) => return Err(e.into()),
    };
    zhudai_store::audit::append(
        &mut tx,
        &draft(caller, now, "webhook.create", format!("webhook:{id}")).reason(format!(
            "{name} ({}, {msg_type}){}",
            input.format,
            if secret_enc.is_some() { ", signed" } else { "" }
        )),
    )
    .await?;
    tx.commit().await?;
    Ok(id)
}

/// What an administrator changes on a target (`None`: unchanged).
#[derive(Debug, Clone, Default)]
pub struct TargetChange {
    pub msg_type: Option<String>,
    pub url: Option<String>,
    /// `Some("")` removes the secret.
    pub secret: Option<String>,
    pub kinds: Option<Vec<String>>,
    pub org_unit_id: Option<Option<i64>>,
    pub active: Option<bool>,
}

/// Changes a webhook target.
pub async fn update_target(
    state: &AppState,
    caller: &Caller,
    id: i64,
    c: &TargetChange,
) -> Result<(), ApiError> {
    let t = state
        .store()
        .webhook_target(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no webhook target {id}")))?;
    let mut errors = Vec::new();
    let format = Format::parse(&t.format);
    let msg_type = c
        .msg_type
        .as_deref()
        .map(|m| check_msg_type(format, m.trim(), &mut errors));
    if let Some(u) = &c.url {
        check_url(u, &mut errors);
    }
    if let Some(k) = &c.kinds {
        check_kinds(k, &mut errors);
    }
    if let Some(unit) = c.org_unit_id {
        check_unit(state, unit, &mut errors).await?;
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let url_enc = match &c.url {
        Some(u) => Some(
            state
                .vault()
                .encrypt_field(
                    None,
                    &FieldAad::new(TARGET_TABLE, "url_enc", &t.name),
                    u.trim(),
                )
                .await
                .map_err(ApiError::internal)?,
        ),
        None => None,
    };
    let secret_enc = match c.secret.as_deref().map(str::trim) {
        Some("") => Some(None),
        Some(s) => Some(Some(
            state
                .vault()
                .encrypt_field(None, &FieldAad::new(TARGET_TABLE, "secret_enc", &t.name), s)
                .await
                .map_err(ApiError::internal)?,
        )),
        None => None,
    };
    let hint = c.url.as_deref().map(|u| url_hint(u.trim()));
    let now = state.now_ms();
    let mut tx = state.store().begin().await?;
    sn::webhook_target_update(
        &mut *tx,
        id,
        &sn::TargetUpdate {
            msg_type: msg_type.as_deref(),
            url_enc: url_enc.as_deref(),
            url_hint: hint.as_deref(),
            secret_enc: secret_enc.as_ref().map(|s| s.as_deref()),
            kinds: c.kinds.as_deref(),
            org_unit_id: c.org_unit_id,
            active: c.active,
        },
        now,
    )
    .await?;
    let mut changed = Vec::new();
    if c.msg_type.is_some() {
        changed.push("msg_type");
    }
    if c.url.is_some() {
        changed.push("url");
    }
    if c.secret.is_some() {
        changed.push("secret");
    }
    if c.kinds.is_some() {
        changed.push("kinds");
    }
    if c.org_unit_id.is_some() {
        changed.push("org_unit_id");
    }
    if let Some(a) = c.active {
        changed.push(if a { "active=1" } else { "active=0" });
    }
    zhudai_store::audit::append(
        &mut tx,
        &draft(caller, now, "webhook.update", format!("webhook:{id}")).reason(format!(
            "{}: {}",
            t.name,
            changed.join(", ")
        )),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Queues a test message to one target; the delivery id.
pub async fn send_test(state: &AppState, caller: &Caller, id: i64) -> Result<i64, ApiError> {
    let t = state
        .store()
        .webhook_target(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no webhook target {id}")))?;
    let now = state.now_ms();
    let key = format!("test:{id}:{}", uuid::Uuid::new_v4().simple());
    let mut tx = state.store().begin().await?;
    let event = sn::event_insert(
        &mut *tx,
        &NewEvent {
            kind: Kind::Test.as_str(),
            severity: Kind::Test.severity(),
            detail: Some("zhudai webhook test"),
            raised_by: &caller.username,
            dedupe_key: &key,
            ..Default::default()
        },
        now,
    )
    .await?
    .ok_or_else(|| ApiError::Internal("a fresh test key was taken".into()))?;
    let delivery = queue_delivery(&mut tx, event, t.id, now)
        .await?
        .ok_or_else(|| ApiError::Internal("the test delivery exists already".into()))?;
    zhudai_store::audit::append(
        &mut tx,
        &draft(caller, now, "webhook.test", format!("webhook:{id}")).reason(t.name.clone()),
    )
    .await?;
    tx.commit().await?;
    Ok(delivery)
}

/// Sets (or clears) the manager of an org unit, audited.
pub async fn set_manager(
    state: &AppState,
    caller: &Caller,
    unit: i64,
    manager: Option<i64>,
) -> Result<(), ApiError> {
    if let Some(m) = manager {
        if state.store().user_by_id(m).await?.is_none() {
            return Err(ApiError::field("user_id", "unknown", "no such user"));
        }
    }
    let now = state.now_ms();
    let mut tx = state.store().begin().await?;
    if !sn::org_unit_set_manager(&mut *tx, unit, manager).await? {
        return Err(ApiError::NotFound(format!("no org unit {unit}")));
    }
    zhudai_store::audit::append(
        &mut tx,
        &draft(caller, now, "org.manager", format!("org_unit:{unit}")).reason(match manager {
            Some(m) => format!("manager user {m}"),
            None => "no manager".to_owned(),
        }),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Kinds as a set, for forms.
pub fn kind_set(kinds: &[String]) -> BTreeSet<String> {
    kinds.iter().cloned().collect()
}
