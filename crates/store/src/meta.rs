//! Instance metadata (key/value) and the organisation tree.

use crate::db::Store;
use crate::error::StoreError;
use serde::Serialize;
use sqlx::{Any, Executor, Row};

/// A unit of the organisation: the company, a branch or a team.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OrgUnit {
    pub id: i64,
    pub parent_id: Option<i64>,
    pub kind: String,
    pub code: String,
    pub name_zh: String,
    pub name_en: String,
}

/// A new org unit.
#[derive(Debug, Clone)]
pub struct NewOrgUnit<'a> {
    pub parent_id: Option<i64>,
    pub kind: &'a str,
    pub code: &'a str,
    pub name_zh: &'a str,
    pub name_en: &'a str,
}

impl Store {
    pub async fn meta_get(&self, key: &str) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT value FROM system_meta WHERE key = $1")
            .bind(key)
            .fetch_optional(self.reader())
            .await?;
        Ok(match row {
            Some(r) => Some(r.try_get("value")?),
            None => None,
        })
    }

    pub async fn meta_set(&self, key: &str, value: &str, now_ms: i64) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO system_meta (key, value, updated_at_ms) VALUES ($1, $2, $3)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at_ms = excluded.updated_at_ms",
        )
        .bind(key)
        .bind(value)
        .bind(now_ms)
        .execute(self.writer())
        .await?;
        Ok(())
    }

    /// Sets `key` only if it has no value yet; returns whether this call set it. Used for
    /// one-time actions (e.g. seeding demo data) that several instances may race to do.
    pub async fn meta_set_once(
        &self,
        key: &str,
        value: &str,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        meta_insert_once(self.writer(), key, value, now_ms).await
    }

    pub async fn org_unit_create(
        &self,
        unit: &NewOrgUnit<'_>,
        now_ms: i64,
    ) -> Result<i64, StoreError> {
        org_unit_insert(self.writer(), unit, now_ms).await
    }

    pub async fn org_units(&self) -> Result<Vec<OrgUnit>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, parent_id, kind, code, name_zh, name_en FROM org_units ORDER BY id",
        )
        .fetch_all(self.reader())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(OrgUnit {
                    id: r.try_get("id")?,
                    parent_id: r.try_get("parent_id")?,
                    kind: r.try_get("kind")?,
                    code: r.try_get("code")?,
                    name_zh: r.try_get("name_zh")?,
                    name_en: r.try_get("name_en")?,
                })
            })
            .collect()
    }
}

/// [`Store::meta_set_once`] through any executor (a pool or an open transaction): inside
/// a transaction, a second instance doing the same waits on the row, then finds it taken.
pub async fn meta_insert_once<'c, E>(
    exec: E,
    key: &str,
    value: &str,
    now_ms: i64,
) -> Result<bool, StoreError>
where
    E: Executor<'c, Database = Any>,
{
    let done = sqlx::query(
        "INSERT INTO system_meta (key, value, updated_at_ms) VALUES ($1, $2, $3) ON CONFLICT (key) DO NOTHING",
    )
    .bind(key)
    .bind(value)
    .bind(now_ms)
    .execute(exec)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// [`Store::org_unit_create`] through any executor (a pool or an open transaction).
pub async fn org_unit_insert<'c, E>(
    exec: E,
    unit: &NewOrgUnit<'_>,
    now_ms: i64,
) -> Result<i64, StoreError>
where
    E: Executor<'c, Database = Any>,
{
    let row = sqlx::query(
        "INSERT INTO org_units (parent_id, kind, code, name_zh, name_en, created_at_ms)
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
    )
    .bind(unit.parent_id)
    .bind(unit.kind)
    .bind(unit.code)
    .bind(unit.name_zh)
    .bind(unit.name_en)
    .bind(now_ms)
    .fetch_one(exec)
    .await?;
    Ok(row.try_get("id")?)
}
