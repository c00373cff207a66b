//! Customer documents (metadata; the encrypted contents live in the server's blob
//! store), their verification history, PIPL consents and data-subject requests.
//! Sensitive values arrive here as ciphertexts; validation and encryption happen in the
//! domain and the server's vault.

use crate::db::Store;
use crate::error::StoreError;
use sqlx::any::AnyRow;
use sqlx::{Any, Executor, Row};

/// A document version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocumentRow {
    pub id: i64,
    pub ref_: String,
    pub customer_id: i64,
    pub doc_type: String,
    pub version: i64,
    pub content_type: String,
    pub size_bytes: i64,
    pub sha256: String,
    pub blob_key: String,
    pub original_name_enc: Option<Vec<u8>>,
    pub retention_class: String,
    pub retain_until: Option<String>,
    pub expiry_date: Option<String>,
    pub issued_date: Option<String>,
    pub contract_end_date: Option<String>,
    pub declared_name_enc: Option<Vec<u8>>,
    pub declared_id_number_enc: Option<Vec<u8>>,
    pub status: String,
    pub uploaded_by: Option<i64>,
    pub uploaded_at_ms: i64,
    pub verified_by: Option<i64>,
    pub verified_at_ms: Option<i64>,
    pub verification_note: Option<String>,
    pub erased_at_ms: Option<i64>,
}

/// A new document version (its version number is assigned by [`document_insert`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewDocument {
    pub ref_: String,
    pub customer_id: i64,
    pub doc_type: String,
    pub content_type: String,
    pub size_bytes: i64,
    pub sha256: String,
    pub blob_key: String,
    pub original_name_enc: Option<Vec<u8>>,
    pub retention_class: String,
    pub retain_until: Option<String>,
    pub expiry_date: Option<String>,
    pub issued_date: Option<String>,
    pub contract_end_date: Option<String>,
    pub declared_name_enc: Option<Vec<u8>>,
    pub declared_id_number_enc: Option<Vec<u8>>,
    pub uploaded_by: Option<i64>,
}

/// A pending document with what the verification queue needs of its customer (to apply
/// the caller's scope).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueItem {
    pub document: DocumentRow,
    pub customer_name: String,
    pub owner_user_id: i64,
    pub org_unit_id: Option<i64>,
}

/// One verification decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    pub id: i64,
    pub document_id: i64,
    pub decision: String,
    pub note: Option<String>,
    pub checks_json: String,
    pub verifier_id: i64,
    pub at_ms: i64,
}

const DOC_COLUMNS: &str = "d.id, d.ref, d.customer_id, d.doc_type, d.version, d.content_type, d.size_bytes, d.sha256, \
    d.blob_key, d.original_name_enc, d.retention_class, d.retain_until, d.expiry_date, d.issued_date, \
    d.contract_end_date, d.declared_name_enc, d.declared_id_number_enc, d.status, d.uploaded_by, d.uploaded_at_ms, \
    d.verified_by, d.verified_at_ms, d.verification_note, d.erased_at_ms";

fn doc_row(r: &AnyRow) -> Result<DocumentRow, StoreError> {
    Ok(DocumentRow {
        id: r.try_get("id")?,
        ref_: r.try_get("ref")?,
        customer_id: r.try_get("customer_id")?,
        doc_type: r.try_get("doc_type")?,
        version: r.try_get("version")?,
        content_type: r.try_get("content_type")?,
        size_bytes: r.try_get("size_bytes")?,
        sha256: r.try_get("sha256")?,
        blob_key: r.try_get("blob_key")?,
        original_name_enc: r.try_get("original_name_enc")?,
        retention_class: r.try_get("retention_class")?,
        retain_until: r.try_get("retain_until")?,
        expiry_date: r.try_get("expiry_date")?,
        issued_date: r.try_get("issued_date")?,
        contract_end_date: r.try_get("contract_end_date")?,
        declared_name_enc: r.try_get("declared_name_enc")?,
        declared_id_number_enc: r.try_get("declared_id_number_enc")?,
        status: r.try_get("status")?,
        uploaded_by: r.try_get("uploaded_by")?,
        uploaded_at_ms: r.try_get("uploaded_at_ms")?,
        verified_by: r.try_get("verified_by")?,
        verified_at_ms: r.try_get("verified_at_ms")?,
        verification_note: r.try_get("verification_note")?,
        erased_at_ms: r.try_get("erased_at_ms")?,
    })
}

