//! Customers and the links between enterprises and people. The store holds ciphertexts
//! and blind indexes only; validation and encryption happen in the domain and the
//! server's vault. Every query that lists customers takes a [`ScopeFilter`], so a caller
//! limited to their team cannot list anyone else's customers by mistake.

use crate::db::Store;
use crate::error::StoreError;
use sqlx::any::AnyRow;
use sqlx::{Any, Executor, Row};

/// A customer row (sensitive fields encrypted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomerRow {
    pub id: i64,
    pub ref_: String,
    pub kind: String,
    pub name: String,
    pub id_kind: String,
    pub id_number_enc: Option<Vec<u8>>,
    pub id_number_bidx: Option<String>,
    pub phone_enc: Option<Vec<u8>>,
    pub phone_bidx: Option<String>,
    pub bank_card_enc: Option<Vec<u8>>,
    pub bank_card_bidx: Option<String>,
    pub email_enc: Option<Vec<u8>>,
    pub address_enc: Option<Vec<u8>>,
    pub monthly_income_enc: Option<Vec<u8>>,
    pub birth_date: Option<String>,
    pub gender: Option<String>,
    pub region_code: Option<String>,
    pub owner_user_id: i64,
    pub org_unit_id: Option<i64>,
    pub status: String,
    pub legal_hold_until: Option<String>,
    pub created_by: Option<i64>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    pub version: i64,
}

/// The values of a new customer, or the replacement values of an edit (`ref_`, `kind`,
/// owner and creation fields are ignored by [`customer_update`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CustomerValues {
    pub ref_: String,
    pub kind: String,
    pub name: String,
    pub id_kind: String,
    pub id_number_enc: Option<Vec<u8>>,
    pub id_number_bidx: Option<String>,
    pub phone_enc: Option<Vec<u8>>,
    pub phone_bidx: Option<String>,
    pub bank_card_enc: Option<Vec<u8>>,
    pub bank_card_bidx: Option<String>,
    pub email_enc: Option<Vec<u8>>,
    pub address_enc: Option<Vec<u8>>,
    pub monthly_income_enc: Option<Vec<u8>>,
    pub birth_date: Option<String>,
    pub gender: Option<String>,
    pub region_code: Option<String>,
    pub owner_user_id: i64,
    pub org_unit_id: Option<i64>,
    pub created_by: Option<i64>,
}

/// Which customers a caller may see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScopeFilter {
    All,
    /// Customers of these org units, plus those the user owns.
    Units {
        units: Vec<i64>,
        owner: i64,
    },
    /// Only customers the user owns.
    Owner(i64),
}

impl ScopeFilter {
    /// Whether a customer owned by `owner` in `unit` is inside this scope.
    pub fn admits(&self, owner: i64, unit: Option<i64>) -> bool {
        match self {
            ScopeFilter::All => true,
            ScopeFilter::Units { units, owner: me } => {
                owner == *me || unit.is_some_and(|u| units.contains(&u))
            }
            ScopeFilter::Owner(me) => owner == *me,
        }
    }
}

/// A blind-indexed column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IndexedField {
    IdNumber,
    Phone,
    BankCard,
}

impl IndexedField {
    fn column(self) -> &'static str {
        match self {
            IndexedField::IdNumber => "id_number_bidx",
            IndexedField::Phone => "phone_bidx",
            IndexedField::BankCard => "bank_card_bidx",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            IndexedField::IdNumber => "id_number",
            IndexedField::Phone => "phone",
            IndexedField::BankCard => "bank_card",
        }
    }
}

/// A customer search.
#[derive(Debug, Clone)]
pub struct CustomerQuery<'a> {
    pub scope: &'a ScopeFilter,
    /// Part of the name.
    pub name: Option<&'a str>,
    /// Exact match through a blind index.
    pub exact: Option<(IndexedField, &'a str)>,
    pub kind: Option<&'a str>,
    pub status: Option<&'a str>,
    pub offset: i64,
    pub limit: i64,
}

#[derive(Debug, Clone)]
pub struct CustomerPage {
    pub rows: Vec<CustomerRow>,
    pub total: i64,
}

/// Another customer sharing an identifier: enough to decide whether the caller may be
/// shown who it is, nothing more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Match {
    pub id: i64,
    pub owner_user_id: i64,
    pub org_unit_id: Option<i64>,
}

/// An enterprise–person link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relation {
    pub id: i64,
    pub enterprise_id: i64,
    pub person_id: i64,
    pub role: String,
    pub share_bp: Option<i64>,
    pub created_at_ms: i64,
}

