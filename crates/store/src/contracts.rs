//! Contracts and disbursement (issue #6): contract templates (every save a new, immutable
//! version), the contract of an application with its frozen snapshot and PDF hash, the
//! signatures of its parties, and the funder's disbursement (one per application, unique
//! by the funder's loan reference so a repeated callback is recognised).

use crate::db::Store;
use crate::error::StoreError;
use sqlx::any::AnyRow;
use sqlx::{Any, Executor, Row};
use std::sync::Arc;

// ---------------------------------------------------------------------------------------
// Templates

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateRow {
    pub id: i64,
    pub code: String,
    pub version: i64,
    pub name: String,
    pub language: String,
    pub body: String,
    pub digest: String,
    pub created_by: Option<String>,
    pub created_at_ms: i64,
}

const TEMPLATE_COLUMNS: &str =
    "id, code, version, name, language, body, digest, created_by, created_at_ms";

fn template_row(r: &AnyRow) -> Result<TemplateRow, StoreError> {
    Ok(TemplateRow {
        id: r.try_get("id")?,
        code: r.try_get("code")?,
        version: r.try_get("version")?,
        name: r.try_get("name")?,
        language: r.try_get("language")?,
        body: r.try_get("body")?,
        digest: r.try_get("digest")?,
        created_by: r.try_get("created_by")?,
        created_at_ms: r.try_get("created_at_ms")?,
    })
}

/// A template version to store.
#[derive(Debug, Clone)]
pub struct NewTemplate<'a> {
    pub code: &'a str,
    pub name: &'a str,
    pub language: &'a str,
    pub body: &'a str,
    pub digest: &'a str,
    pub created_by: Option<&'a str>,
}

/// Stores `t` as the next version of its code; returns (id, version). Two saves racing
/// for the same version: one fails on `contract_templates_code_version_key`.
pub async fn template_insert<'c, E>(
    exec: E,
    t: &NewTemplate<'_>,
    now_ms: i64,
) -> Result<(i64, i64), StoreError>
where
    E: Executor<'c, Database = Any>,
{
    let r = sqlx::query(
        "INSERT INTO contract_templates (code, version, name, language, body, digest, created_by, created_at_ms)
         SELECT $1, COALESCE(MAX(version), 0) + 1, $2, $3, $4, $5, $6, $7
           FROM contract_templates WHERE code = $1
         RETURNING id, version",
    )
    .bind(t.code)
    .bind(t.name)
    .bind(t.language)
    .bind(t.body)
    .bind(t.digest)
    .bind(t.created_by)
    .bind(now_ms)
    .fetch_one(exec)
    .await?;
    Ok((r.try_get("id")?, r.try_get("version")?))
}

// ---------------------------------------------------------------------------------------
// Contracts

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContractRow {
    pub id: i64,
    pub contract_no: String,
    pub application_id: i64,
    pub template_id: i64,
    pub status: String,
    pub funder_code: String,
    pub amount_fen: i64,
    pub months: i64,
    pub method: String,
    pub snapshot: String,
    pub snapshot_digest: String,
    pub apr: String,
    pub pdf_blob_key: String,
    pub pdf_sha256: String,
    pub pdf_bytes: i64,
    pub generated_by: String,
    pub generated_at_ms: i64,
    pub signed_at_ms: Option<i64>,
    pub void_reason: Option<String>,
    pub voided_by: Option<String>,
    pub voided_at_ms: Option<i64>,
}

const CONTRACT_COLUMNS: &str = "id, contract_no, application_id, template_id, status, funder_code, amount_fen, months, method, \
     snapshot, snapshot_digest, apr, pdf_blob_key, pdf_sha256, pdf_bytes, generated_by, generated_at_ms, \
     signed_at_ms, void_reason, voided_by, voided_at_ms";