/// Inserts the next version of `(customer, type)` inside the caller's transaction and
/// returns `(id, version)`. Two concurrent uploads of one type meet the unique
/// constraint `customer_documents_version_key`; the loser's transaction fails.
pub async fn document_insert(
    conn: &mut sqlx::AnyConnection,
    d: &NewDocument,
    now_ms: i64,
) -> Result<(i64, i64), StoreError> {
    let version: i64 = sqlx::query_scalar(
        "SELECT COALESCE(MAX(version), 0) + 1 FROM customer_documents WHERE customer_id = $1 AND doc_type = $2",
    )
    .bind(d.customer_id)
    .bind(d.doc_type.as_str())
    .fetch_one(&mut *conn)
    .await?;
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO customer_documents (ref, customer_id, doc_type, version, content_type, size_bytes, sha256,
            blob_key, original_name_enc, retention_class, retain_until, expiry_date, issued_date, contract_end_date,
            declared_name_enc, declared_id_number_enc, uploaded_by, uploaded_at_ms)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18) RETURNING id",
    )
    .bind(d.ref_.as_str())
    .bind(d.customer_id)
    .bind(d.doc_type.as_str())
    .bind(version)
    .bind(d.content_type.as_str())
    .bind(d.size_bytes)
    .bind(d.sha256.as_str())
    .bind(d.blob_key.as_str())
    .bind(d.original_name_enc.clone())
    .bind(d.retention_class.as_str())
    .bind(d.retain_until.clone())
    .bind(d.expiry_date.clone())
    .bind(d.issued_date.clone())
    .bind(d.contract_end_date.clone())
    .bind(d.declared_name_enc.clone())
    .bind(d.declared_id_number_enc.clone())
    .bind(d.uploaded_by)
    .bind(now_ms)
    .fetch_one(&mut *conn)
    .await?;
    Ok((id, version))
}

/// Records a decision on a pending version: sets its status (only while it is still
/// `pending`, so two verifiers cannot both decide) and appends the history row.
/// Returns false when the version was no longer pending.
#[allow(clippy::too_many_arguments)]
pub async fn document_decide(
    conn: &mut sqlx::AnyConnection,
    document_id: i64,
    decision: &str,
    note: Option<&str>,
    checks_json: &str,
    verifier_id: i64,
    now_ms: i64,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE customer_documents SET status = $2, verified_by = $3, verified_at_ms = $4, verification_note = $5
         WHERE id = $1 AND status = 'pending' AND erased_at_ms IS NULL",
    )
    .bind(document_id)
    .bind(decision)
    .bind(verifier_id)
    .bind(now_ms)
    .bind(note)
    .execute(&mut *conn)
    .await?;
    if done.rows_affected() != 1 {
        return Ok(false);
    }
    sqlx::query(
        "INSERT INTO document_verifications (document_id, decision, note, checks_json, verifier_id, at_ms)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(document_id)
    .bind(decision)
    .bind(note)
    .bind(checks_json)
    .bind(verifier_id)
    .bind(now_ms)
    .execute(&mut *conn)
    .await?;
    Ok(true)
}

/// Clears the encrypted fields of every document of a customer and marks them erased;
/// returns the blob keys whose contents the caller deletes.
pub async fn documents_erase_customer(
    conn: &mut sqlx::AnyConnection,
    customer_id: i64,
    now_ms: i64,
) -> Result<Vec<String>, StoreError> {
    let keys: Vec<String> = sqlx::query_scalar(
        "SELECT blob_key FROM customer_documents WHERE customer_id = $1 AND erased_at_ms IS NULL ORDER BY id",
    )
    .bind(customer_id)
    .fetch_all(&mut *conn)
    .await?;
    sqlx::query(
        "UPDATE customer_documents SET original_name_enc = NULL, declared_name_enc = NULL,
            declared_id_number_enc = NULL, erased_at_ms = $2
         WHERE customer_id = $1 AND erased_at_ms IS NULL",
    )
    .bind(customer_id)
    .bind(now_ms)
    .execute(&mut *conn)
    .await?;
    Ok(keys)
}