pub(crate) const COLUMNS: &str = "id, ref, kind, name, id_kind, id_number_enc, id_number_bidx, phone_enc, phone_bidx, \
    bank_card_enc, bank_card_bidx, email_enc, address_enc, monthly_income_enc, birth_date, gender, region_code, \
    owner_user_id, org_unit_id, status, legal_hold_until, created_by, created_at_ms, updated_at_ms, version";

pub(crate) fn row(r: &AnyRow) -> Result<CustomerRow, StoreError> {
    Ok(CustomerRow {
        id: r.try_get("id")?,
        ref_: r.try_get("ref")?,
        kind: r.try_get("kind")?,
        name: r.try_get("name")?,
        id_kind: r.try_get("id_kind")?,
        id_number_enc: r.try_get("id_number_enc")?,
        id_number_bidx: r.try_get("id_number_bidx")?,
        phone_enc: r.try_get("phone_enc")?,
        phone_bidx: r.try_get("phone_bidx")?,
        bank_card_enc: r.try_get("bank_card_enc")?,
        bank_card_bidx: r.try_get("bank_card_bidx")?,
        email_enc: r.try_get("email_enc")?,
        address_enc: r.try_get("address_enc")?,
        monthly_income_enc: r.try_get("monthly_income_enc")?,
        birth_date: r.try_get("birth_date")?,
        gender: r.try_get("gender")?,
        region_code: r.try_get("region_code")?,
        owner_user_id: r.try_get("owner_user_id")?,
        org_unit_id: r.try_get("org_unit_id")?,
        status: r.try_get("status")?,
        legal_hold_until: r.try_get("legal_hold_until")?,
        created_by: r.try_get("created_by")?,
        created_at_ms: r.try_get("created_at_ms")?,
        updated_at_ms: r.try_get("updated_at_ms")?,
        version: r.try_get("version")?,
    })
}

pub(crate) enum Bind<'a> {
    I64(i64),
    Str(&'a str),
    String(String),
}

/// Appends the scope condition with its binds; `n` is the number of binds so far.
pub(crate) fn scope_sql<'a>(scope: &ScopeFilter, sql: &mut String, binds: &mut Vec<Bind<'a>>) {
    match scope {
        ScopeFilter::All => {}
        ScopeFilter::Owner(me) => {
            binds.push(Bind::I64(*me));
            sql.push_str(&format!(" AND owner_user_id = ${}", binds.len()));
        }
        ScopeFilter::Units { units, owner } => {
            binds.push(Bind::I64(*owner));
            let mut cond = format!(" AND (owner_user_id = ${}", binds.len());
            if !units.is_empty() {
                let mut marks = Vec::with_capacity(units.len());
                for u in units {
                    binds.push(Bind::I64(*u));
                    marks.push(format!("${}", binds.len()));
                }
                cond.push_str(&format!(" OR org_unit_id IN ({})", marks.join(", ")));
            }
            cond.push(')');
            sql.push_str(&cond);
        }
    }
}

pub(crate) fn bind_all<'q>(
    mut q: sqlx::query::Query<'q, Any, sqlx::any::AnyArguments<'q>>,
    binds: &'q [Bind<'q>],
) -> sqlx::query::Query<'q, Any, sqlx::any::AnyArguments<'q>> {
    for b in binds {
        q = match b {
            Bind::I64(v) => q.bind(*v),
            Bind::Str(v) => q.bind(*v),
            Bind::String(v) => q.bind(v.as_str()),
        };
    }
    q
}

/// Inserts a customer inside the caller's transaction; returns its id.
pub async fn customer_insert<'c, E>(
    exec: E,
    v: &CustomerValues,
    now_ms: i64,
) -> Result<i64, StoreError>
where
    E: Executor<'c, Database = Any>,
{
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO customers (ref, kind, name, id_kind, id_number_enc, id_number_bidx, phone_enc, phone_bidx,
            bank_card_enc, bank_card_bidx, email_enc, address_enc, monthly_income_enc, birth_date, gender, region_code,
            owner_user_id, org_unit_id, created_by, created_at_ms, updated_at_ms)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $20)
         RETURNING id",
    )
    .bind(v.ref_.as_str())
    .bind(v.kind.as_str())
    .bind(v.name.as_str())
    .bind(v.id_kind.as_str())
    .bind(v.id_number_enc.clone())
    .bind(v.id_number_bidx.clone())
    .bind(v.phone_enc.clone())
    .bind(v.phone_bidx.clone())
    .bind(v.bank_card_enc.clone())
    .bind(v.bank_card_bidx.clone())
    .bind(v.email_enc.clone())
    .bind(v.address_enc.clone())
    .bind(v.monthly_income_enc.clone())
    .bind(v.birth_date.clone())
    .bind(v.gender.clone())
    .bind(v.region_code.clone())
    .bind(v.owner_user_id)
    .bind(v.org_unit_id)
    .bind(v.created_by)
    .bind(now_ms)
    .fetch_one(exec)
    .await?;
    Ok(id)
}

