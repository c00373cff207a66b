//! Credit decisions (issue #7): scorecard models, rule sets, decisions with their
//! challenger scores, overrides (two-person rule) and the blacklist. Migration 0013.

use crate::batch::{Arg, Stmt};
use crate::db::Store;
use crate::error::StoreError;
use sqlx::any::AnyRow;
use sqlx::{Any, AnyConnection, Executor, Row};

// ---------------------------------------------------------------- models

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelRow {
    pub id: i64,
    pub name: String,
    pub version: String,
    /// `champion`, `challenger` or `retired`.
    pub status: String,
    pub spec: String,
    pub inputs: String,
    pub digest: String,
    pub note: Option<String>,
    pub created_by: Option<i64>,
    pub created_at_ms: i64,
    pub promoted_by: Option<i64>,
    pub promoted_at_ms: Option<i64>,
}

const MODEL_COLUMNS: &str = "id, name, version, status, spec, inputs, digest, note, created_by, created_at_ms, promoted_by, promoted_at_ms";

fn model_row(r: &AnyRow) -> Result<ModelRow, StoreError> {
    Ok(ModelRow {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        version: r.try_get("version")?,
        status: r.try_get("status")?,
        spec: r.try_get("spec")?,
        inputs: r.try_get("inputs")?,
        digest: r.try_get("digest")?,
        note: r.try_get("note")?,
        created_by: r.try_get("created_by")?,
        created_at_ms: r.try_get("created_at_ms")?,
        promoted_by: r.try_get("promoted_by")?,
        promoted_at_ms: r.try_get("promoted_at_ms")?,
    })
}

/// A new model version.
#[derive(Debug, Clone)]
pub struct NewModel<'a> {
    pub name: &'a str,
    pub version: &'a str,
    /// `champion` or `challenger`.
    pub status: &'a str,
    pub spec: &'a str,
    pub inputs: &'a str,
    pub digest: &'a str,
    pub note: Option<&'a str>,
    pub created_by: Option<i64>,
}

pub async fn model_insert(
    conn: &mut AnyConnection,
    m: &NewModel<'_>,
    now_ms: i64,
) -> Result<i64, StoreError> {
    let champion = (m.status == "champion").then_some(1_i64);
    Ok(sqlx::query_scalar(
        "INSERT INTO risk_models (name, version, status, champion, spec, inputs, digest, note, created_by, created_at_ms,
            promoted_by, promoted_at_ms)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, CASE WHEN $4 = 1 THEN $9 END, CASE WHEN $4 = 1 THEN $10 END)
         RETURNING id",
    )
    .bind(m.name)
    .bind(m.version)
    .bind(m.status)
    .bind(champion)
    .bind(m.spec)
    .bind(m.inputs)
    .bind(m.digest)
    .bind(m.note)
    .bind(m.created_by)
    .bind(now_ms)
    .fetch_one(&mut *conn)
    .await?)
}

/// Makes `id` the champion: the current champion becomes a challenger. Returns the
/// previous champion's id.
pub async fn model_promote(
    conn: &mut AnyConnection,
    id: i64,
    by: i64,
    now_ms: i64,
) -> Result<Option<i64>, StoreError> {
    let previous: Option<i64> = sqlx::query_scalar("SELECT id FROM risk_models WHERE champion = 1")
        .fetch_optional(&mut *conn)
        .await?;
    if previous == Some(id) {
        return Ok(previous);
    }
    sqlx::query("UPDATE risk_models SET champion = NULL, status = 'challenger' WHERE champion = 1")
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "UPDATE risk_models SET champion = 1, status = 'champion', promoted_by = $2, promoted_at_ms = $3 WHERE id = $1",
    )
    .bind(id)
    .bind(by)
    .bind(now_ms)
    .execute(&mut *conn)
    .await?;
    Ok(previous)
}

/// Sets a non-champion model's status (`challenger` or `retired`).
pub async fn model_set_status(
    conn: &mut AnyConnection,
    id: i64,
    status: &str,
) -> Result<bool, StoreError> {
    let r = sqlx::query("UPDATE risk_models SET status = $2 WHERE id = $1 AND champion IS NULL")
        .bind(id)
        .bind(status)
        .execute(&mut *conn)
        .await?;
    Ok(r.rows_affected() == 1)
}