fn contract_row(r: &AnyRow) -> Result<ContractRow, StoreError> {
    Ok(ContractRow {
        id: r.try_get("id")?,
        contract_no: r.try_get("contract_no")?,
        application_id: r.try_get("application_id")?,
        template_id: r.try_get("template_id")?,
        status: r.try_get("status")?,
        funder_code: r.try_get("funder_code")?,
        amount_fen: r.try_get("amount_fen")?,
        months: r.try_get("months")?,
        method: r.try_get("method")?,
        snapshot: r.try_get("snapshot")?,
        snapshot_digest: r.try_get("snapshot_digest")?,
        apr: r.try_get("apr")?,
        pdf_blob_key: r.try_get("pdf_blob_key")?,
        pdf_sha256: r.try_get("pdf_sha256")?,
        pdf_bytes: r.try_get("pdf_bytes")?,
        generated_by: r.try_get("generated_by")?,
        generated_at_ms: r.try_get("generated_at_ms")?,
        signed_at_ms: r.try_get("signed_at_ms")?,
        void_reason: r.try_get("void_reason")?,
        voided_by: r.try_get("voided_by")?,
        voided_at_ms: r.try_get("voided_at_ms")?,
    })
}

/// A generated contract to store (status draft, live).
#[derive(Debug, Clone)]
pub struct NewContract<'a> {
    pub contract_no: &'a str,
    pub application_id: i64,
    pub template_id: i64,
    pub funder_code: &'a str,
    pub amount_fen: i64,
    pub months: i64,
    pub method: &'a str,
    pub snapshot: &'a str,
    pub snapshot_digest: &'a str,
    pub apr: &'a str,
    pub pdf_blob_key: &'a str,
    pub pdf_sha256: &'a str,
    pub pdf_bytes: i64,
    pub generated_by: &'a str,
}

/// Inserts a live draft contract. A second live contract for the application fails on
/// `contracts_live_key`.
pub async fn contract_insert<'c, E>(
    exec: E,
    c: &NewContract<'_>,
    now_ms: i64,
) -> Result<i64, StoreError>
where
    E: Executor<'c, Database = Any>,
{
    Ok(sqlx::query_scalar(
        "INSERT INTO contracts (contract_no, application_id, template_id, status, live, funder_code, amount_fen,
            months, method, snapshot, snapshot_digest, apr, pdf_blob_key, pdf_sha256, pdf_bytes,
            generated_by, generated_at_ms)
         VALUES ($1, $2, $3, 'draft', 1, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
         RETURNING id",
    )
    .bind(c.contract_no)
    .bind(c.application_id)
    .bind(c.template_id)
    .bind(c.funder_code)
    .bind(c.amount_fen)
    .bind(c.months)
    .bind(c.method)
    .bind(c.snapshot)
    .bind(c.snapshot_digest)
    .bind(c.apr)
    .bind(c.pdf_blob_key)
    .bind(c.pdf_sha256)
    .bind(c.pdf_bytes)
    .bind(c.generated_by)
    .bind(now_ms)
    .fetch_one(exec)
    .await?)
}

