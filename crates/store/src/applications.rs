//! Loan applications. Their progress lives in the workflow instance with subject
//! `('application', id)`; `status` and `node` here mirror it for lists.

use crate::batch::Stmt;
use crate::customers::{bind_all, scope_sql, Bind, ScopeFilter};
use crate::db::Store;
use crate::error::StoreError;
use crate::workflow::InstanceRow;
use sqlx::any::AnyRow;
use sqlx::{Any, Executor, Row};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplicationRow {
    pub id: i64,
    pub ref_: String,
    pub customer_id: i64,
    pub product_code: String,
    pub product_version: i64,
    pub amount_fen: i64,
    pub months: i64,
    pub method: String,
    pub purpose: Option<String>,
    pub status: String,
    pub node: String,
    pub routing_run_id: Option<i64>,
    pub funder_code: Option<String>,
    pub owner_user_id: i64,
    pub org_unit_id: Option<i64>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

/// A new application.
#[derive(Debug, Clone)]
pub struct NewApplication<'a> {
    pub ref_: &'a str,
    pub customer_id: i64,
    pub product_code: &'a str,
    pub product_version: i64,
    pub amount_fen: i64,
    pub months: i64,
    pub method: &'a str,
    pub purpose: Option<&'a str>,
    pub owner_user_id: i64,
    pub org_unit_id: Option<i64>,
}

const COLUMNS: &str =
    "id, ref, customer_id, product_code, product_version, amount_fen, months, method, purpose, \
    status, node, routing_run_id, funder_code, owner_user_id, org_unit_id, created_at_ms, updated_at_ms";

fn row(r: &AnyRow) -> Result<ApplicationRow, StoreError> {
    Ok(ApplicationRow {
        id: r.try_get("id")?,
        ref_: r.try_get("ref")?,
        customer_id: r.try_get("customer_id")?,
        product_code: r.try_get("product_code")?,
        product_version: r.try_get("product_version")?,
        amount_fen: r.try_get("amount_fen")?,
        months: r.try_get("months")?,
        method: r.try_get("method")?,
        purpose: r.try_get("purpose")?,
        status: r.try_get("status")?,
        node: r.try_get("node")?,
        routing_run_id: r.try_get("routing_run_id")?,
        funder_code: r.try_get("funder_code")?,
        owner_user_id: r.try_get("owner_user_id")?,
        org_unit_id: r.try_get("org_unit_id")?,
        created_at_ms: r.try_get("created_at_ms")?,
        updated_at_ms: r.try_get("updated_at_ms")?,
    })
}

pub async fn application_insert<'c, E>(
    exec: E,
    a: &NewApplication<'_>,
    now_ms: i64,
) -> Result<i64, StoreError>
where
    E: Executor<'c, Database = Any>,
{
    Ok(sqlx::query_scalar(
        "INSERT INTO applications (ref, customer_id, product_code, product_version, amount_fen, months, method, purpose,
            owner_user_id, org_unit_id, created_at_ms, updated_at_ms)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11) RETURNING id",
    )
    .bind(a.ref_)
    .bind(a.customer_id)
    .bind(a.product_code)
    .bind(a.product_version)
    .bind(a.amount_fen)
    .bind(a.months)
    .bind(a.method)
    .bind(a.purpose)
    .bind(a.owner_user_id)
    .bind(a.org_unit_id)
    .bind(now_ms)
    .fetch_one(exec)
    .await?)
}

/// Mirrors the workflow's position on the application.
pub async fn application_set_progress<'c, E>(
    exec: E,
    id: i64,
    status: &str,
    node: &str,
    now_ms: i64,
) -> Result<(), StoreError>
where
    E: Executor<'c, Database = Any>,
{
    application_set_progress_stmt(id, status, node, now_ms)
        .execute_on(exec)
        .await?;
    Ok(())
}

/// [`application_set_progress`] as a statement, to send with others.
pub fn application_set_progress_stmt(id: i64, status: &str, node: &str, now_ms: i64) -> Stmt {
    Stmt::new(
        "UPDATE applications SET status = $2, node = $3, updated_at_ms = $4 WHERE id = $1",
        vec![id.into(), status.into(), node.into(), now_ms.into()],
    )
}