// ---------------------------------------------------------------- rule sets

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleSetRow {
    pub id: i64,
    pub version: i64,
    pub name: String,
    pub source: String,
    pub digest: String,
    pub active: bool,
    pub created_by: Option<i64>,
    pub created_at_ms: i64,
    pub enabled_by: Option<i64>,
    pub enabled_at_ms: Option<i64>,
}

const RULE_COLUMNS: &str =
    "id, version, name, source, digest, active, created_by, created_at_ms, enabled_by, enabled_at_ms";

fn rule_row(r: &AnyRow) -> Result<RuleSetRow, StoreError> {
    Ok(RuleSetRow {
        id: r.try_get("id")?,
        version: r.try_get("version")?,
        name: r.try_get("name")?,
        source: r.try_get("source")?,
        digest: r.try_get("digest")?,
        active: r.try_get::<Option<i64>, _>("active")?.is_some(),
        created_by: r.try_get("created_by")?,
        created_at_ms: r.try_get("created_at_ms")?,
        enabled_by: r.try_get("enabled_by")?,
        enabled_at_ms: r.try_get("enabled_at_ms")?,
    })
}

/// Stores the next version of the rule set; returns (id, version).
pub async fn rule_set_insert(
    conn: &mut AnyConnection,
    name: &str,
    source: &str,
    digest: &str,
    created_by: Option<i64>,
    now_ms: i64,
) -> Result<(i64, i64), StoreError> {
    let version: i64 =
        sqlx::query_scalar("SELECT COALESCE(MAX(version), 0) + 1 FROM risk_rule_sets")
            .fetch_one(&mut *conn)
            .await?;
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO risk_rule_sets (version, name, source, digest, created_by, created_at_ms)
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
    )
    .bind(version)
    .bind(name)
    .bind(source)
    .bind(digest)
    .bind(created_by)
    .bind(now_ms)
    .fetch_one(&mut *conn)
    .await?;
    Ok((id, version))
}

/// Enables rule set `id` (the enabled one before it is disabled).
pub async fn rule_set_enable(
    conn: &mut AnyConnection,
    id: i64,
    by: Option<i64>,
    now_ms: i64,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE risk_rule_sets SET active = NULL WHERE active = 1 AND id <> $1")
        .bind(id)
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "UPDATE risk_rule_sets SET active = 1, enabled_by = $2, enabled_at_ms = $3 WHERE id = $1",
    )
    .bind(id)
    .bind(by)
    .bind(now_ms)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

// ---------------------------------------------------------------- decisions

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecisionRow {
    pub id: i64,
    pub application_id: Option<i64>,
    pub subject: String,
    pub model_id: i64,
    pub rule_set_id: i64,
    pub input: String,
    pub input_digest: String,
    pub score: i64,
    pub probability: String,
    pub outcome: String,
    pub grade: String,
    pub limit_fen: i64,
    pub price_band: String,
    pub reasons: String,
    pub rules_fired: String,
    pub final_outcome: String,
    pub created_by: Option<i64>,
    pub created_at_ms: i64,
}

const DECISION_COLUMNS: &str = "id, application_id, subject, model_id, rule_set_id, input, input_digest, score, probability, \
    outcome, grade, limit_fen, price_band, reasons, rules_fired, final_outcome, created_by, created_at_ms";

fn decision_row(r: &AnyRow) -> Result<DecisionRow, StoreError> {
    Ok(DecisionRow {
        id: r.try_get("id")?,
        application_id: r.try_get("application_id")?,
        subject: r.try_get("subject")?,
        model_id: r.try_get("model_id")?,
        rule_set_id: r.try_get("rule_set_id")?,
        input: r.try_get("input")?,
        input_digest: r.try_get("input_digest")?,
        score: r.try_get("score")?,
        probability: r.try_get("probability")?,
        outcome: r.try_get("outcome")?,
        grade: r.try_get("grade")?,
        limit_fen: r.try_get("limit_fen")?,
        price_band: r.try_get("price_band")?,
        reasons: r.try_get("reasons")?,
        rules_fired: r.try_get("rules_fired")?,
        final_outcome: r.try_get("final_outcome")?,
        created_by: r.try_get("created_by")?,
        created_at_ms: r.try_get("created_at_ms")?,
    })
}

