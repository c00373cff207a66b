//! Loan products, their immutable versions, and frozen quotes (issue #5).
//!
//! Writes that change business data take an [`AuditDraft`] and append it inside their own
//! transaction, so the audit record exists exactly when the change does. Versions and
//! quotes are append-only (database triggers refuse UPDATE and DELETE).

use crate::audit::{self, AuditDraft};
use crate::db::Store;
use crate::error::StoreError;
use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};
use std::sync::Arc;
use zhudai_domain::money::Fen;
use zhudai_domain::product::{ProductSpec, ProductStatus};

/// A product (without its versions).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Product {
    pub id: i64,
    pub code: String,
    pub name: String,
    pub status: ProductStatus,
    /// The newest version number (versions count from 1).
    pub current_version: i64,
    pub created_by: String,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

/// One saved version of a product.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProductVersion {
    pub id: i64,
    pub product_id: i64,
    pub version: i64,
    pub spec: ProductSpec,
    /// The highest APR the cap search found when the version was saved.
    pub worst_apr: String,
    /// The cap in force when it was saved.
    pub apr_cap: String,
    /// The JSON of the cap search (`zhudai_domain::product::CapCheck`).
    pub cap_check: serde_json::Value,
    pub note: Option<String>,
    pub created_by: String,
    pub created_at_ms: i64,
}

/// A new version to save.
#[derive(Debug, Clone)]
pub struct NewVersion<'a> {
    pub spec: &'a ProductSpec,
    pub worst_apr: &'a str,
    pub apr_cap: &'a str,
    pub cap_check: &'a serde_json::Value,
    pub note: Option<&'a str>,
    pub created_by: &'a str,
}

/// A quote to freeze.
#[derive(Debug, Clone)]
pub struct NewQuote<'a> {
    pub product_id: i64,
    pub product_version_id: i64,
    pub amount: Fen,
    pub months: u32,
    pub method: &'a str,
    pub start_date: &'a str,
    pub apr: &'a str,
    /// The JSON snapshot (schedule + disclosure) exactly as it will be served.
    pub snapshot: &'a str,
    /// SHA-256 hex of `snapshot`.
    pub digest: &'a str,
    pub created_by: &'a str,
}

/// A frozen quote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Quote {
    pub id: i64,
    pub product_id: i64,
    pub product_code: String,
    pub product_version_id: i64,
    pub version: i64,
    pub amount: Fen,
    pub months: i64,
    pub method: String,
    pub start_date: String,
    pub apr: String,
    pub snapshot: String,
    pub digest: String,
    pub created_by: String,
    pub created_at_ms: i64,
}

const PRODUCT_COLUMNS: &str =
    "id, code, name, status, current_version, created_by, created_at_ms, updated_at_ms";
const VERSION_COLUMNS: &str =
    "id, product_id, version, spec, worst_apr, apr_cap, cap_check, note, created_by, created_at_ms";

fn product_from_row(row: &AnyRow) -> Result<Product, StoreError> {
    let status: String = row.try_get("status")?;
    Ok(Product {
        id: row.try_get("id")?,
        code: row.try_get("code")?,
        name: row.try_get("name")?,
        status: ProductStatus::parse(&status)
            .ok_or_else(|| StoreError::Invalid(format!("unknown product status {status}")))?,
        current_version: row.try_get("current_version")?,
        created_by: row.try_get("created_by")?,
        created_at_ms: row.try_get("created_at_ms")?,
        updated_at_ms: row.try_get("updated_at_ms")?,
    })
}

fn version_from_row(row: &AnyRow) -> Result<ProductVersion, StoreError> {
    let spec: String = row.try_get("spec")?;
    let cap_check: String = row.try_get("cap_check")?;
    Ok(ProductVersion {
        id: row.try_get("id")?,
        product_id: row.try_get("product_id")?,
        version: row.try_get("version")?,
        spec: serde_json::from_str(&spec)
            .map_err(|e| StoreError::Invalid(format!("stored product spec: {e}")))?,
        worst_apr: row.try_get("worst_apr")?,
        apr_cap: row.try_get("apr_cap")?,
        cap_check: serde_json::from_str(&cap_check)
            .map_err(|e| StoreError::Invalid(format!("stored cap check: {e}")))?,
        note: row.try_get("note")?,
        created_by: row.try_get("created_by")?,
        created_at_ms: row.try_get("created_at_ms")?,
    })
}

fn quote_from_row(row: &AnyRow) -> Result<Quote, StoreError> {
    Ok(Quote {
        id: row.try_get("id")?,
        product_id: row.try_get("product_id")?,
        product_code: row.try_get("code")?,
        product_version_id: row.try_get("product_version_id")?,
        version: row.try_get("version")?,
        amount: Fen::new(row.try_get("amount_fen")?),
        months: row.try_get("months")?,
        method: row.try_get("method")?,
        start_date: row.try_get("start_date")?,
        apr: row.try_get("apr")?,
        snapshot: row.try_get("snapshot")?,
        digest: row.try_get("digest")?,
        created_by: row.try_get("created_by")?,
        created_at_ms: row.try_get("created_at_ms")?,
    })
}