/// Marks a draft contract signed; false when it was not a draft any more.
pub async fn contract_set_signed<'c, E>(exec: E, id: i64, now_ms: i64) -> Result<bool, StoreError>
where
    E: Executor<'c, Database = Any>,
{
    let r = sqlx::query(
        "UPDATE contracts SET status = 'signed', signed_at_ms = $2 WHERE id = $1 AND status = 'draft'",
    )
    .bind(id)
    .bind(now_ms)
    .execute(exec)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Voids a live contract; false when it was void already.
pub async fn contract_void<'c, E>(
    exec: E,
    id: i64,
    reason: &str,
    by: &str,
    now_ms: i64,
) -> Result<bool, StoreError>
where
    E: Executor<'c, Database = Any>,
{
    let r = sqlx::query(
        "UPDATE contracts SET status = 'void', live = NULL, void_reason = $2, voided_by = $3, voided_at_ms = $4
         WHERE id = $1 AND status <> 'void'",
    )
    .bind(id)
    .bind(reason)
    .bind(by)
    .bind(now_ms)
    .execute(exec)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// The live (not void) contract of an application, read inside a transaction.
pub async fn contract_live_in(
    conn: &mut sqlx::AnyConnection,
    application_id: i64,
) -> Result<Option<ContractRow>, StoreError> {
    let r = sqlx::query(&format!(
        "SELECT {CONTRACT_COLUMNS} FROM contracts WHERE application_id = $1 AND live = 1"
    ))
    .bind(application_id)
    .fetch_optional(&mut *conn)
    .await?;
    r.as_ref().map(contract_row).transpose()
}

// ---------------------------------------------------------------------------------------
// Signatures

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureRow {
    pub id: i64,
    pub contract_id: i64,
    pub party: String,
    pub method: String,
    pub signer_name: String,
    pub provider_ref: Option<String>,
    pub evidence_sha256: String,
    pub signed_at_ms: i64,
    pub recorded_by: String,
    pub recorded_at_ms: i64,
}

const SIGNATURE_COLUMNS: &str = "id, contract_id, party, method, signer_name, provider_ref, evidence_sha256, signed_at_ms, recorded_by, recorded_at_ms";

fn signature_row(r: &AnyRow) -> Result<SignatureRow, StoreError> {
    Ok(SignatureRow {
        id: r.try_get("id")?,
        contract_id: r.try_get("contract_id")?,
        party: r.try_get("party")?,
        method: r.try_get("method")?,
        signer_name: r.try_get("signer_name")?,
        provider_ref: r.try_get("provider_ref")?,
        evidence_sha256: r.try_get("evidence_sha256")?,
        signed_at_ms: r.try_get("signed_at_ms")?,
        recorded_by: r.try_get("recorded_by")?,
        recorded_at_ms: r.try_get("recorded_at_ms")?,
    })
}

#[derive(Debug, Clone)]
pub struct NewSignature<'a> {
    pub contract_id: i64,
    pub party: &'a str,
    pub method: &'a str,
    pub signer_name: &'a str,
    pub provider_ref: Option<&'a str>,
    pub evidence_sha256: &'a str,
    pub signed_at_ms: i64,
    pub recorded_by: &'a str,
}

/// Records a signature; a second one for the same party fails on
/// `contract_signatures_party_key`.
pub async fn signature_insert<'c, E>(
    exec: E,
    s: &NewSignature<'_>,
    now_ms: i64,
) -> Result<i64, StoreError>
where
    E: Executor<'c, Database = Any>,
{
    Ok(sqlx::query_scalar(
        "INSERT INTO contract_signatures (contract_id, party, method, signer_name, provider_ref, evidence_sha256,
            signed_at_ms, recorded_by, recorded_at_ms)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
    )
    .bind(s.contract_id)
    .bind(s.party)
    .bind(s.method)
    .bind(s.signer_name)
    .bind(s.provider_ref)
    .bind(s.evidence_sha256)
    .bind(s.signed_at_ms)
    .bind(s.recorded_by)
    .bind(now_ms)
    .fetch_one(exec)
    .await?)
}

/// The parties that signed a contract, read inside a transaction.
/// Every signature of a contract, oldest first, read inside the caller's transaction.
pub async fn signatures_in(
    conn: &mut sqlx::AnyConnection,
    contract_id: i64,
) -> Result<Vec<SignatureRow>, StoreError> {
    signatures_on(&mut *conn, contract_id).await
}

/// Every signature of a contract, oldest first, on any executor.
async fn signatures_on<'c, E>(exec: E, contract_id: i64) -> Result<Vec<SignatureRow>, StoreError>
where
    E: Executor<'c, Database = Any>,
{
    let rows = sqlx::query(&format!(
        "SELECT {SIGNATURE_COLUMNS} FROM contract_signatures WHERE contract_id = $1 ORDER BY id"
    ))
    .bind(contract_id)
    .fetch_all(exec)
    .await?;
    rows.iter().map(signature_row).collect()
}

pub async fn signed_parties_in(
    conn: &mut sqlx::AnyConnection,
    contract_id: i64,
) -> Result<Vec<String>, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT party FROM contract_signatures WHERE contract_id = $1")
            .bind(contract_id)
            .fetch_all(&mut *conn)
            .await?,
    )
}