/// A decision to store.
#[derive(Debug, Clone)]
pub struct NewDecision<'a> {
    pub application_id: Option<i64>,
    pub subject: &'a str,
    pub model_id: i64,
    pub rule_set_id: i64,
    pub input: &'a str,
    pub input_digest: &'a str,
    pub score: i64,
    pub probability: &'a str,
    pub outcome: &'a str,
    pub grade: &'a str,
    pub limit_fen: i64,
    pub price_band: &'a str,
    pub reasons: &'a str,
    pub rules_fired: &'a str,
    pub created_by: Option<i64>,
}

/// A challenger's score of a decision's input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChallengerRow {
    pub decision_id: i64,
    pub model_id: i64,
    pub score: i64,
    pub probability: String,
    pub outcome: String,
    pub grade: String,
}

pub async fn decision_insert(
    conn: &mut AnyConnection,
    d: &NewDecision<'_>,
    challengers: &[ChallengerRow],
    now_ms: i64,
) -> Result<i64, StoreError> {
    let row = decision_from_rows(&decision_insert_stmt(d, now_ms).fetch_all(conn).await?)?;
    if let Some(stmt) = challengers_insert_stmt(row.id, challengers) {
        stmt.fetch_all(conn).await?;
    }
    Ok(row.id)
}

/// The decision row alone as a statement returning it (read with
/// [`decision_from_rows`]); its challengers follow with [`challengers_insert_stmt`].
pub fn decision_insert_stmt(d: &NewDecision<'_>, now_ms: i64) -> Stmt {
    Stmt::new(
        format!(
            "INSERT INTO risk_decisions (application_id, subject, model_id, rule_set_id, input, input_digest, score, probability,
                outcome, grade, limit_fen, price_band, reasons, rules_fired, final_outcome, created_by, created_at_ms)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $9, $15, $16) RETURNING {DECISION_COLUMNS}"
        ),
        vec![
            d.application_id.into(),
            d.subject.into(),
            d.model_id.into(),
            d.rule_set_id.into(),
            d.input.into(),
            d.input_digest.into(),
            d.score.into(),
            d.probability.into(),
            d.outcome.into(),
            d.grade.into(),
            d.limit_fen.into(),
            d.price_band.into(),
            d.reasons.into(),
            d.rules_fired.into(),
            d.created_by.into(),
            now_ms.into(),
        ],
    )
}

pub fn decision_from_rows(rows: &[AnyRow]) -> Result<DecisionRow, StoreError> {
    decision_row(
        rows.first()
            .ok_or_else(|| StoreError::Invalid("the decision insert returned no row".into()))?,
    )
}

/// The challenger scores of decision `decision_id`, one statement (none without any).
pub fn challengers_insert_stmt(decision_id: i64, challengers: &[ChallengerRow]) -> Option<Stmt> {
    if challengers.is_empty() {
        return None;
    }
    let values: Vec<String> = (0..challengers.len())
        .map(|i| {
            let b = i * 5 + 2;
            format!(
                "($1, ${}, ${}, ${}, ${}, ${})",
                b,
                b + 1,
                b + 2,
                b + 3,
                b + 4
            )
        })
        .collect();
    let mut args: Vec<Arg> = vec![decision_id.into()];
    for c in challengers {
        args.extend([
            c.model_id.into(),
            c.score.into(),
            c.probability.clone().into(),
            c.outcome.clone().into(),
            c.grade.clone().into(),
        ]);
    }
    Some(Stmt::new(
        format!(
            "INSERT INTO risk_challenger_scores (decision_id, model_id, score, probability, outcome, grade) VALUES {}",
            values.join(", ")
        ),
        args,
    ))
}