/// Replaces the editable fields of customer `id` if its version is still
/// `expected_version`; returns false (nothing written) when someone else changed it
/// first or it does not exist.
pub async fn customer_update<'c, E>(
    exec: E,
    id: i64,
    expected_version: i64,
    v: &CustomerValues,
    now_ms: i64,
) -> Result<bool, StoreError>
where
    E: Executor<'c, Database = Any>,
{
    let done = sqlx::query(
        "UPDATE customers SET name = $3, id_kind = $4, id_number_enc = $5, id_number_bidx = $6, phone_enc = $7,
            phone_bidx = $8, bank_card_enc = $9, bank_card_bidx = $10, email_enc = $11, address_enc = $12,
            monthly_income_enc = $13, birth_date = $14, gender = $15, region_code = $16, updated_at_ms = $17,
            version = version + 1
         WHERE id = $1 AND version = $2 AND status <> 'erased'",
    )
    .bind(id)
    .bind(expected_version)
    .bind(v.name.as_str())
    .bind(v.id_kind.as_str())
    .bind(v.id_number_enc.clone())
    .bind(v.id_number_bidx.clone())
    .bind(v.phone_enc.clone())
    .bind(v.phone_bidx.clone())
    .bind(v.bank_card_enc.clone())
    .bind(v.bank_card_bidx.clone())
    .bind(v.email_enc.clone())
    .bind(v.address_enc.clone())
    .bind(v.monthly_income_enc.clone())
    .bind(v.birth_date.clone())
    .bind(v.gender.clone())
    .bind(v.region_code.clone())
    .bind(now_ms)
    .execute(exec)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Sets a customer's status (`active` / `closed`) and legal hold.
pub async fn customer_set_status<'c, E>(
    exec: E,
    id: i64,
    status: &str,
    legal_hold_until: Option<&str>,
    now_ms: i64,
) -> Result<bool, StoreError>
where
    E: Executor<'c, Database = Any>,
{
    let done = sqlx::query(
        "UPDATE customers SET status = $2, legal_hold_until = $3, updated_at_ms = $4, version = version + 1
         WHERE id = $1 AND status <> 'erased'",
    )
    .bind(id)
    .bind(status)
    .bind(legal_hold_until)
    .bind(now_ms)
    .execute(exec)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Erases a customer's personal data from the row (the data key is destroyed by the
/// caller, which makes any copy of the ciphertexts unreadable too). The row itself stays
/// so loans and audit records keep a valid reference; the name is replaced.
pub async fn customer_erase<'c, E>(exec: E, id: i64, now_ms: i64) -> Result<bool, StoreError>
where
    E: Executor<'c, Database = Any>,
{
    let done = sqlx::query(
        "UPDATE customers SET name = '已删除 erased', id_number_enc = NULL, id_number_bidx = NULL, phone_enc = NULL,
            phone_bidx = NULL, bank_card_enc = NULL, bank_card_bidx = NULL, email_enc = NULL, address_enc = NULL,
            monthly_income_enc = NULL, birth_date = NULL, gender = NULL, region_code = NULL, status = 'erased',
            updated_at_ms = $2, version = version + 1
         WHERE id = $1 AND status <> 'erased'",
    )
    .bind(id)
    .bind(now_ms)
    .execute(exec)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Links a person to an enterprise.
pub async fn relation_insert<'c, E>(
    exec: E,
    enterprise_id: i64,
    person_id: i64,
    role: &str,
    share_bp: Option<i64>,
    created_by: Option<i64>,
    now_ms: i64,
) -> Result<i64, StoreError>
where
    E: Executor<'c, Database = Any>,
{
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO customer_relations (enterprise_id, person_id, role, share_bp, created_by, created_at_ms)
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
    )
    .bind(enterprise_id)
    .bind(person_id)
    .bind(role)
    .bind(share_bp)
    .bind(created_by)
    .bind(now_ms)
    .fetch_one(exec)
    .await?;
    Ok(id)
}