/// Appends the next version of product `product_id` inside the caller's transaction.
/// Bumping `current_version` first takes the product's row lock, so two concurrent saves
/// get consecutive numbers.
pub async fn version_insert(
    conn: &mut AnyConnection,
    product_id: i64,
    v: &NewVersion<'_>,
    now_ms: i64,
) -> Result<ProductVersion, StoreError> {
    let row = sqlx::query(
        "UPDATE products SET current_version = current_version + 1, updated_at_ms = $2 WHERE id = $1 RETURNING current_version",
    )
    .bind(product_id)
    .bind(now_ms)
    .fetch_optional(&mut *conn)
    .await?
    .ok_or(StoreError::NotFound)?;
    let version: i64 = row.try_get("current_version")?;
    let spec = serde_json::to_string(v.spec).map_err(|e| StoreError::Invalid(e.to_string()))?;
    let cap_check =
        serde_json::to_string(v.cap_check).map_err(|e| StoreError::Invalid(e.to_string()))?;
    let row = sqlx::query(&format!(
        "INSERT INTO product_versions (product_id, version, spec, min_amount_fen, max_amount_fen, min_months, max_months,
                                       annual_rate, worst_apr, apr_cap, cap_check, note, created_by, created_at_ms)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) RETURNING {VERSION_COLUMNS}"
    ))
    .bind(product_id)
    .bind(version)
    .bind(spec)
    .bind(v.spec.min_amount.as_fen())
    .bind(v.spec.max_amount.as_fen())
    .bind(i64::from(v.spec.min_months))
    .bind(i64::from(v.spec.max_months))
    .bind(v.spec.annual_rate.to_string())
    .bind(v.worst_apr)
    .bind(v.apr_cap)
    .bind(cap_check)
    .bind(v.note)
    .bind(v.created_by)
    .bind(now_ms)
    .fetch_one(&mut *conn)
    .await?;
    version_from_row(&row)
}

/// Inserts a product with its first version inside the caller's transaction. A taken
/// code is a unique violation on `products_code_key` / `products.code`.
pub async fn product_insert(
    conn: &mut AnyConnection,
    code: &str,
    name: &str,
    status: ProductStatus,
    first: &NewVersion<'_>,
    now_ms: i64,
) -> Result<(Product, ProductVersion), StoreError> {
    let row = sqlx::query(&format!(
        "INSERT INTO products (code, name, status, current_version, created_by, created_at_ms, updated_at_ms)
         VALUES ($1, $2, $3, 0, $4, $5, $5) RETURNING {PRODUCT_COLUMNS}"
    ))
    .bind(code)
    .bind(name)
    .bind(status.code())
    .bind(first.created_by)
    .bind(now_ms)
    .fetch_one(&mut *conn)
    .await?;
    let product = product_from_row(&row)?;
    let version = version_insert(conn, product.id, first, now_ms).await?;
    Ok((
        Product {
            current_version: version.version,
            ..product
        },
        version,
    ))
}

impl Store {
    /// Creates a draft product with version 1 and its audit record, in one transaction.
    pub async fn product_create(
        &self,
        code: &str,
        name: &str,
        first: &NewVersion<'_>,
        audit_draft: &AuditDraft,
        now_ms: i64,
    ) -> Result<(Product, ProductVersion), StoreError> {
        let mut tx = self.begin().await?;
        let out = product_insert(&mut tx, code, name, ProductStatus::Draft, first, now_ms).await?;
        audit::append(&mut tx, audit_draft).await?;
        tx.commit().await?;
        Ok(out)
    }

    /// Saves the next version of product `code` (and renames it when `name` is given),
    /// with its audit record, in one transaction.
    pub async fn product_add_version(
        &self,
        code: &str,
        name: Option<&str>,
        v: &NewVersion<'_>,
        audit_draft: &AuditDraft,
        now_ms: i64,
    ) -> Result<ProductVersion, StoreError> {
        let mut tx = self.begin().await?;
        let row = sqlx::query("SELECT id FROM products WHERE code = $1")
            .bind(code)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(StoreError::NotFound)?;
        let id: i64 = row.try_get("id")?;
        let version = version_insert(&mut tx, id, v, now_ms).await?;
        if let Some(name) = name {
            sqlx::query("UPDATE products SET name = $2 WHERE id = $1")
                .bind(id)
                .bind(name)
                .execute(&mut *tx)
                .await?;
        }
        audit::append(&mut tx, audit_draft).await?;
        tx.commit().await?;
        Ok(version)
    }