/// Filters of the decisions list.
#[derive(Debug, Clone, Default)]
pub struct DecisionQuery<'a> {
    pub outcome: Option<&'a str>,
    pub application_id: Option<i64>,
    /// Only decisions with an id below this (paging, newest first).
    pub before_id: Option<i64>,
    pub limit: i64,
}

// ---------------------------------------------------------------- overrides

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverrideRow {
    pub id: i64,
    pub decision_id: i64,
    pub outcome: String,
    pub reason: String,
    pub requested_by: i64,
    pub requested_at_ms: i64,
    pub state: String,
    pub decided_by: Option<i64>,
    pub decided_at_ms: Option<i64>,
    pub decision_note: Option<String>,
}

const OVERRIDE_COLUMNS: &str = "id, decision_id, outcome, reason, requested_by, requested_at_ms, state, decided_by, decided_at_ms, decision_note";

fn override_row(r: &AnyRow) -> Result<OverrideRow, StoreError> {
    Ok(OverrideRow {
        id: r.try_get("id")?,
        decision_id: r.try_get("decision_id")?,
        outcome: r.try_get("outcome")?,
        reason: r.try_get("reason")?,
        requested_by: r.try_get("requested_by")?,
        requested_at_ms: r.try_get("requested_at_ms")?,
        state: r.try_get("state")?,
        decided_by: r.try_get("decided_by")?,
        decided_at_ms: r.try_get("decided_at_ms")?,
        decision_note: r.try_get("decision_note")?,
    })
}

pub async fn override_insert(
    conn: &mut AnyConnection,
    decision_id: i64,
    outcome: &str,
    reason: &str,
    requested_by: i64,
    now_ms: i64,
) -> Result<i64, StoreError> {
    Ok(sqlx::query_scalar(
        "INSERT INTO risk_overrides (decision_id, outcome, reason, requested_by, requested_at_ms, pending_decision)
         VALUES ($1, $2, $3, $4, $5, $1) RETURNING id",
    )
    .bind(decision_id)
    .bind(outcome)
    .bind(reason)
    .bind(requested_by)
    .bind(now_ms)
    .fetch_one(&mut *conn)
    .await?)
}

/// Decides a pending override (`approved` or `refused`) by someone other than the
/// requester; an approval sets the decision's final outcome. False when the override is
/// no longer pending (someone decided it first).
pub async fn override_decide(
    conn: &mut AnyConnection,
    id: i64,
    state: &str,
    by: i64,
    note: Option<&str>,
    now_ms: i64,
) -> Result<bool, StoreError> {
    let r = sqlx::query(
        "UPDATE risk_overrides SET state = $2, decided_by = $3, decided_at_ms = $4, decision_note = $5, pending_decision = NULL
         WHERE id = $1 AND state = 'pending' AND requested_by <> $3",
    )
    .bind(id)
    .bind(state)
    .bind(by)
    .bind(now_ms)
    .bind(note)
    .execute(&mut *conn)
    .await?;
    if r.rows_affected() != 1 {
        return Ok(false);
    }
    if state == "approved" {
        sqlx::query(
            "UPDATE risk_decisions SET final_outcome = (SELECT outcome FROM risk_overrides WHERE id = $1)
             WHERE id = (SELECT decision_id FROM risk_overrides WHERE id = $1)",
        )
        .bind(id)
        .execute(&mut *conn)
        .await?;
    }
    Ok(true)
}

// ---------------------------------------------------------------- blacklist

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlacklistRow {
    pub id: i64,
    pub field: String,
    pub reason: String,
    pub created_by: Option<i64>,
    pub created_at_ms: i64,
}