impl Store {
    pub async fn customer_get(&self, id: i64) -> Result<Option<CustomerRow>, StoreError> {
        let r = sqlx::query(&format!("SELECT {COLUMNS} FROM customers WHERE id = $1"))
            .bind(id)
            .fetch_optional(self.reader())
            .await?;
        r.as_ref().map(row).transpose()
    }

    pub async fn customer_by_ref(&self, ref_: &str) -> Result<Option<CustomerRow>, StoreError> {
        let r = sqlx::query(&format!("SELECT {COLUMNS} FROM customers WHERE ref = $1"))
            .bind(ref_)
            .fetch_optional(self.reader())
            .await?;
        r.as_ref().map(row).transpose()
    }

    /// Customers matching the query inside its scope, newest first (its two statements
    /// on one reader connection: one hand-out from the pool, not two).
    pub async fn customer_list(&self, q: &CustomerQuery<'_>) -> Result<CustomerPage, StoreError> {
        let mut conn = self.reader().acquire().await?;
        Self::customer_list_on(&mut conn, q).await
    }

    /// [`Store::customer_list`] on a connection the caller holds.
    pub async fn customer_list_on(
        conn: &mut sqlx::AnyConnection,
        q: &CustomerQuery<'_>,
    ) -> Result<CustomerPage, StoreError> {
        let mut cond = String::from(" WHERE 1 = 1");
        let mut binds: Vec<Bind<'_>> = Vec::new();
        scope_sql(q.scope, &mut cond, &mut binds);
        if let Some((field, bidx)) = q.exact {
            binds.push(Bind::Str(bidx));
            cond.push_str(&format!(" AND {} = ${}", field.column(), binds.len()));
        }
        if let Some(name) = q.name.map(str::trim).filter(|s| !s.is_empty()) {
            let escaped = name
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_");
            binds.push(Bind::String(format!("%{escaped}%")));
            cond.push_str(&format!(" AND name LIKE ${} ESCAPE '\\'", binds.len()));
        }
        if let Some(kind) = q.kind {
            binds.push(Bind::Str(kind));
            cond.push_str(&format!(" AND kind = ${}", binds.len()));
        }
        if let Some(status) = q.status {
            binds.push(Bind::Str(status));
            cond.push_str(&format!(" AND status = ${}", binds.len()));
        }
        let count_sql = format!("SELECT COUNT(*) FROM customers{cond}");
        let total: i64 = bind_all(sqlx::query(&count_sql), &binds)
            .fetch_one(&mut *conn)
            .await?
            .try_get(0)?;
        let n = binds.len();
        let list_sql = format!(
            "SELECT {COLUMNS} FROM customers{cond} ORDER BY id DESC LIMIT ${} OFFSET ${}",
            n + 1,
            n + 2
        );
        let rows = bind_all(sqlx::query(&list_sql), &binds)
            .bind(q.limit)
            .bind(q.offset)
            .fetch_all(&mut *conn)
            .await?;
        Ok(CustomerPage {
            rows: rows.iter().map(row).collect::<Result<_, _>>()?,
            total,
        })
    }

    /// Other customers (not `except_id`, not erased) with the same blind index.
    pub async fn customer_matches(
        &self,
        field: IndexedField,
        bidx: &str,
        except_id: Option<i64>,
    ) -> Result<Vec<Match>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT id, owner_user_id, org_unit_id FROM customers
             WHERE {} = $1 AND id <> $2 AND status <> 'erased' ORDER BY id",
            field.column()
        ))
        .bind(bidx)
        .bind(except_id.unwrap_or(-1))
        .fetch_all(self.reader())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Match {
                    id: r.try_get("id")?,
                    owner_user_id: r.try_get("owner_user_id")?,
                    org_unit_id: r.try_get("org_unit_id")?,
                })
            })
            .collect()
    }

    /// Links where the customer is the enterprise or the person.
    pub async fn customer_relations(&self, customer_id: i64) -> Result<Vec<Relation>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, enterprise_id, person_id, role, share_bp, created_at_ms FROM customer_relations
             WHERE enterprise_id = $1 OR person_id = $1 ORDER BY id",
        )
        .bind(customer_id)
        .fetch_all(self.reader())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Relation {
                    id: r.try_get("id")?,
                    enterprise_id: r.try_get("enterprise_id")?,
                    person_id: r.try_get("person_id")?,
                    role: r.try_get("role")?,
                    share_bp: r.try_get("share_bp")?,
                    created_at_ms: r.try_get("created_at_ms")?,
                })
            })
            .collect()
    }

    /// Number of customers (all statuses).
    pub async fn customer_count(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM customers")
            .fetch_one(self.reader())
            .await?)
    }
}