/// A consent record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentRow {
    pub id: i64,
    pub customer_id: i64,
    pub purpose: String,
    /// Recipient codes (stored as a JSON array).
    pub recipients: Vec<String>,
    pub policy_version: String,
    pub channel: String,
    pub given_at_ms: i64,
    pub evidence_document_id: Option<i64>,
    pub recorded_by: Option<i64>,
    pub recorded_at_ms: i64,
    pub withdrawn_at_ms: Option<i64>,
    pub withdrawn_channel: Option<String>,
    pub withdrawn_by: Option<i64>,
}

/// A new consent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewConsent {
    pub customer_id: i64,
    pub purpose: String,
    pub recipients: Vec<String>,
    pub policy_version: String,
    pub channel: String,
    pub given_at_ms: i64,
    pub evidence_document_id: Option<i64>,
    pub recorded_by: Option<i64>,
}

const CONSENT_COLUMNS: &str = "id, customer_id, purpose, recipients, policy_version, channel, given_at_ms, \
    evidence_document_id, recorded_by, recorded_at_ms, withdrawn_at_ms, withdrawn_channel, withdrawn_by";

fn consent_row(r: &AnyRow) -> Result<ConsentRow, StoreError> {
    let recipients: String = r.try_get("recipients")?;
    Ok(ConsentRow {
        id: r.try_get("id")?,
        customer_id: r.try_get("customer_id")?,
        purpose: r.try_get("purpose")?,
        recipients: serde_json::from_str(&recipients)
            .map_err(|e| StoreError::Invalid(format!("consent recipients: {e}")))?,
        policy_version: r.try_get("policy_version")?,
        channel: r.try_get("channel")?,
        given_at_ms: r.try_get("given_at_ms")?,
        evidence_document_id: r.try_get("evidence_document_id")?,
        recorded_by: r.try_get("recorded_by")?,
        recorded_at_ms: r.try_get("recorded_at_ms")?,
        withdrawn_at_ms: r.try_get("withdrawn_at_ms")?,
        withdrawn_channel: r.try_get("withdrawn_channel")?,
        withdrawn_by: r.try_get("withdrawn_by")?,
    })
}

pub async fn consent_insert<'c, E>(exec: E, c: &NewConsent, now_ms: i64) -> Result<i64, StoreError>
where
    E: Executor<'c, Database = Any>,
{
    let recipients = serde_json::to_string(&c.recipients)
        .map_err(|e| StoreError::Invalid(format!("consent recipients: {e}")))?;
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO customer_consents (customer_id, purpose, recipients, policy_version, channel, given_at_ms,
            evidence_document_id, recorded_by, recorded_at_ms)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
    )
    .bind(c.customer_id)
    .bind(c.purpose.as_str())
    .bind(recipients)
    .bind(c.policy_version.as_str())
    .bind(c.channel.as_str())
    .bind(c.given_at_ms)
    .bind(c.evidence_document_id)
    .bind(c.recorded_by)
    .bind(now_ms)
    .fetch_one(exec)
    .await?;
    Ok(id)
}

/// Withdraws a consent that is still in force; false when it was already withdrawn.
pub async fn consent_withdraw<'c, E>(
    exec: E,
    id: i64,
    at_ms: i64,
    channel: &str,
    by: Option<i64>,
) -> Result<bool, StoreError>
where
    E: Executor<'c, Database = Any>,
{
    let done = sqlx::query(
        "UPDATE customer_consents SET withdrawn_at_ms = $2, withdrawn_channel = $3, withdrawn_by = $4
         WHERE id = $1 AND withdrawn_at_ms IS NULL",
    )
    .bind(id)
    .bind(at_ms)
    .bind(channel)
    .bind(by)
    .execute(exec)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// A data-subject request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrivacyRequestRow {
    pub id: i64,
    pub customer_id: i64,
    pub kind: String,
    pub status: String,
    pub channel: String,
    pub details_enc: Option<Vec<u8>>,
    pub received_on: String,
    pub due_on: String,
    pub created_by: Option<i64>,
    pub created_at_ms: i64,
    pub handled_by: Option<i64>,
    pub resolution: Option<String>,
    pub closed_at_ms: Option<i64>,
    pub updated_at_ms: i64,
}

