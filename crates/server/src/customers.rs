//! Customer services shared by the API, the web pages and bulk import: the caller's data
//! scope as a store filter, encryption of a validated customer into row values, and the
//! masked view of a row with duplicate flags that never reveal a customer outside the
//! caller's scope.

use crate::auth::Caller;
use crate::vault::{FieldAad, Vault, VaultError};
use serde::Serialize;
use utoipa::ToSchema;
use zhudai_crypto::blind_index::FieldKind;
use zhudai_domain::customer::{field_class, IdKind, ValidCustomer};
use zhudai_domain::ident::Gender;
use zhudai_store::audit::AuditDraft;
use zhudai_store::customers::{CustomerRow, CustomerValues, IndexedField, ScopeFilter};
use zhudai_store::meta::OrgUnit;
use zhudai_store::{Store, StoreError};

/// The key subject of a customer: destroying it crypto-shreds every encrypted field and
/// document of that customer.
pub fn subject(ref_: &str) -> String {
    format!("customer:{ref_}")
}

/// The org units at or below `root`.
pub fn subtree(units: &[OrgUnit], root: i64) -> Vec<i64> {
    let mut out = vec![root];
    let mut i = 0;
    while i < out.len() {
        let parent = out[i];
        out.extend(
            units
                .iter()
                .filter(|u| u.parent_id == Some(parent))
                .map(|u| u.id),
        );
        i += 1;
    }
    out
}

/// The customers a caller may see, from the widest data scope of their roles:
/// `all` everything; `branch` the caller's branch and every team under it; `team` the
/// caller's unit and below; `own` what they own. A caller without an org unit sees only
/// their own customers unless their scope is `all`.
pub fn scope_filter(caller: &Caller, units: &[OrgUnit]) -> ScopeFilter {
    let me = caller.user_id;
    let unit = caller.org_unit_id;
    match (caller.scope.as_str(), unit) {
        ("all", _) => ScopeFilter::All,
        ("branch", Some(u)) => {
            // Climb to the nearest branch (or stay at a team without a branch above).
            let mut root = u;
            let mut cursor = units.iter().find(|x| x.id == u);
            while let Some(x) = cursor {
                if x.kind == "branch" {
                    root = x.id;
                    break;
                }
                if x.kind == "company" {
                    // A branch-scoped user placed at the company sees the company.
                    root = x.id;
                    break;
                }
                cursor = x.parent_id.and_then(|p| units.iter().find(|y| y.id == p));
            }
            ScopeFilter::Units {
                units: subtree(units, root),
                owner: me,
            }
        }
        ("team", Some(u)) => ScopeFilter::Units {
            units: subtree(units, u),
            owner: me,
        },
        _ => ScopeFilter::Owner(me),
    }
}

/// [`scope_filter`] with the org tree read from the store.
pub async fn scope_of(caller: &Caller, store: &Store) -> Result<ScopeFilter, StoreError> {
    if caller.scope == "all" {
        return Ok(ScopeFilter::All);
    }
    Ok(scope_filter(caller, &store.org_units().await?))
}

/// An audit record of a business write by `caller`, to append inside the write's
/// transaction.
pub fn audit_draft(caller: &Caller, at_ms: i64, action: &str, target: String) -> AuditDraft {
    let mut d = AuditDraft::new(at_ms, action, "success")
        .actor(caller.username.clone())
        .role(caller.roles.join(","))
        .target(target);
    if let Some(id) = crate::http::request_id::current_request_id() {
        d = d.request_id(id);
    }
    d
}

/// The blind index kind of an indexed customer field.
pub fn index_kind(field: IndexedField, id_kind: Option<IdKind>) -> FieldKind {
    match field {
        IndexedField::IdNumber if id_kind == Some(IdKind::Uscc) => FieldKind::CreditCode,
        IndexedField::IdNumber => FieldKind::IdNumber,
        IndexedField::Phone => FieldKind::Phone,
        IndexedField::BankCard => FieldKind::BankCard,
    }
}