// ---------------------------------------------------------------------------------------
// Disbursements

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisbursementRow {
    pub id: i64,
    pub application_id: i64,
    pub contract_id: i64,
    pub funder_code: String,
    pub funder_loan_ref: String,
    pub amount_fen: i64,
    pub disbursed_on: String,
    pub source: String,
    pub loan_id: Option<i64>,
    pub created_at_ms: i64,
}

const DISBURSEMENT_COLUMNS: &str = "id, application_id, contract_id, funder_code, funder_loan_ref, amount_fen, disbursed_on, source, loan_id, created_at_ms";

fn disbursement_row(r: &AnyRow) -> Result<DisbursementRow, StoreError> {
    Ok(DisbursementRow {
        id: r.try_get("id")?,
        application_id: r.try_get("application_id")?,
        contract_id: r.try_get("contract_id")?,
        funder_code: r.try_get("funder_code")?,
        funder_loan_ref: r.try_get("funder_loan_ref")?,
        amount_fen: r.try_get("amount_fen")?,
        disbursed_on: r.try_get("disbursed_on")?,
        source: r.try_get("source")?,
        loan_id: r.try_get("loan_id")?,
        created_at_ms: r.try_get("created_at_ms")?,
    })
}

#[derive(Debug, Clone)]
pub struct NewDisbursement<'a> {
    pub application_id: i64,
    pub contract_id: i64,
    pub funder_code: &'a str,
    pub funder_loan_ref: &'a str,
    pub amount_fen: i64,
    pub disbursed_on: &'a str,
    pub source: &'a str,
}

/// Inserts a disbursement unless the application or the funder's reference already has
/// one (`None` then; a concurrent duplicate waits for the first to commit).
pub async fn disbursement_insert<'c, E>(
    exec: E,
    d: &NewDisbursement<'_>,
    now_ms: i64,
) -> Result<Option<i64>, StoreError>
where
    E: Executor<'c, Database = Any>,
{
    Ok(sqlx::query_scalar(
        "INSERT INTO disbursements (application_id, contract_id, funder_code, funder_loan_ref, amount_fen,
            disbursed_on, source, created_at_ms)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT DO NOTHING RETURNING id",
    )
    .bind(d.application_id)
    .bind(d.contract_id)
    .bind(d.funder_code)
    .bind(d.funder_loan_ref)
    .bind(d.amount_fen)
    .bind(d.disbursed_on)
    .bind(d.source)
    .bind(now_ms)
    .fetch_optional(exec)
    .await?)
}

pub async fn disbursement_set_loan<'c, E>(exec: E, id: i64, loan_id: i64) -> Result<(), StoreError>
where
    E: Executor<'c, Database = Any>,
{
    sqlx::query("UPDATE disbursements SET loan_id = $2 WHERE id = $1")
        .bind(id)
        .bind(loan_id)
        .execute(exec)
        .await?;
    Ok(())
}

/// The disbursement with a funder's reference or for an application, read inside a
/// transaction (after a refused insert).
pub async fn disbursement_existing_in(
    conn: &mut sqlx::AnyConnection,
    application_id: i64,
    funder_code: &str,
    funder_loan_ref: &str,
) -> Result<Option<DisbursementRow>, StoreError> {
    let r = sqlx::query(&format!(
        "SELECT {DISBURSEMENT_COLUMNS} FROM disbursements
          WHERE (funder_code = $2 AND funder_loan_ref = $3) OR application_id = $1
          ORDER BY id LIMIT 1"
    ))
    .bind(application_id)
    .bind(funder_code)
    .bind(funder_loan_ref)
    .fetch_optional(&mut *conn)
    .await?;
    r.as_ref().map(disbursement_row).transpose()
}

