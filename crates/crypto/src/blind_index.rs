//! Blind indexes: keyed hashes of normalised identifiers, stored next to the
//! encrypted value so the store can find a customer by exact ID number, phone
//! or bank card without decrypting anything or storing the value in clear.
//!
//! `index = HMAC-SHA256(index_key, len(label) ‖ label ‖ len(value) ‖ value)[..16]`
//!
//! * `index_key = HMAC-SHA256(master_key, "zhudai/blind-index/v1")`: derived,
//!   never the master key itself, and never stored.
//! * `label` is the [`FieldKind`]: the same digits as a phone and as a card give
//!   unrelated indexes, so one column cannot be joined against another.
//! * 16 bytes (128 bits) are plenty against collisions among a few million rows
//!   and keep the index column small.
//!
//! The index key follows the master key it was derived from: [`BlindIndexKey::master_key_id`]
//! says which. A master-key rotation therefore means either keeping the old
//! key in the keyring for indexing, or recomputing the indexes (which needs the
//! decrypted values). The store records the id with the indexes.
//!
//! Values are normalised here as well ([`FieldKind::normalise`]), conservatively
//! and idempotently, so an index never depends on stray spaces or case.
//! Validation (checksums, lengths) belongs to the domain newtypes.

use zeroize::Zeroizing;

use crate::keys::MasterKey;

/// Length of a blind index in bytes.
pub const BLIND_INDEX_LEN: usize = 16;

/// What a value is, for domain separation and normalisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FieldKind {
    /// 居民身份证号 and other personal ID numbers: whitespace removed, uppercased (`x` → `X`).
    IdNumber,
    /// Mobile phone: digits only, a leading `86`/`0086` country code dropped from 13-digit forms.
    Phone,
    /// Bank card number: digits only.
    BankCard,
    /// E-mail address: trimmed, lowercased.
    Email,
    /// 统一社会信用代码 of an enterprise: whitespace removed, uppercased.
    CreditCode,
    /// Any other kind, named by a stable label (changing it changes every index).
    /// Normalisation: surrounding whitespace trimmed.
    Custom(&'static str),
}

impl FieldKind {
    /// The label mixed into the HMAC.
    pub fn label(&self) -> &'static str {
        match self {
            FieldKind::IdNumber => "id_number",
            FieldKind::Phone => "phone",
            FieldKind::BankCard => "bank_card",
            FieldKind::Email => "email",
            FieldKind::CreditCode => "credit_code",
            FieldKind::Custom(label) => label,
        }
    }

    /// The canonical form hashed for this kind. Idempotent.
    pub fn normalise(&self, value: &str) -> String {
        match self {
            FieldKind::IdNumber | FieldKind::CreditCode => value
                .chars()
                .filter(|c| !c.is_whitespace() && *c != '-')
                .flat_map(char::to_uppercase)
                .collect(),
            FieldKind::Phone => {
                let digits: String = value.chars().filter(char::is_ascii_digit).collect();
                if let Some(rest) = digits.strip_prefix("0086").filter(|r| r.len() == 11) {
                    rest.to_owned()
                } else if let Some(rest) = digits.strip_prefix("86").filter(|r| r.len() == 11) {
                    rest.to_owned()
                } else {
                    digits
                }
            }
            FieldKind::BankCard => value.chars().filter(char::is_ascii_digit).collect(),
            FieldKind::Email => value.trim().to_lowercase(),
            FieldKind::Custom(_) => value.trim().to_owned(),
        }
    }
}

/// The key for blind indexes, derived from a master key. Zeroized on drop, redacted in `Debug`.
pub struct BlindIndexKey {
    key: Zeroizing<[u8; 32]>,
    master_key_id: String,
}

impl BlindIndexKey {
    /// Derives the index key from `master`.
    pub fn derive(master: &MasterKey) -> Self {
        Self {
            key: Zeroizing::new(crate::hmac_sha256(
                master.bytes(),
                &[b"zhudai/blind-index/v1"],
            )),
            master_key_id: master.id().to_owned(),
        }
    }

    /// Id of the master key this index key comes from.
    pub fn master_key_id(&self) -> &str {
        &self.master_key_id
    }