fn aad<'a>(column: &'a str, ref_: &'a str) -> FieldAad<'a> {
    FieldAad::new("customers", column, ref_)
}

/// Encrypts a validated customer into row values (owner and unit left for the caller).
pub async fn encrypt(
    vault: &Vault,
    ref_: &str,
    c: &ValidCustomer,
) -> Result<CustomerValues, VaultError> {
    let subj = subject(ref_);
    let s = Some(subj.as_str());
    let enc = |column: &'static str, value: String| async move {
        vault.encrypt_field(s, &aad(column, ref_), &value).await
    };
    let mut v = CustomerValues {
        ref_: ref_.to_owned(),
        kind: c.kind.as_str().to_owned(),
        name: c.name.clone(),
        id_kind: c.id_kind.as_str().to_owned(),
        birth_date: c.birth_date.map(|d| d.to_string()),
        gender: c.gender.map(|g| match g {
            Gender::Male => "male".to_owned(),
            Gender::Female => "female".to_owned(),
        }),
        region_code: c.region_code.clone(),
        ..Default::default()
    };
    v.id_number_enc = Some(enc("id_number_enc", c.id_number.clone()).await?);
    v.id_number_bidx = Some(vault.blind_index(
        index_kind(IndexedField::IdNumber, Some(c.id_kind)),
        &c.id_number,
    ));
    if let Some(p) = &c.phone {
        v.phone_enc = Some(enc("phone_enc", p.as_str().to_owned()).await?);
        v.phone_bidx = Some(vault.blind_index(FieldKind::Phone, p.as_str()));
    }
    if let Some(b) = &c.bank_card {
        v.bank_card_enc = Some(enc("bank_card_enc", b.as_str().to_owned()).await?);
        v.bank_card_bidx = Some(vault.blind_index(FieldKind::BankCard, b.as_str()));
    }
    if let Some(e) = &c.email {
        v.email_enc = Some(enc("email_enc", e.as_str().to_owned()).await?);
    }
    if let Some(a) = &c.address {
        v.address_enc = Some(enc("address_enc", a.clone()).await?);
    }
    if let Some(i) = c.monthly_income {
        v.monthly_income_enc = Some(enc("monthly_income_enc", i.to_string()).await?);
    }
    Ok(v)
}

/// The clear values of a row's encrypted fields (empty when absent or shredded).
#[derive(Debug, Default, Clone)]
pub struct ClearFields {
    pub id_number: Option<String>,
    pub phone: Option<String>,
    pub bank_card: Option<String>,
    pub email: Option<String>,
    pub address: Option<String>,
    pub monthly_income: Option<String>,
}

/// Decrypts the encrypted fields of a row.
pub async fn decrypt(vault: &Vault, row: &CustomerRow) -> Result<ClearFields, VaultError> {
    let subj = subject(&row.ref_);
    let dec = |column: &'static str, ct: &Option<Vec<u8>>| {
        let ct = ct.clone();
        let subj = subj.clone();
        async move {
            match ct {
                None => Ok(None),
                Some(ct) => match vault
                    .decrypt_field(Some(&subj), &aad(column, &row.ref_), &ct)
                    .await
                {
                    Ok(v) => Ok(Some(v.to_string())),
                    Err(VaultError::Shredded { .. }) => Ok(None),
                    Err(e) => Err(e),
                },
            }
        }
    };
    Ok(ClearFields {
        id_number: dec("id_number_enc", &row.id_number_enc).await?,
        phone: dec("phone_enc", &row.phone_enc).await?,
        bank_card: dec("bank_card_enc", &row.bank_card_enc).await?,
        email: dec("email_enc", &row.email_enc).await?,
        address: dec("address_enc", &row.address_enc).await?,
        monthly_income: dec("monthly_income_enc", &row.monthly_income_enc).await?,
    })
}