/// Adds an entry; false when it is already listed.
pub async fn blacklist_insert<'c, E>(
    exec: E,
    field: &str,
    bidx: &str,
    reason: &str,
    by: Option<i64>,
    now_ms: i64,
) -> Result<bool, StoreError>
where
    E: Executor<'c, Database = Any>,
{
    let r = sqlx::query(
        "INSERT INTO risk_blacklist (field, bidx, reason, created_by, created_at_ms) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (field, bidx) DO NOTHING",
    )
    .bind(field)
    .bind(bidx)
    .bind(reason)
    .bind(by)
    .bind(now_ms)
    .execute(exec)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Removes an entry; returns its field, or `None` when no entry has that id.
pub async fn blacklist_delete<'c, E>(exec: E, id: i64) -> Result<Option<String>, StoreError>
where
    E: Executor<'c, Database = Any>,
{
    let field: Option<String> =
        sqlx::query_scalar("DELETE FROM risk_blacklist WHERE id = $1 RETURNING field")
            .bind(id)
            .fetch_optional(exec)
            .await?;
    Ok(field)
}

impl Store {
    pub async fn risk_model(&self, id: i64) -> Result<Option<ModelRow>, StoreError> {
        let r = sqlx::query(&format!(
            "SELECT {MODEL_COLUMNS} FROM risk_models WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(self.reader())
        .await?;
        r.as_ref().map(model_row).transpose()
    }

    /// Every model, newest first.
    pub async fn risk_models(&self) -> Result<Vec<ModelRow>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {MODEL_COLUMNS} FROM risk_models ORDER BY id DESC"
        ))
        .fetch_all(self.reader())
        .await?;
        rows.iter().map(model_row).collect()
    }

    pub async fn risk_rule_set(&self, id: i64) -> Result<Option<RuleSetRow>, StoreError> {
        let r = sqlx::query(&format!(
            "SELECT {RULE_COLUMNS} FROM risk_rule_sets WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(self.reader())
        .await?;
        r.as_ref().map(rule_row).transpose()
    }

    /// Every rule set version, newest first.
    pub async fn risk_rule_sets(&self) -> Result<Vec<RuleSetRow>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {RULE_COLUMNS} FROM risk_rule_sets ORDER BY version DESC"
        ))
        .fetch_all(self.reader())
        .await?;
        rows.iter().map(rule_row).collect()
    }

    /// The enabled rule set, the champion and the challengers (ascending), in one
    /// statement.
    pub async fn risk_policy_ids(
        &self,
    ) -> Result<(Option<i64>, Option<i64>, Vec<i64>), StoreError> {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT 'r' AS k, id FROM risk_rule_sets WHERE active = 1
             UNION ALL SELECT 'c', id FROM risk_models WHERE champion = 1
             UNION ALL SELECT 'h', id FROM risk_models WHERE status = 'challenger'
             ORDER BY 2",
        )
        .fetch_all(self.reader())
        .await?;
        let mut out = (None, None, Vec::new());
        for (k, id) in rows {
            match k.as_str() {
                "r" => out.0 = Some(id),
                "c" => out.1 = Some(id),
                _ => out.2.push(id),
            }
        }
        Ok(out)
    }

    /// The enabled rule set's id and the champion's id (what decides now).
    pub async fn risk_in_force(&self) -> Result<(Option<i64>, Option<i64>), StoreError> {
        let rules: Option<i64> =
            sqlx::query_scalar("SELECT id FROM risk_rule_sets WHERE active = 1")
                .fetch_optional(self.reader())
                .await?;
        let model: Option<i64> =
            sqlx::query_scalar("SELECT id FROM risk_models WHERE champion = 1")
                .fetch_optional(self.reader())
                .await?;
        Ok((rules, model))
    }

    pub async fn risk_decision(&self, id: i64) -> Result<Option<DecisionRow>, StoreError> {
        let r = sqlx::query(&format!(
            "SELECT {DECISION_COLUMNS} FROM risk_decisions WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(self.reader())
        .await?;
        r.as_ref().map(decision_row).transpose()
    }

    /// Decisions, newest first.
    pub async fn risk_decisions(
        &self,
        q: &DecisionQuery<'_>,
    ) -> Result<Vec<DecisionRow>, StoreError> {
        let mut sql = format!("SELECT {DECISION_COLUMNS} FROM risk_decisions WHERE 1 = 1");
        let mut n = 0;
        if q.outcome.is_some() {
            n += 1;
            sql.push_str(&format!(" AND final_outcome = ${n}"));
        }
        if q.application_id.is_some() {
            n += 1;
            sql.push_str(&format!(" AND application_id = ${n}"));
        }
        if q.before_id.is_some() {
            n += 1;
            sql.push_str(&format!(" AND id < ${n}"));
        }
        sql.push_str(&format!(" ORDER BY id DESC LIMIT ${}", n + 1));
        let mut query = sqlx::query(&sql);
        if let Some(o) = q.outcome {
            query = query.bind(o);
        }
        if let Some(a) = q.application_id {
            query = query.bind(a);
        }
        if let Some(b) = q.before_id {
            query = query.bind(b);
        }
        let rows = query.bind(q.limit).fetch_all(self.reader()).await?;
        rows.iter().map(decision_row).collect()
    }

    pub async fn risk_challenger_scores(
        &self,
        decision_id: i64,
    ) -> Result<Vec<ChallengerRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT decision_id, model_id, score, probability, outcome, grade FROM risk_challenger_scores
             WHERE decision_id = $1 ORDER BY model_id",
        )
        .bind(decision_id)
        .fetch_all(self.reader())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(ChallengerRow {
                    decision_id: r.try_get("decision_id")?,
                    model_id: r.try_get("model_id")?,
                    score: r.try_get("score")?,
                    probability: r.try_get("probability")?,
                    outcome: r.try_get("outcome")?,
                    grade: r.try_get("grade")?,
                })
            })
            .collect()
    }

    /// Scores of decisions made while `model_id` was the champion, and of its challenger
    /// runs (newest `limit` of each), for comparing models on live traffic.
    pub async fn risk_model_scores(
        &self,
        model_id: i64,
        limit: i64,
    ) -> Result<Vec<i64>, StoreError> {
        let mut out: Vec<i64> = sqlx::query_scalar(
            "SELECT score FROM risk_decisions WHERE model_id = $1 ORDER BY id DESC LIMIT $2",
        )
        .bind(model_id)
        .bind(limit)
        .fetch_all(self.reader())
        .await?;
        let more: Vec<i64> = sqlx::query_scalar(
            "SELECT score FROM risk_challenger_scores WHERE model_id = $1 ORDER BY decision_id DESC LIMIT $2",
        )
        .bind(model_id)
        .bind(limit)
        .fetch_all(self.reader())
        .await?;
        out.extend(more);
        Ok(out)
    }

    pub async fn risk_overrides(&self, decision_id: i64) -> Result<Vec<OverrideRow>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {OVERRIDE_COLUMNS} FROM risk_overrides WHERE decision_id = $1 ORDER BY id"
        ))
        .bind(decision_id)
        .fetch_all(self.reader())
        .await?;
        rows.iter().map(override_row).collect()
    }

    pub async fn risk_override(&self, id: i64) -> Result<Option<OverrideRow>, StoreError> {
        let r = sqlx::query(&format!(
            "SELECT {OVERRIDE_COLUMNS} FROM risk_overrides WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(self.reader())
        .await?;
        r.as_ref().map(override_row).transpose()
    }

    /// Everything the credit decision reads about an applicant's history, in one
    /// statement: what [`Store::risk_blacklisted`], [`Store::risk_recent_applications`],
    /// [`Store::customer_matches`] (per blind index) and [`Store::risk_existing_loans`]
    /// answer one by one. A key that is `None` matches nothing.
    pub async fn risk_applicant_history(
        &self,
        k: &HistoryKeys<'_>,
    ) -> Result<ApplicantHistory, StoreError> {
        let r = sqlx::query(
            "SELECT
               (SELECT COUNT(*) FROM risk_blacklist
                 WHERE (field = 'id_number' AND bidx = $1) OR (field = 'phone' AND bidx = $2)
                    OR (field = 'bank_card' AND bidx = $3)) AS blacklisted,
               (SELECT COUNT(*) FROM applications a JOIN customers c ON c.id = a.customer_id
                 WHERE c.id_number_bidx = $1 AND a.created_at_ms >= $4 AND a.id <> $5) AS recent,
               (SELECT COUNT(*) FROM customers
                 WHERE id_number_bidx = $1 AND id <> $6 AND status <> 'erased') AS dup_id_number,
               (SELECT COUNT(*) FROM customers
                 WHERE phone_bidx = $2 AND id <> $6 AND status <> 'erased') AS dup_phone,
               (SELECT COUNT(*) FROM customers
                 WHERE bank_card_bidx = $3 AND id <> $6 AND status <> 'erased') AS dup_bank_card,
               (SELECT COUNT(*) FROM applications
                 WHERE customer_id = $6 AND id <> $5 AND status IN ('approved', 'disbursed')) AS existing",
        )
        .bind(k.id_number_bidx)
        .bind(k.phone_bidx)
        .bind(k.bank_card_bidx)
        .bind(k.since_ms)
        .bind(k.application_id)
        .bind(k.customer_id)
        .fetch_one(self.reader())
        .await?;
        let n = |c: &str| -> Result<i64, StoreError> { Ok(r.try_get::<i64, _>(c)?) };
        Ok(ApplicantHistory {
            blacklisted: n("blacklisted")? > 0,
            recent_applications: n("recent")?,
            duplicate_id_number: n("dup_id_number")? > 0,
            duplicate_phone: n("dup_phone")? > 0,
            duplicate_bank_card: n("dup_bank_card")? > 0,
            existing_loans: n("existing")?,
        })
    }

    /// Whether any of the given (field, blind index) pairs is blacklisted.
    pub async fn risk_blacklisted(&self, keys: &[(&str, &str)]) -> Result<bool, StoreError> {
        for (field, bidx) in keys {
            let hit: Option<i64> =
                sqlx::query_scalar("SELECT id FROM risk_blacklist WHERE field = $1 AND bidx = $2")
                    .bind(*field)
                    .bind(*bidx)
                    .fetch_optional(self.reader())
                    .await?;
            if hit.is_some() {
                return Ok(true);
            }
        }
        Ok(false)
    }

    pub async fn risk_blacklist(&self, limit: i64) -> Result<Vec<BlacklistRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, field, reason, created_by, created_at_ms FROM risk_blacklist ORDER BY id DESC LIMIT $1",
        )
        .bind(limit)
        .fetch_all(self.reader())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(BlacklistRow {
                    id: r.try_get("id")?,
                    field: r.try_get("field")?,
                    reason: r.try_get("reason")?,
                    created_by: r.try_get("created_by")?,
                    created_at_ms: r.try_get("created_at_ms")?,
                })
            })
            .collect()
    }

    /// Applications of people with this ID number (blind index) created at or after
    /// `since_ms`, other than `except_application` (多头 within our own book).
    pub async fn risk_recent_applications(
        &self,
        id_number_bidx: &str,
        since_ms: i64,
        except_application: Option<i64>,
    ) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT COUNT(*) FROM applications a JOIN customers c ON c.id = a.customer_id
             WHERE c.id_number_bidx = $1 AND a.created_at_ms >= $2 AND a.id <> $3",
        )
        .bind(id_number_bidx)
        .bind(since_ms)
        .bind(except_application.unwrap_or(0))
        .fetch_one(self.reader())
        .await?)
    }

    /// Earlier applications of a customer that were approved or disbursed.
    pub async fn risk_existing_loans(
        &self,
        customer_id: i64,
        except_application: i64,
    ) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT COUNT(*) FROM applications WHERE customer_id = $1 AND id <> $2 AND status IN ('approved', 'disbursed')",
        )
        .bind(customer_id)
        .bind(except_application)
        .fetch_one(self.reader())
        .await?)
    }
}

/// Whose history [`Store::risk_applicant_history`] reads.
#[derive(Debug, Clone, Copy)]
pub struct HistoryKeys<'a> {
    pub id_number_bidx: Option<&'a str>,
    pub phone_bidx: Option<&'a str>,
    pub bank_card_bidx: Option<&'a str>,
    /// The applicant (not counted as their own duplicate).
    pub customer_id: i64,
    /// The application being decided (not counted among the others).
    pub application_id: i64,
    /// Applications created at or after this instant count as recent.
    pub since_ms: i64,
}

/// An applicant's history as the credit decision sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ApplicantHistory {
    pub blacklisted: bool,
    pub recent_applications: i64,
    pub duplicate_id_number: bool,
    pub duplicate_phone: bool,
    pub duplicate_bank_card: bool,
    pub existing_loans: i64,
}