    /// The 16-byte index of `value` (normalised for `kind` first).
    pub fn index_bytes(&self, kind: FieldKind, value: &str) -> [u8; BLIND_INDEX_LEN] {
        let normalised = Zeroizing::new(kind.normalise(value));
        let full = crate::hmac_sha256(&self.key, &[kind.label().as_bytes(), normalised.as_bytes()]);
        let mut out = [0u8; BLIND_INDEX_LEN];
        out.copy_from_slice(&full[..BLIND_INDEX_LEN]);
        out
    }

    /// The index as 32 lowercase hex characters.
    pub fn index_hex(&self, kind: FieldKind, value: &str) -> String {
        hex::encode(self.index_bytes(kind, value))
    }
}

impl std::fmt::Debug for BlindIndexKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlindIndexKey")
            .field("master_key_id", &self.master_key_id)
            .field("key", &"[REDACTED]")
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> BlindIndexKey {
        BlindIndexKey::derive(&MasterKey::from_bytes(&[1u8; 32]).unwrap())
    }

    #[test]
    fn deterministic_and_normalised() {
        let k = key();
        let a = k.index_hex(FieldKind::IdNumber, "11010119900307425x");
        let b = k.index_hex(FieldKind::IdNumber, " 110101 19900307 425X ");
        assert_eq!(a, b);
        assert_eq!(a.len(), 32);
        assert!(a
            .chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert_eq!(
            hex::encode(k.index_bytes(FieldKind::IdNumber, "11010119900307425X")),
            a
        );
        assert_eq!(
            k.index_hex(FieldKind::Phone, "+86 138-0013-8000"),
            k.index_hex(FieldKind::Phone, "13800138000")
        );
        assert_eq!(
            k.index_hex(FieldKind::BankCard, "6222 0202 0011 2233 445"),
            k.index_hex(FieldKind::BankCard, "6222020200112233445")
        );
        assert_eq!(
            k.index_hex(FieldKind::Email, " Li.Lei@Example.CN "),
            k.index_hex(FieldKind::Email, "li.lei@example.cn")
        );
        assert_ne!(
            k.index_hex(FieldKind::Phone, "13800138000"),
            k.index_hex(FieldKind::Phone, "13800138001")
        );
    }

    #[test]
    fn normalise_is_idempotent() {
        for (kind, v) in [
            (FieldKind::IdNumber, " 11010119900307425x"),
            (FieldKind::Phone, "0086 13800138000"),
            (FieldKind::Phone, "8613800138000"),
            (FieldKind::BankCard, "6222-0202"),
            (FieldKind::Email, " A@B.C"),
            (FieldKind::CreditCode, "91350100m000100y43"),
        ] {
            let once = kind.normalise(v);
            assert_eq!(kind.normalise(&once), once);
        }
        assert_eq!(
            FieldKind::Phone.normalise("0086 138 0013 8000"),
            "13800138000"
        );
        // An 11-digit number that happens to start with 86 is left alone.
        assert_eq!(FieldKind::Phone.normalise("86123456789"), "86123456789");
    }

    #[test]
    fn domain_separated_per_kind() {
        let k = key();
        let digits = "6222020200112233";
        let kinds = [
            FieldKind::IdNumber,
            FieldKind::Phone,
            FieldKind::BankCard,
            FieldKind::CreditCode,
            FieldKind::Custom("passport"),
        ];
        let all: std::collections::HashSet<_> =
            kinds.iter().map(|kd| k.index_hex(*kd, digits)).collect();
        assert_eq!(all.len(), kinds.len());
    }

    #[test]
    fn depends_on_master_key_and_not_equal_to_plain_hash() {
        let k1 = key();
        let k2 = BlindIndexKey::derive(&MasterKey::from_bytes(&[2u8; 32]).unwrap());
        assert_ne!(
            k1.index_hex(FieldKind::Phone, "13800138000"),
            k2.index_hex(FieldKind::Phone, "13800138000")
        );
        assert_eq!(k1.master_key_id().len(), 16);
        assert!(format!("{k1:?}").contains("REDACTED"));
    }
}