/// A new request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewPrivacyRequest {
    pub customer_id: i64,
    pub kind: String,
    pub channel: String,
    pub details_enc: Option<Vec<u8>>,
    pub received_on: String,
    pub due_on: String,
    pub created_by: Option<i64>,
}

const REQUEST_COLUMNS: &str =
    "id, customer_id, kind, status, channel, details_enc, received_on, due_on, created_by, \
    created_at_ms, handled_by, resolution, closed_at_ms, updated_at_ms";

fn request_row(r: &AnyRow) -> Result<PrivacyRequestRow, StoreError> {
    Ok(PrivacyRequestRow {
        id: r.try_get("id")?,
        customer_id: r.try_get("customer_id")?,
        kind: r.try_get("kind")?,
        status: r.try_get("status")?,
        channel: r.try_get("channel")?,
        details_enc: r.try_get("details_enc")?,
        received_on: r.try_get("received_on")?,
        due_on: r.try_get("due_on")?,
        created_by: r.try_get("created_by")?,
        created_at_ms: r.try_get("created_at_ms")?,
        handled_by: r.try_get("handled_by")?,
        resolution: r.try_get("resolution")?,
        closed_at_ms: r.try_get("closed_at_ms")?,
        updated_at_ms: r.try_get("updated_at_ms")?,
    })
}

pub async fn privacy_request_insert<'c, E>(
    exec: E,
    r: &NewPrivacyRequest,
    now_ms: i64,
) -> Result<i64, StoreError>
where
    E: Executor<'c, Database = Any>,
{
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO privacy_requests (customer_id, kind, channel, details_enc, received_on, due_on, created_by,
            created_at_ms, updated_at_ms)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) RETURNING id",
    )
    .bind(r.customer_id)
    .bind(r.kind.as_str())
    .bind(r.channel.as_str())
    .bind(r.details_enc.clone())
    .bind(r.received_on.as_str())
    .bind(r.due_on.as_str())
    .bind(r.created_by)
    .bind(now_ms)
    .fetch_one(exec)
    .await?;
    Ok(id)
}

/// Sets the encrypted details of a request (sealed with its id as the AAD row key, so
/// they are written just after the insert, in the same transaction).
pub async fn privacy_request_set_details<'c, E>(
    exec: E,
    id: i64,
    details_enc: &[u8],
) -> Result<(), StoreError>
where
    E: Executor<'c, Database = Any>,
{
    sqlx::query("UPDATE privacy_requests SET details_enc = $2 WHERE id = $1")
        .bind(id)
        .bind(details_enc.to_vec())
        .execute(exec)
        .await?;
    Ok(())
}

/// Moves a request from `from` to `to` (compare-and-set on the status, so two handlers
/// cannot both close it); closing statuses stamp `closed_at_ms`. False when the request
/// was not in `from`.
pub async fn privacy_request_transition<'c, E>(
    exec: E,
    id: i64,
    from: &str,
    to: &str,
    handled_by: i64,
    resolution: Option<&str>,
    now_ms: i64,
) -> Result<bool, StoreError>
where
    E: Executor<'c, Database = Any>,
{
    let closing = matches!(to, "completed" | "refused");
    let done = sqlx::query(
        "UPDATE privacy_requests SET status = $3, handled_by = $4, resolution = COALESCE($5, resolution),
            closed_at_ms = $6, updated_at_ms = $7
         WHERE id = $1 AND status = $2",
    )
    .bind(id)
    .bind(from)
    .bind(to)
    .bind(handled_by)
    .bind(resolution)
    .bind(closing.then_some(now_ms))
    .bind(now_ms)
    .execute(exec)
    .await?;
    Ok(done.rows_affected() == 1)
}

impl Store {
    pub async fn document_get(&self, id: i64) -> Result<Option<DocumentRow>, StoreError> {
        let r = sqlx::query(&format!(
            "SELECT {DOC_COLUMNS} FROM customer_documents d WHERE d.id = $1"
        ))
        .bind(id)
        .fetch_optional(self.reader())
        .await?;
        r.as_ref().map(doc_row).transpose()
    }

