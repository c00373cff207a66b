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
    scope_filter_for(caller.user_id, caller.org_unit_id, &caller.scope, units)
}

/// [`scope_filter`] for a user, their org unit and their widest data scope.
pub fn scope_filter_for(me: i64, unit: Option<i64>, scope: &str, units: &[OrgUnit]) -> ScopeFilter {
    match (scope, unit) {
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
    // Computed with the caller's access, under the same access stamp (org-unit changes
    // bump it: migration 20).
    if let Some(f) = &caller.scope_filter {
        return Ok(f.clone());
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
            scope_filter: None,
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

// ---------------------------------------------------------------------------------------
// Operations shared by the API and the pages.

use crate::error::{ApiError, FieldError};
use crate::state::AppState;
use axum::response::Response;
use zhudai_domain::customer::{check_share_bp, CustomerKind, FieldProblem, RelationRole};
use zhudai_store::customers::{
    customer_insert, customer_set_status, customer_update, relation_insert, CustomerQuery,
};

impl From<FieldProblem> for FieldError {
    fn from(p: FieldProblem) -> Self {
        FieldError::new(p.field, p.code, p.message)
    }
}

fn vault_err(e: VaultError) -> ApiError {
    ApiError::internal(e)
}

/// A customer as a caller sees it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CustomerView {
    pub id: i64,
    #[serde(rename = "ref")]
    pub ref_: String,
    /// `individual` or `enterprise`.
    pub kind: String,
    pub name: String,
    /// `resident`, `hk_permit`, `mo_permit`, `tw_permit` or `uscc`.
    pub id_kind: String,
    /// Masked unless the caller's role sees `customer.id_number` in clear.
    pub id_number: Option<String>,
    /// Masked unless the caller's role sees `customer.phone` in clear.
    pub phone: Option<String>,
    /// Masked unless the caller's role sees `customer.bank_card` in clear.
    pub bank_card: Option<String>,
    pub email: Option<String>,
    pub address: Option<String>,
    /// Yuan; masked unless the caller's role sees `customer.income` in clear.
    pub monthly_income: Option<String>,
    /// Derived from the ID number.
    pub birth_date: Option<String>,
    pub age: Option<u32>,
    pub gender: Option<String>,
    pub region_code: Option<String>,
    pub province: Option<String>,
    pub owner_user_id: i64,
    pub org_unit_id: Option<i64>,
    /// `active`, `closed` or `erased`.
    pub status: String,
    pub legal_hold_until: Option<String>,
    pub version: i64,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    /// Other customers sharing an identifier (only when asked for; empty in lists).
    pub duplicates: Vec<DuplicateFlag>,
    /// At least one identifier is shared with another customer.
    pub duplicate: bool,
}

/// A link between an enterprise and a person.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RelationView {
    pub id: i64,
    pub enterprise_id: i64,
    pub person_id: i64,
    /// Name of the other side, when it is inside the caller's scope.
    pub enterprise_name: Option<String>,
    pub person_name: Option<String>,
    pub role: String,
    pub share_bp: Option<i64>,
}

/// Loads a customer and checks it is inside the caller's scope (404 / 403).
pub async fn load_in_scope(
    state: &AppState,
    caller: &Caller,
    id: i64,
) -> Result<(CustomerRow, ScopeFilter), ApiError> {
    let row = state
        .store()
        .customer_get(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no customer has id {id}")))?;
    let scope = scope_of(caller, state.store()).await?;
    if !scope.admits(row.owner_user_id, row.org_unit_id) {
        return Err(ApiError::Forbidden(
            "this customer is outside your data scope".into(),
        ));
    }
    Ok((row, scope))
}

/// The caller's view of a row. `with_duplicates` computes the duplicate flags in detail.
pub async fn view(
    state: &AppState,
    caller: &Caller,
    scope: &ScopeFilter,
    row: &CustomerRow,
    with_duplicates: bool,
    clear_reads: &mut Vec<String>,
) -> Result<CustomerView, ApiError> {
    let clear = decrypt(state.vault(), row).await.map_err(vault_err)?;
    let dups = duplicates(state.store(), scope, row).await?;
    let birth = row
        .birth_date
        .as_deref()
        .and_then(|d| chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").ok());
    let today = state.clock().today();
    let mut reads = Vec::new();
    let v = CustomerView {
        id: row.id,
        ref_: row.ref_.clone(),
        kind: row.kind.clone(),
        name: row.name.clone(),
        id_kind: row.id_kind.clone(),
        id_number: show(caller, row.id, "id_number", clear.id_number, &mut reads),
        phone: show(caller, row.id, "phone", clear.phone, &mut reads),
        bank_card: show(caller, row.id, "bank_card", clear.bank_card, &mut reads),
        email: show(caller, row.id, "email", clear.email, &mut reads),
        address: show(caller, row.id, "address", clear.address, &mut reads),
        monthly_income: show(
            caller,
            row.id,
            "monthly_income",
            clear.monthly_income,
            &mut reads,
        ),
        age: birth.and_then(|b| today.years_since(b)),
        birth_date: row.birth_date.clone(),
        gender: row.gender.clone(),
        province: row
            .region_code
            .as_deref()
            .and_then(|r| r.get(..2))
            .and_then(zhudai_domain::ident::province_name)
            .map(str::to_owned),
        region_code: row.region_code.clone(),
        owner_user_id: row.owner_user_id,
        org_unit_id: row.org_unit_id,
        status: row.status.clone(),
        legal_hold_until: row.legal_hold_until.clone(),
        version: row.version,
        created_at_ms: row.created_at_ms,
        updated_at_ms: row.updated_at_ms,
        duplicate: !dups.is_empty(),
        duplicates: if with_duplicates { dups } else { Vec::new() },
    };
    clear_reads.extend(reads);
    Ok(v)
}

/// Every clear read of a sensitive field is audited (one record per response).
pub fn with_clear_read_audit(mut resp: Response, clear_reads: Vec<String>) -> Response {
    if !clear_reads.is_empty() {
        let target = if clear_reads.len() == 1 {
            clear_reads[0]
                .split('.')
                .next()
                .unwrap_or("customers")
                .to_owned()
        } else {
            "customers".to_owned()
        };
        resp.extensions_mut().insert(
            crate::auth::AuditNote::action("field.read_clear")
                .target(target)
                .reason(clear_reads.join(",").chars().take(500).collect::<String>()),
        );
    }
    resp
}

/// A customer search as the API and the list page take it.
#[derive(Debug, Default, Clone)]
pub struct Search {
    pub name: Option<String>,
    pub id_number: Option<String>,
    pub phone: Option<String>,
    pub bank_card: Option<String>,
    pub kind: Option<String>,
    pub status: Option<String>,
    pub offset: i64,
    pub limit: i64,
}

fn nonempty(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// Searches the caller's customers; exact identifiers go through their blind index.
pub async fn search(
    state: &AppState,
    caller: &Caller,
    s: &Search,
    clear_reads: &mut Vec<String>,
) -> Result<(Vec<CustomerView>, i64), ApiError> {
    if !(1..=200).contains(&s.limit) {
        return Err(ApiError::field("limit", "out_of_range", "limit is 1–200"));
    }
    if s.offset < 0 {
        return Err(ApiError::field(
            "offset",
            "out_of_range",
            "offset is 0 or more",
        ));
    }
    let kind = nonempty(&s.kind);
    if kind.is_some_and(|k| CustomerKind::parse(k).is_none()) {
        return Err(ApiError::field(
            "kind",
            "invalid",
            "kind is `individual` or `enterprise`",
        ));
    }
    let status = nonempty(&s.status);
    if status.is_some_and(|k| !matches!(k, "active" | "closed" | "erased")) {
        return Err(ApiError::field(
            "status",
            "invalid",
            "status is `active`, `closed` or `erased`",
        ));
    }
    let v = state.vault();
    let exact = if let Some(id) = nonempty(&s.id_number) {
        // An 18-character ID, a legacy 15-digit one or a USCC: normalise as validation does.
        let (kind, norm) = match zhudai_domain::ident::ResidentId::parse(id) {
            Ok(r) => (FieldKind::IdNumber, r.as_str().to_owned()),
            Err(e) => match zhudai_domain::ident::Uscc::parse(id) {
                Ok(u) => (FieldKind::CreditCode, u.as_str().to_owned()),
                Err(_) => return Err(ApiError::field("id_number", e.code(), e.to_string())),
            },
        };
        Some((IndexedField::IdNumber, v.blind_index(kind, &norm)))
    } else if let Some(p) = nonempty(&s.phone) {
        let m = zhudai_domain::ident::Mobile::parse(p)
            .map_err(|e| ApiError::field("phone", e.code(), e.to_string()))?;
        Some((
            IndexedField::Phone,
            v.blind_index(FieldKind::Phone, m.as_str()),
        ))
    } else if let Some(b) = nonempty(&s.bank_card) {
        let c = zhudai_domain::ident::BankCard::parse(b)
            .map_err(|e| ApiError::field("bank_card", e.code(), e.to_string()))?;
        Some((
            IndexedField::BankCard,
            v.blind_index(FieldKind::BankCard, c.as_str()),
        ))
    } else {
        None
    };
    let scope = scope_of(caller, state.store()).await?;
    let page = state
        .store()
        .customer_list(&CustomerQuery {
            scope: &scope,
            name: nonempty(&s.name),
            exact: exact.as_ref().map(|(f, b)| (*f, b.as_str())),
            kind,
            status,
            offset: s.offset,
            limit: s.limit,
        })
        .await?;
    let mut out = Vec::with_capacity(page.rows.len());
    for row in &page.rows {
        out.push(view(state, caller, &scope, row, false, clear_reads).await?);
    }
    Ok((out, page.total))
}

/// A created customer.
#[derive(Debug, Clone)]
pub struct Created {
    pub id: i64,
    pub ref_: String,
    pub duplicates: Vec<DuplicateFlag>,
}

/// Validates, encrypts and stores a new customer owned by the caller, with its audit
/// record in the same transaction. A customer with the same ID number already inside the
/// caller's scope is a 409 naming it; one outside the scope is allowed and flagged.
pub async fn create(
    state: &AppState,
    caller: &Caller,
    input: &zhudai_domain::customer::CustomerInput,
) -> Result<Created, ApiError> {
    let valid = input
        .validate(state.clock().today())
        .map_err(|p| ApiError::Validation(p.into_iter().map(FieldError::from).collect()))?;
    let scope = scope_of(caller, state.store()).await?;
    let id_bidx = state.vault().blind_index(
        index_kind(IndexedField::IdNumber, Some(valid.id_kind)),
        &valid.id_number,
    );
    let existing = state
        .store()
        .customer_matches(IndexedField::IdNumber, &id_bidx, None)
        .await?;
    if let Some(m) = existing
        .iter()
        .find(|m| scope.admits(m.owner_user_id, m.org_unit_id))
    {
        return Err(ApiError::Conflict(format!(
            "a customer with this ID number already exists (id {}); open it instead of creating a second one",
            m.id
        )));
    }
    let ref_ = uuid::Uuid::now_v7().to_string();
    let mut values = encrypt(state.vault(), &ref_, &valid)
        .await
        .map_err(vault_err)?;
    values.owner_user_id = caller.user_id;
    values.org_unit_id = caller.org_unit_id;
    values.created_by = Some(caller.user_id);
    let now = state.now_ms();
    let mut tx = state.store().begin().await?;
    let id = customer_insert(&mut *tx, &values, now).await?;
    let mut draft = audit_draft(caller, now, "customer.create", format!("customer:{id}"));
    if !existing.is_empty() {
        draft = draft.reason(format!(
            "ID number shared with {} other customer(s)",
            existing.len()
        ));
    }
    zhudai_store::audit::append(&mut tx, &draft).await?;
    tx.commit().await?;
    let row = state
        .store()
        .customer_get(id)
        .await?
        .ok_or_else(|| ApiError::Internal("the new customer vanished".into()))?;
    Ok(Created {
        id,
        ref_,
        duplicates: duplicates(state.store(), &scope, &row).await?,
    })
}

/// Applies changes (absent = unchanged, empty = cleared) after re-validating the whole
/// customer; refuses a stale `version` with 409.
pub async fn update(
    state: &AppState,
    caller: &Caller,
    id: i64,
    version: i64,
    changes: &zhudai_domain::customer::CustomerInput,
    status: Option<&str>,
) -> Result<(), ApiError> {
    let (row, _) = load_in_scope(state, caller, id).await?;
    if row.status == "erased" {
        return Err(ApiError::Conflict(
            "this customer's data was erased at their request".into(),
        ));
    }
    if let Some(s) = status {
        if !matches!(s, "active" | "closed") {
            return Err(ApiError::field(
                "status",
                "invalid",
                "status is `active` or `closed` (erasure goes through a data-subject request)",
            ));
        }
    }
    let clear = decrypt(state.vault(), &row).await.map_err(vault_err)?;
    let pick = |new: &Option<String>, old: Option<String>| match new {
        Some(v) => Some(v.clone()),
        None => old,
    };
    let merged = zhudai_domain::customer::CustomerInput {
        kind: Some(row.kind.clone()),
        name: Some(changes.name.clone().unwrap_or(row.name.clone())),
        id_number: pick(&changes.id_number, clear.id_number),
        phone: pick(&changes.phone, clear.phone),
        bank_card: pick(&changes.bank_card, clear.bank_card),
        email: pick(&changes.email, clear.email),
        address: pick(&changes.address, clear.address),
        monthly_income: pick(&changes.monthly_income, clear.monthly_income),
    };
    let valid = merged
        .validate(state.clock().today())
        .map_err(|p| ApiError::Validation(p.into_iter().map(FieldError::from).collect()))?;
    let values = encrypt(state.vault(), &row.ref_, &valid)
        .await
        .map_err(vault_err)?;
    let now = state.now_ms();
    let mut tx = state.store().begin().await?;
    if !customer_update(&mut *tx, id, version, &values, now).await? {
        return Err(ApiError::Conflict(format!(
            "customer {id} was changed since you read it (you sent version {version}, it is now {}); reload and try again",
            row.version
        )));
    }
    if let Some(s) = status.filter(|s| *s != row.status) {
        customer_set_status(&mut *tx, id, s, row.legal_hold_until.as_deref(), now).await?;
    }
    let changed: Vec<&str> = [
        ("name", changes.name.is_some()),
        ("id_number", changes.id_number.is_some()),
        ("phone", changes.phone.is_some()),
        ("bank_card", changes.bank_card.is_some()),
        ("email", changes.email.is_some()),
        ("address", changes.address.is_some()),
        ("monthly_income", changes.monthly_income.is_some()),
        ("status", status.is_some()),
    ]
    .into_iter()
    .filter_map(|(f, c)| c.then_some(f))
    .collect();
    let draft = audit_draft(caller, now, "customer.update", format!("customer:{id}"))
        .reason(format!("fields: {}", changed.join(",")));
    zhudai_store::audit::append(&mut tx, &draft).await?;
    tx.commit().await?;
    Ok(())
}

/// Reveals one sensitive field in clear to a caller allowed to reveal, with a reason;
/// rate-limited per user per hour and audited in the same transaction as nothing else
/// (a read), so the record is written before the value leaves.
pub async fn reveal(
    state: &AppState,
    caller: &Caller,
    id: i64,
    field: &str,
    reason: &str,
) -> Result<String, ApiError> {
    let mut errors = Vec::new();
    if !matches!(
        field,
        "id_number" | "phone" | "bank_card" | "monthly_income"
    ) {
        errors.push(FieldError::new(
            "field",
            "invalid",
            "use `id_number`, `phone`, `bank_card` or `monthly_income`",
        ));
    }
    if reason.trim().chars().count() < 4 {
        errors.push(FieldError::new(
            "reason",
            "required",
            "say why you need the clear value (at least 4 characters)",
        ));
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let (row, _) = load_in_scope(state, caller, id).await?;
    let limit = state.settings().auth.reveals_per_hour;
    let used = state
        .store()
        .audit_count(&zhudai_store::audit::AuditFilter {
            actor: Some(caller.username.clone()),
            action_prefix: Some("field.reveal".into()),
            from_ms: Some(state.now_ms() - 3_600_000),
            outcome: Some("success".into()),
            ..Default::default()
        })
        .await?;
    if used >= limit {
        return Err(ApiError::TooManyRequests(format!(
            "you have revealed {used} values in the last hour (limit {limit}); try later"
        )));
    }
    let clear = decrypt(state.vault(), &row).await.map_err(vault_err)?;
    let value = match field {
        "id_number" => clear.id_number,
        "phone" => clear.phone,
        "bank_card" => clear.bank_card,
        _ => clear.monthly_income,
    }
    .ok_or_else(|| ApiError::NotFound(format!("customer {id} has no {field}")))?;
    let draft = audit_draft(
        caller,
        state.now_ms(),
        "field.reveal",
        format!("customer:{id}"),
    )
    .reason(format!("{field}: {}", reason.trim()));
    state.store().audit_append(&draft).await?;
    Ok(value)
}

/// Enterprise links of a customer; names of the other side only when in scope.
pub async fn relations(
    state: &AppState,
    scope: &ScopeFilter,
    id: i64,
) -> Result<Vec<RelationView>, ApiError> {
    let mut out = Vec::new();
    for r in state.store().customer_relations(id).await? {
        let name_of = |cid: i64| async move {
            match state.store().customer_get(cid).await {
                Ok(Some(c)) if scope.admits(c.owner_user_id, c.org_unit_id) => Ok(Some(c.name)),
                Ok(_) => Ok(None),
                Err(e) => Err(ApiError::from(e)),
            }
        };
        out.push(RelationView {
            id: r.id,
            enterprise_name: name_of(r.enterprise_id).await?,
            person_name: name_of(r.person_id).await?,
            enterprise_id: r.enterprise_id,
            person_id: r.person_id,
            role: r.role,
            share_bp: r.share_bp,
        });
    }
    Ok(out)
}

/// Links an individual (in scope) to an enterprise (in scope).
pub async fn add_relation(
    state: &AppState,
    caller: &Caller,
    enterprise_id: i64,
    person_id: i64,
    role: &str,
    share_bp: Option<i64>,
) -> Result<(), ApiError> {
    let (ent, _) = load_in_scope(state, caller, enterprise_id).await?;
    let mut errors = Vec::new();
    if ent.kind != "enterprise" {
        errors.push(FieldError::new(
            "id",
            "not_enterprise",
            "links are made from an enterprise customer",
        ));
    }
    let role = match RelationRole::parse(role) {
        Some(r) => Some(r),
        None => {
            errors.push(FieldError::new(
                "role",
                "invalid",
                "role is legal_representative, beneficial_owner, actual_controller or shareholder",
            ));
            None
        }
    };
    if let Some(bp) = share_bp {
        if let Err(p) = check_share_bp(bp) {
            errors.push(p.into());
        }
    }
    let person = match load_in_scope(state, caller, person_id).await {
        Ok((p, _)) => Some(p),
        Err(ApiError::NotFound(m) | ApiError::Forbidden(m)) => {
            errors.push(FieldError::new("person_id", "unknown", m));
            None
        }
        Err(e) => return Err(e),
    };
    if person.as_ref().is_some_and(|p| p.kind != "individual") {
        errors.push(FieldError::new(
            "person_id",
            "not_individual",
            "the linked customer must be an individual",
        ));
    }
    let (Some(role), true) = (role, errors.is_empty()) else {
        return Err(ApiError::Validation(errors));
    };
    let now = state.now_ms();
    let mut tx = state.store().begin().await?;
    match relation_insert(
        &mut *tx,
        enterprise_id,
        person_id,
        role.as_str(),
        share_bp,
        Some(caller.user_id),
        now,
    )
    .await
    {
        Ok(_) => {}
        Err(e) if e.is_unique_violation("customer_relations_unique", "customer_relations") => {
            return Err(ApiError::Conflict(
                "this person already has this role in this enterprise".into(),
            ))
        }
        Err(e) => return Err(e.into()),
    }
    let draft = audit_draft(
        caller,
        now,
        "customer.relation.add",
        format!("customer:{enterprise_id}"),
    )
    .reason(format!("{} customer:{person_id}", role.as_str()));
    zhudai_store::audit::append(&mut tx, &draft).await?;
    tx.commit().await?;
    Ok(())
}

/// The audit records about a customer, newest first.
pub async fn history(
    state: &AppState,
    id: i64,
    limit: i64,
) -> Result<Vec<zhudai_crypto::audit_chain::AuditRecord>, ApiError> {
    let page = state
        .store()
        .audit_search(
            &zhudai_store::audit::AuditFilter {
                target: Some(format!("customer:{id}")),
                ..Default::default()
            },
            None,
            limit,
        )
        .await?;
    Ok(page.records)
}