    /// Changes the status of product `code` from `from` to `to` with its audit record.
    /// Returns `false` (and writes nothing) when the product is not in `from` any more.
    pub async fn product_set_status(
        &self,
        code: &str,
        from: ProductStatus,
        to: ProductStatus,
        audit_draft: &AuditDraft,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin().await?;
        let done = sqlx::query(
            "UPDATE products SET status = $3, updated_at_ms = $4 WHERE code = $1 AND status = $2",
        )
        .bind(code)
        .bind(from.code())
        .bind(to.code())
        .bind(now_ms)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        audit::append(&mut tx, audit_draft).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Every product, by code.
    pub async fn products(&self) -> Result<Vec<Product>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {PRODUCT_COLUMNS} FROM products ORDER BY code"
        ))
        .fetch_all(self.reader())
        .await?;
        rows.iter().map(product_from_row).collect()
    }

    pub async fn product_by_code(&self, code: &str) -> Result<Option<Product>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {PRODUCT_COLUMNS} FROM products WHERE code = $1"
        ))
        .bind(code)
        .fetch_optional(self.reader())
        .await?;
        row.as_ref().map(product_from_row).transpose()
    }

    /// The versions of a product, newest first.
    pub async fn product_versions(
        &self,
        product_id: i64,
    ) -> Result<Vec<ProductVersion>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {VERSION_COLUMNS} FROM product_versions WHERE product_id = $1 ORDER BY version DESC"
        ))
        .bind(product_id)
        .fetch_all(self.reader())
        .await?;
        rows.iter().map(version_from_row).collect()
    }

    /// Version `version` of the product `code`, the one an application or loan is pinned
    /// to. Versions are never changed or deleted once saved, so each is read once and
    /// then served from memory for the life of the store (one statement on a miss).
    pub async fn product_version_of(
        &self,
        code: &str,
        version: i64,
    ) -> Result<Option<Arc<ProductVersion>>, StoreError> {
        let key = (code.to_owned(), version);
        if let Some(v) = self.immutable.product_versions.get(&key) {
            return Ok(Some(v));
        }
        let row = sqlx::query(&format!(
            "SELECT {VERSION_COLUMNS} FROM product_versions
             WHERE product_id = (SELECT id FROM products WHERE code = $1) AND version = $2"
        ))
        .bind(code)
        .bind(version)
        .fetch_optional(self.reader())
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let v = Arc::new(version_from_row(&row)?);
        self.immutable.product_versions.put(key, v.clone());
        Ok(Some(v))
    }

    /// Version `version` of a product, or its newest when `None`.
    pub async fn product_version(
        &self,
        product_id: i64,
        version: Option<i64>,
    ) -> Result<Option<ProductVersion>, StoreError> {
        let row = match version {
            Some(v) => {
                sqlx::query(&format!(
                    "SELECT {VERSION_COLUMNS} FROM product_versions WHERE product_id = $1 AND version = $2"
                ))
                .bind(product_id)
                .bind(v)
                .fetch_optional(self.reader())
                .await?
            }
            None => {
                sqlx::query(&format!(
                    "SELECT {VERSION_COLUMNS} FROM product_versions WHERE product_id = $1 ORDER BY version DESC LIMIT 1"
                ))
                .bind(product_id)
                .fetch_optional(self.reader())
                .await?
            }
        };
        row.as_ref().map(version_from_row).transpose()
    }

    /// Freezes a quote with its audit record; returns its id.
    pub async fn quote_create(
        &self,
        q: &NewQuote<'_>,
        audit_draft: &AuditDraft,
        now_ms: i64,
    ) -> Result<i64, StoreError> {
        let mut tx = self.begin().await?;
        let row = sqlx::query(
            "INSERT INTO quotes (product_id, product_version_id, amount_fen, months, method, start_date, apr,
                                 snapshot, digest, created_by, created_at_ms)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id",
        )
        .bind(q.product_id)
        .bind(q.product_version_id)
        .bind(q.amount.as_fen())
        .bind(i64::from(q.months))
        .bind(q.method)
        .bind(q.start_date)
        .bind(q.apr)
        .bind(q.snapshot)
        .bind(q.digest)
        .bind(q.created_by)
        .bind(now_ms)
        .fetch_one(&mut *tx)
        .await?;
        let id: i64 = row.try_get("id")?;
        let draft = AuditDraft {
            target: Some(format!("quote:{id}")),
            ..audit_draft.clone()
        };
        audit::append(&mut tx, &draft).await?;
        tx.commit().await?;
        Ok(id)
    }

    pub async fn quote_by_id(&self, id: i64) -> Result<Option<Quote>, StoreError> {
        let row = sqlx::query(
            "SELECT q.id, q.product_id, p.code, q.product_version_id, v.version, q.amount_fen, q.months, q.method,
                    q.start_date, q.apr, q.snapshot, q.digest, q.created_by, q.created_at_ms
             FROM quotes q JOIN products p ON p.id = q.product_id
             JOIN product_versions v ON v.id = q.product_version_id
             WHERE q.id = $1",
        )
        .bind(id)
        .fetch_optional(self.reader())
        .await?;
        row.as_ref().map(quote_from_row).transpose()
    }
}