    /// Every version of every document of a customer, by type then version.
    pub async fn documents_of_customer(
        &self,
        customer_id: i64,
    ) -> Result<Vec<DocumentRow>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {DOC_COLUMNS} FROM customer_documents d WHERE d.customer_id = $1 ORDER BY d.doc_type, d.version"
        ))
        .bind(customer_id)
        .fetch_all(self.reader())
        .await?;
        rows.iter().map(doc_row).collect()
    }

    /// The newest version number of `(customer, type)`, if any.
    pub async fn document_latest_version(
        &self,
        customer_id: i64,
        doc_type: &str,
    ) -> Result<Option<i64>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT MAX(version) FROM customer_documents WHERE customer_id = $1 AND doc_type = $2",
        )
        .bind(customer_id)
        .bind(doc_type)
        .fetch_one(self.reader())
        .await?)
    }

    /// Pending versions (oldest first), at most `limit`, with their customer's owner and
    /// unit so the caller can apply a scope.
    pub async fn documents_pending(&self, limit: i64) -> Result<Vec<QueueItem>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {DOC_COLUMNS}, c.name AS customer_name, c.owner_user_id, c.org_unit_id
             FROM customer_documents d JOIN customers c ON c.id = d.customer_id
             WHERE d.status = 'pending' AND d.erased_at_ms IS NULL ORDER BY d.id LIMIT $1"
        ))
        .bind(limit)
        .fetch_all(self.reader())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(QueueItem {
                    document: doc_row(r)?,
                    customer_name: r.try_get("customer_name")?,
                    owner_user_id: r.try_get("owner_user_id")?,
                    org_unit_id: r.try_get("org_unit_id")?,
                })
            })
            .collect()
    }

    /// The decisions on a document, oldest first.
    pub async fn document_verifications(
        &self,
        document_id: i64,
    ) -> Result<Vec<Verification>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, document_id, decision, note, checks_json, verifier_id, at_ms FROM document_verifications
             WHERE document_id = $1 ORDER BY id",
        )
        .bind(document_id)
        .fetch_all(self.reader())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Verification {
                    id: r.try_get("id")?,
                    document_id: r.try_get("document_id")?,
                    decision: r.try_get("decision")?,
                    note: r.try_get("note")?,
                    checks_json: r.try_get("checks_json")?,
                    verifier_id: r.try_get("verifier_id")?,
                    at_ms: r.try_get("at_ms")?,
                })
            })
            .collect()
    }

    pub async fn consent_get(&self, id: i64) -> Result<Option<ConsentRow>, StoreError> {
        let r = sqlx::query(&format!(
            "SELECT {CONSENT_COLUMNS} FROM customer_consents WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(self.reader())
        .await?;
        r.as_ref().map(consent_row).transpose()
    }

    /// A customer's consents, newest first.
    pub async fn consents_of_customer(
        &self,
        customer_id: i64,
    ) -> Result<Vec<ConsentRow>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {CONSENT_COLUMNS} FROM customer_consents WHERE customer_id = $1 ORDER BY given_at_ms DESC, id DESC"
        ))
        .bind(customer_id)
        .fetch_all(self.reader())
        .await?;
        rows.iter().map(consent_row).collect()
    }

    pub async fn privacy_request_get(
        &self,
        id: i64,
    ) -> Result<Option<PrivacyRequestRow>, StoreError> {
        let r = sqlx::query(&format!(
            "SELECT {REQUEST_COLUMNS} FROM privacy_requests WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(self.reader())
        .await?;
        r.as_ref().map(request_row).transpose()
    }

    /// Requests, earliest due first; `open_only` keeps those not yet completed or
    /// refused; `customer_id` limits to one customer.
    pub async fn privacy_requests(
        &self,
        open_only: bool,
        customer_id: Option<i64>,
        limit: i64,
    ) -> Result<Vec<PrivacyRequestRow>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {REQUEST_COLUMNS} FROM privacy_requests
             WHERE ($1 = 0 OR status IN ('open', 'in_progress')) AND ($2 < 0 OR customer_id = $2)
             ORDER BY CASE WHEN status IN ('open', 'in_progress') THEN 0 ELSE 1 END, due_on, id LIMIT $3"
        ))
        .bind(i64::from(open_only))
        .bind(customer_id.unwrap_or(-1))
        .bind(limit)
        .fetch_all(self.reader())
        .await?;
        rows.iter().map(request_row).collect()
    }
}