impl Store {
    /// The newest version of every template code, by code.
    pub async fn contract_templates(&self) -> Result<Vec<TemplateRow>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {TEMPLATE_COLUMNS} FROM contract_templates t
              WHERE version = (SELECT MAX(version) FROM contract_templates WHERE code = t.code)
              ORDER BY code"
        ))
        .fetch_all(self.reader())
        .await?;
        rows.iter().map(template_row).collect()
    }

    /// Every version of a template, newest first.
    pub async fn contract_template_versions(
        &self,
        code: &str,
    ) -> Result<Vec<TemplateRow>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {TEMPLATE_COLUMNS} FROM contract_templates WHERE code = $1 ORDER BY version DESC"
        ))
        .bind(code)
        .fetch_all(self.reader())
        .await?;
        rows.iter().map(template_row).collect()
    }

    /// One version of a template, or its newest with `None`.
    pub async fn contract_template(
        &self,
        code: &str,
        version: Option<i64>,
    ) -> Result<Option<TemplateRow>, StoreError> {
        let r = match version {
            Some(v) => {
                sqlx::query(&format!(
                    "SELECT {TEMPLATE_COLUMNS} FROM contract_templates WHERE code = $1 AND version = $2"
                ))
                .bind(code)
                .bind(v)
                .fetch_optional(self.reader())
                .await?
            }
            None => {
                sqlx::query(&format!(
                    "SELECT {TEMPLATE_COLUMNS} FROM contract_templates WHERE code = $1 ORDER BY version DESC LIMIT 1"
                ))
                .bind(code)
                .fetch_optional(self.reader())
                .await?
            }
        };
        r.as_ref().map(template_row).transpose()
    }

    /// A template version by id. Versions are immutable (the database refuses changes):
    /// each is read once and then served from memory.
    pub async fn contract_template_by_id(
        &self,
        id: i64,
    ) -> Result<Option<Arc<TemplateRow>>, StoreError> {
        if let Some(t) = self.immutable.templates.get(&id) {
            return Ok(Some(t));
        }
        let r = sqlx::query(&format!(
            "SELECT {TEMPLATE_COLUMNS} FROM contract_templates WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(self.reader())
        .await?;
        let Some(r) = r else { return Ok(None) };
        let t = Arc::new(template_row(&r)?);
        self.immutable.templates.put(id, t.clone());
        Ok(Some(t))
    }

    pub async fn contract(&self, id: i64) -> Result<Option<ContractRow>, StoreError> {
        let r = sqlx::query(&format!(
            "SELECT {CONTRACT_COLUMNS} FROM contracts WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(self.reader())
        .await?;
        r.as_ref().map(contract_row).transpose()
    }

    /// Every contract of an application (void ones too), newest first.
    pub async fn contracts_of(&self, application_id: i64) -> Result<Vec<ContractRow>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {CONTRACT_COLUMNS} FROM contracts WHERE application_id = $1 ORDER BY id DESC"
        ))
        .bind(application_id)
        .fetch_all(self.reader())
        .await?;
        rows.iter().map(contract_row).collect()
    }

    /// The live (not void) contract of an application.
    pub async fn contract_live(
        &self,
        application_id: i64,
    ) -> Result<Option<ContractRow>, StoreError> {
        let r = sqlx::query(&format!(
            "SELECT {CONTRACT_COLUMNS} FROM contracts WHERE application_id = $1 AND live = 1"
        ))
        .bind(application_id)
        .fetch_optional(self.reader())
        .await?;
        r.as_ref().map(contract_row).transpose()
    }

    pub async fn contract_signatures(
        &self,
        contract_id: i64,
    ) -> Result<Vec<SignatureRow>, StoreError> {
        signatures_on(self.reader(), contract_id).await
    }

    pub async fn disbursement_of(
        &self,
        application_id: i64,
    ) -> Result<Option<DisbursementRow>, StoreError> {
        let r = sqlx::query(&format!(
            "SELECT {DISBURSEMENT_COLUMNS} FROM disbursements WHERE application_id = $1"
        ))
        .bind(application_id)
        .fetch_optional(self.reader())
        .await?;
        r.as_ref().map(disbursement_row).transpose()
    }
}