/// A duplicate-identifier flag on a customer.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DuplicateFlag {
    /// `id_number`, `phone` or `bank_card`.
    pub field: String,
    /// Other customers with the same value that the caller may open.
    pub visible_ids: Vec<i64>,
    /// How many other customers outside the caller's scope share it (who they are is not
    /// shown).
    pub outside_scope: i64,
}

/// Duplicate flags of a row: the same ID number, phone or bank card on other customers.
pub async fn duplicates(
    store: &Store,
    scope: &ScopeFilter,
    row: &CustomerRow,
) -> Result<Vec<DuplicateFlag>, StoreError> {
    let mut flags = Vec::new();
    for (field, bidx) in [
        (IndexedField::IdNumber, &row.id_number_bidx),
        (IndexedField::Phone, &row.phone_bidx),
        (IndexedField::BankCard, &row.bank_card_bidx),
    ] {
        let Some(bidx) = bidx else { continue };
        let matches = store.customer_matches(field, bidx, Some(row.id)).await?;
        if matches.is_empty() {
            continue;
        }
        let (visible, hidden): (Vec<&zhudai_store::customers::Match>, Vec<_>) = matches
            .iter()
            .partition(|m| scope.admits(m.owner_user_id, m.org_unit_id));
        flags.push(DuplicateFlag {
            field: field.as_str().to_owned(),
            visible_ids: visible.iter().map(|m| m.id).collect(),
            outside_scope: hidden.len() as i64,
        });
    }
    Ok(flags)
}

/// Shows a field to `caller`: in clear when their role may see it, masked otherwise.
/// Records clear reads of C3 fields in `clear_reads` (for the audit trail).
pub fn show(
    caller: &Caller,
    row_id: i64,
    field: &str,
    value: Option<String>,
    clear_reads: &mut Vec<String>,
) -> Option<String> {
    let value = value?;
    let Some(class) = field_class(field) else {
        return Some(value);
    };
    match class.clear_field {
        Some(perm) if caller.sees_clear(perm) => {
            clear_reads.push(format!("customer:{row_id}.{field}"));
            Some(value)
        }
        Some(_) => Some(class.masking.apply(&value)),
        None => Some(value),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn unit(id: i64, parent: Option<i64>, kind: &str) -> OrgUnit {
        OrgUnit {
            id,
            parent_id: parent,
            kind: kind.into(),
            code: format!("u{id}"),
            name_zh: String::new(),
            name_en: String::new(),
        }
    }

    fn caller(scope: &str, unit: Option<i64>) -> Caller {
        Caller {
            user_id: 7,
            username: "u".into(),
            display_name: "u".into(),
            org_unit_id: unit,
            roles: vec![],
            permissions: BTreeSet::new(),
            clear_fields: BTreeSet::new(),
            scope: scope.into(),
            auth: crate::auth::AuthKind::ApiToken { token_id: 1 },
            csrf: None,
            needs_2fa_enrolment: false,
        }
    }

    #[test]
    fn scopes_follow_the_org_tree() {
        // company 1 → branches 2, 3 → teams 4 (under 2), 5 (under 3), 6 (under 2)
        let units = vec![
            unit(1, None, "company"),
            unit(2, Some(1), "branch"),
            unit(3, Some(1), "branch"),
            unit(4, Some(2), "team"),
            unit(5, Some(3), "team"),
            unit(6, Some(2), "team"),
        ];
        assert_eq!(scope_filter(&caller("all", None), &units), ScopeFilter::All);
        let ScopeFilter::Units { units: mut b, .. } =
            scope_filter(&caller("branch", Some(4)), &units)
        else {
            panic!("branch scope")
        };
        b.sort_unstable();
        assert_eq!(b, vec![2, 4, 6]);
        assert_eq!(
            scope_filter(&caller("team", Some(4)), &units),
            ScopeFilter::Units {
                units: vec![4],
                owner: 7
            }
        );
        assert_eq!(
            scope_filter(&caller("own", Some(4)), &units),
            ScopeFilter::Owner(7)
        );
        assert_eq!(
            scope_filter(&caller("team", None), &units),
            ScopeFilter::Owner(7)
        );
    }
}
