//! Staff personal data: encrypted mobile and ID number with blind indexes. The store
//! holds ciphertexts and index values only; encryption happens in the server's vault.

use crate::db::Store;
use crate::error::StoreError;
use sqlx::Row;

/// The encrypted personal fields of one user.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StaffPii {
    pub phone_enc: Option<Vec<u8>>,
    pub phone_bidx: Option<String>,
    pub id_number_enc: Option<Vec<u8>>,
    pub id_number_bidx: Option<String>,
}

impl Store {
    /// Replaces a user's encrypted personal fields.
    pub async fn user_set_pii(
        &self,
        user_id: i64,
        pii: &StaffPii,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE users SET phone_enc = $2, phone_bidx = $3, id_number_enc = $4, id_number_bidx = $5, updated_at_ms = $6
             WHERE id = $1",
        )
        .bind(user_id)
        .bind(pii.phone_enc.clone())
        .bind(pii.phone_bidx.clone())
        .bind(pii.id_number_enc.clone())
        .bind(pii.id_number_bidx.clone())
        .bind(now_ms)
        .execute(self.writer())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn user_pii(&self, user_id: i64) -> Result<Option<StaffPii>, StoreError> {
        let row = sqlx::query(
            "SELECT phone_enc, phone_bidx, id_number_enc, id_number_bidx FROM users WHERE id = $1",
        )
        .bind(user_id)
        .fetch_optional(self.reader())
        .await?;
        row.map(|r| {
            Ok(StaffPii {
                phone_enc: r.try_get("phone_enc")?,
                phone_bidx: r.try_get("phone_bidx")?,
                id_number_enc: r.try_get("id_number_enc")?,
                id_number_bidx: r.try_get("id_number_bidx")?,
            })
        })
        .transpose()
    }

    /// Users whose mobile has this blind index (exact match without the clear value).
    pub async fn users_by_phone_index(&self, bidx: &str) -> Result<Vec<i64>, StoreError> {
        let rows = sqlx::query("SELECT id FROM users WHERE phone_bidx = $1 ORDER BY id")
            .bind(bidx)
            .fetch_all(self.reader())
            .await?;
        rows.iter().map(|r| Ok(r.try_get("id")?)).collect()
    }
}
