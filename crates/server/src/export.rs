//! Customer export (客户导出) to CSV or XLSX: the customers in the caller's data scope,
//! each sensitive field in clear only when the caller's role sees it in clear
//! ([`zhudai_domain::customer::CUSTOMER_FIELDS`] decides the masking), every export
//! audited with its row count and the fields that left in clear. Exports above the
//! `export_approval_rows` setting go through a request that someone else approves
//! (see `api::customer_exports`). The header row uses the import's field names, so an
//! export can be imported again.

use crate::customers::subject;
use crate::vault::{FieldAad, Vault, VaultError};
use std::collections::HashMap;
use zhudai_domain::customer::field_class;
use zhudai_store::audit::AuditDraft;
use zhudai_store::customers::{CustomerRow, ScopeFilter};
use zhudai_store::imports as db;
use zhudai_store::{Store, StoreError};

/// CSV or XLSX.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    Csv,
    Xlsx,
}

impl ExportFormat {
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "csv" => Some(ExportFormat::Csv),
            "xlsx" => Some(ExportFormat::Xlsx),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ExportFormat::Csv => "csv",
            ExportFormat::Xlsx => "xlsx",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            ExportFormat::Csv => "text/csv; charset=utf-8",
            ExportFormat::Xlsx => {
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
            }
        }
    }
}

/// The columns of an export, in order.
pub const COLUMNS: [&str; 15] = [
    "id",
    "kind",
    "name",
    "id_kind",
    "id_number",
    "phone",
    "bank_card",
    "email",
    "address",
    "monthly_income",
    "birth_date",
    "gender",
    "region",
    "status",
    "created_at_ms",
];

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("storage: {0}")]
    Store(#[from] StoreError),
    #[error("encryption: {0}")]
    Vault(#[from] VaultError),
    #[error("writing the file: {0}")]
    Write(String),
}

/// The sensitive fields (`customer.phone`…) a set of clear-field permissions shows in
/// clear, as customer field names.
pub fn clear_columns(clear_fields: &[&str]) -> Vec<&'static str> {
    COLUMNS
        .iter()
        .copied()
        .filter(|c| {
            field_class(c)
                .and_then(|f| f.clear_field)
                .is_some_and(|perm| clear_fields.contains(&perm))
        })
        .collect()
}

/// A field's value as the export shows it.
fn shown(field: &str, value: Option<String>, clear_fields: &[&str]) -> String {
    let Some(v) = value else {
        return String::new();
    };
    match field_class(field) {
        Some(class) => match class.clear_field {
            Some(perm) if clear_fields.contains(&perm) => v,
            Some(_) => class.masking.apply(&v),
            None => v,
        },
        None => v,
    }
}

/// One exported row.
fn line(
    vault: &Vault,
    keys: &HashMap<String, db_key::Key>,
    row: &CustomerRow,
    clear: &[&str],
) -> Result<Vec<String>, VaultError> {
    let subj = subject(&row.ref_);
    let dek = keys.get(&subj);
    let dec = |column: &str, ct: &Option<Vec<u8>>| -> Result<Option<String>, VaultError> {
        match (ct, dek) {
            (Some(ct), Some(db_key::Key::Ready(dek))) => vault
                .decrypt_with(dek, &FieldAad::new("customers", column, &row.ref_), ct)
                .map(|v| Some(v.to_string())),
            _ => Ok(None),
        }
    };
    let region = row.region_code.clone();
    Ok(vec![
        row.id.to_string(),
        row.kind.clone(),
        shown("name", Some(row.name.clone()), clear),
        row.id_kind.clone(),
        shown(
            "id_number",
            dec("id_number_enc", &row.id_number_enc)?,
            clear,
        ),
        shown("phone", dec("phone_enc", &row.phone_enc)?, clear),
        shown(
            "bank_card",
            dec("bank_card_enc", &row.bank_card_enc)?,
            clear,
        ),
        shown("email", dec("email_enc", &row.email_enc)?, clear),
        shown("address", dec("address_enc", &row.address_enc)?, clear),
        shown(
            "monthly_income",
            dec("monthly_income_enc", &row.monthly_income_enc)?,
            clear,
        ),
        shown("birth_date", row.birth_date.clone(), clear),
        row.gender.clone().unwrap_or_default(),
        region.unwrap_or_default(),
        row.status.clone(),
        row.created_at_ms.to_string(),
    ])
}