/// Records the routing run placing the application, and the funder once one took it.
pub async fn application_set_routing<'c, E>(
    exec: E,
    id: i64,
    run_id: i64,
    funder_code: Option<&str>,
    now_ms: i64,
) -> Result<(), StoreError>
where
    E: Executor<'c, Database = Any>,
{
    application_set_routing_stmt(id, run_id, funder_code, now_ms)
        .execute_on(exec)
        .await?;
    Ok(())
}

/// [`application_set_routing`] as a statement, to send with others.
pub fn application_set_routing_stmt(
    id: i64,
    run_id: i64,
    funder_code: Option<&str>,
    now_ms: i64,
) -> Stmt {
    Stmt::new(
        "UPDATE applications SET routing_run_id = $2, funder_code = $3, updated_at_ms = $4 WHERE id = $1",
        vec![id.into(), run_id.into(), funder_code.into(), now_ms.into()],
    )
}

/// An application (`key` = $1) joined to its newest workflow instance.
fn with_instance_sql(key: &str) -> String {
    let app_cols = COLUMNS
        .split(',')
        .map(|c| format!("a.{}", c.trim()))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "SELECT {app_cols}, {} FROM applications a
         LEFT JOIN workflow_instances w ON w.id = (
             SELECT MAX(x.id) FROM workflow_instances x
             WHERE x.subject_type = 'application' AND x.subject_id = a.id)
         WHERE {key} = $1",
        crate::workflow::instance_columns_as("w", "wi_")
    )
}

fn with_instance_row(r: &AnyRow) -> Result<(ApplicationRow, Option<InstanceRow>), StoreError> {
    let inst = match r.try_get::<Option<i64>, _>("wi_id")? {
        Some(_) => Some(crate::workflow::instance_row_as(r, "wi_")?),
        None => None,
    };
    Ok((row(r)?, inst))
}

impl Store {
    pub async fn application_by_ref(
        &self,
        ref_: &str,
    ) -> Result<Option<ApplicationRow>, StoreError> {
        let r = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM applications WHERE ref = $1"
        ))
        .bind(ref_)
        .fetch_optional(self.reader())
        .await?;
        r.as_ref().map(row).transpose()
    }

    pub async fn application(&self, id: i64) -> Result<Option<ApplicationRow>, StoreError> {
        let r = sqlx::query(&format!("SELECT {COLUMNS} FROM applications WHERE id = $1"))
            .bind(id)
            .fetch_optional(self.reader())
            .await?;
        r.as_ref().map(row).transpose()
    }

    /// An application with its newest workflow instance, in one statement (what
    /// [`Store::application`] and [`Store::instance_of`] read one after the other).
    pub async fn application_with_instance(
        &self,
        id: i64,
    ) -> Result<Option<(ApplicationRow, Option<InstanceRow>)>, StoreError> {
        let r = sqlx::query(&with_instance_sql("a.id"))
            .bind(id)
            .fetch_optional(self.reader())
            .await?;
        r.as_ref().map(with_instance_row).transpose()
    }

    /// [`Store::application_with_instance`] by the application's reference.
    pub async fn application_with_instance_by_ref(
        &self,
        ref_: &str,
    ) -> Result<Option<(ApplicationRow, Option<InstanceRow>)>, StoreError> {
        let r = sqlx::query(&with_instance_sql("a.ref"))
            .bind(ref_)
            .fetch_optional(self.reader())
            .await?;
        r.as_ref().map(with_instance_row).transpose()
    }

    /// Applications inside a scope (same rule as customers), newest first.
    pub async fn applications(
        &self,
        scope: &ScopeFilter,
        status: Option<&str>,
        limit: i64,
    ) -> Result<Vec<ApplicationRow>, StoreError> {
        let mut sql = format!("SELECT {COLUMNS} FROM applications WHERE 1 = 1");
        let mut binds = Vec::new();
        // The same scope rule as customers: owner, or one of the scope's org units.
        scope_sql(scope, &mut sql, &mut binds);
        if let Some(s) = status {
            binds.push(Bind::Str(s));
            sql.push_str(&format!(" AND status = ${}", binds.len()));
        }
        sql.push_str(&format!(" ORDER BY id DESC LIMIT ${}", binds.len() + 1));
        let q = bind_all(sqlx::query(&sql), &binds);
        let rows = q.bind(limit).fetch_all(self.reader()).await?;
        rows.iter().map(row).collect()
    }
}