mod db_key {
    /// A subject's key, opened for the export.
    pub enum Key {
        Ready(zhudai_crypto::envelope::Dek),
        Gone,
    }
}

const PAGE: i64 = 1_000;

/// Every customer in `scope` as a CSV (UTF-8 with BOM, which Excel opens correctly) or
/// XLSX file, C3 fields masked unless `clear_fields` holds their clear-field code. Returns
/// the bytes, the row count and the audit record (actor, rows, clear fields), which the
/// caller appends (with whatever else it writes in the same transaction).
#[allow(clippy::too_many_arguments)]
pub async fn export_to_bytes(
    store: &Store,
    vault: &Vault,
    scope: &ScopeFilter,
    clear_fields: &[&str],
    format: ExportFormat,
    actor: &str,
    roles: &str,
    now_ms: i64,
) -> Result<(Vec<u8>, i64, AuditDraft), ExportError> {
    let mut rows: Vec<Vec<String>> = Vec::new();
    let mut after = 0_i64;
    loop {
        let page = store.customers_scan(scope, after, PAGE).await?;
        let Some(last) = page.last() else { break };
        after = last.id;
        let subjects: Vec<String> = page.iter().map(|r| subject(&r.ref_)).collect();
        let mut conn = store.reader().acquire().await.map_err(StoreError::from)?;
        let stored = db::data_keys_of_subjects(&mut conn, &subjects).await?;
        drop(conn);
        let mut keys = HashMap::new();
        for (s, k) in stored {
            let key = match vault.open_subject_key(&s, &k) {
                Ok(dek) => db_key::Key::Ready(dek),
                Err(VaultError::Shredded { .. }) => db_key::Key::Gone,
                Err(e) => return Err(e.into()),
            };
            keys.insert(s, key);
        }
        for r in &page {
            rows.push(line(vault, &keys, r, clear_fields)?);
        }
        if (page.len() as i64) < PAGE {
            break;
        }
    }
    let bytes = match format {
        ExportFormat::Csv => {
            let mut buf = vec![0xEF, 0xBB, 0xBF];
            {
                let mut w = csv::Writer::from_writer(&mut buf);
                w.write_record(COLUMNS)
                    .map_err(|e| ExportError::Write(e.to_string()))?;
                for r in &rows {
                    w.write_record(r)
                        .map_err(|e| ExportError::Write(e.to_string()))?;
                }
                w.flush().map_err(|e| ExportError::Write(e.to_string()))?;
            }
            buf
        }
        ExportFormat::Xlsx => {
            let mut book = rust_xlsxwriter::Workbook::new();
            let sheet = book.add_worksheet();
            let w = |e: rust_xlsxwriter::XlsxError| ExportError::Write(e.to_string());
            sheet.set_name("客户 Customers").map_err(w)?;
            for (c, h) in COLUMNS.iter().enumerate() {
                sheet.write_string(0, c as u16, *h).map_err(w)?;
            }
            for (i, r) in rows.iter().enumerate() {
                for (c, v) in r.iter().enumerate() {
                    // Text cells: long numbers (IDs, cards) must not become floats.
                    sheet.write_string(i as u32 + 1, c as u16, v).map_err(w)?;
                }
            }
            book.save_to_buffer().map_err(w)?
        }
    };
    let n = rows.len() as i64;
    let clear = clear_columns(clear_fields);
    let draft = AuditDraft::new(now_ms, "customer.export", "success")
        .actor(actor.to_owned())
        .role(roles.to_owned())
        .target("customers".to_owned())
        .reason(format!(
            "{n} row(s) as {}; in clear: {}",
            format.as_str(),
            if clear.is_empty() {
                "none".to_owned()
            } else {
                clear.join(",")
            }
        ));
    Ok((bytes, n, draft))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn c3_fields_are_masked_unless_cleared() {
        assert_eq!(
            shown("phone", Some("13800138000".into()), &[]),
            "138****8000"
        );
        assert_eq!(
            shown("phone", Some("13800138000".into()), &["customer.phone"]),
            "13800138000"
        );
        assert_eq!(
            shown(
                "monthly_income",
                Some("12000.00".into()),
                &["customer.phone"]
            ),
            "***"
        );
        // C1/C2 without a clear-field permission are shown as they are on screen.
        assert_eq!(shown("kind", Some("individual".into()), &[]), "individual");
        assert_eq!(
            clear_columns(&["customer.phone", "customer.income"]),
            vec!["phone", "monthly_income"]
        );
    }
}
