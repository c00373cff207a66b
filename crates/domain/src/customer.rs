//! Customers (客户): individuals and enterprises, validated into types that only hold valid
//! values, with the facts derived from an ID number computed once (never typed in twice)
//! and every field classified by sensitivity (C1–C3), which drives masking, export and
//! who may see it in clear.
//!
//! The same validation serves the API, the UI forms and bulk import, so a row that the
//! importer accepts is exactly a customer the API would accept.

use crate::ident::{BankCard, Email, Gender, IdentError, Mobile, ResidentId, ResidentIdKind, Uscc};
use crate::money::Fen;
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

/// Individual or enterprise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CustomerKind {
    Individual,
    Enterprise,
}

impl CustomerKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CustomerKind::Individual => "individual",
            CustomerKind::Enterprise => "enterprise",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s.trim() {
            "individual" | "个人" => Some(CustomerKind::Individual),
            "enterprise" | "企业" => Some(CustomerKind::Enterprise),
            _ => None,
        }
    }
}

/// What kind of identity document the customer's number is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdKind {
    /// 居民身份证.
    Resident,
    /// 港澳台居民居住证 (Hong Kong).
    HkPermit,
    /// 港澳台居民居住证 (Macao).
    MoPermit,
    /// 港澳台居民居住证 (Taiwan).
    TwPermit,
    /// 统一社会信用代码 of an enterprise.
    Uscc,
}

impl IdKind {
    pub fn as_str(self) -> &'static str {
        match self {
            IdKind::Resident => "resident",
            IdKind::HkPermit => "hk_permit",
            IdKind::MoPermit => "mo_permit",
            IdKind::TwPermit => "tw_permit",
            IdKind::Uscc => "uscc",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            IdKind::Resident,
            IdKind::HkPermit,
            IdKind::MoPermit,
            IdKind::TwPermit,
            IdKind::Uscc,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }

    fn of_resident(kind: ResidentIdKind) -> Self {
        match kind {
            ResidentIdKind::Resident => IdKind::Resident,
            ResidentIdKind::HongKongResidencePermit => IdKind::HkPermit,
            ResidentIdKind::MacaoResidencePermit => IdKind::MoPermit,
            ResidentIdKind::TaiwanResidencePermit => IdKind::TwPermit,
        }
    }
}

/// Sensitivity level of a field (数据分级).
///
/// - C1 internal: may be shown and exported to anyone with access to the record.
/// - C2 personal information (个人信息, PIPL art. 4): shown in clear inside the business,
///   exported only by roles allowed to export customers, never to CSV without masking for
///   bulk exports that are not approved.
/// - C3 sensitive personal information (敏感个人信息, PIPL art. 28: identity numbers,
///   financial accounts, income): encrypted at rest, masked unless the role may see the
///   field in clear, every clear read audited, exported in clear only through an approved
///   export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Sensitivity {
    C1,
    C2,
    C3,
}

impl Sensitivity {
    pub fn as_str(self) -> &'static str {
        match self {
            Sensitivity::C1 => "C1",
            Sensitivity::C2 => "C2",
            Sensitivity::C3 => "C3",
        }
    }
}

/// How a field is masked for a reader who may not see it in clear.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Masking {
    None,
    Name,
    ResidentId,
    Mobile,
    BankCard,
    Email,
    /// Replaced completely (`***`).
    Full,
}

impl Masking {
    pub fn apply(self, value: &str) -> String {
        match self {
            Masking::None => value.to_owned(),
            Masking::Name => crate::mask::name(value),
            Masking::ResidentId => crate::mask::resident_id(value),
            Masking::Mobile => crate::mask::mobile(value),
            Masking::BankCard => crate::mask::bank_card(value),
            Masking::Email => crate::mask::email(value),
            Masking::Full => "***".to_owned(),
        }
    }
}

/// One field of a customer record and its classification.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct FieldClass {
    /// Field name as the API spells it.
    pub field: &'static str,
    pub level: Sensitivity,
    /// Stored encrypted (with a blind index when `searchable`).
    pub encrypted: bool,
    pub searchable: bool,
    pub masking: Masking,
    /// The field-access code (`crates/domain/src/access.rs` SENSITIVE_FIELDS) that lets a
    /// role see it in clear; `None` means the level alone decides (C1/C2 are clear).
    pub clear_field: Option<&'static str>,
    pub zh: &'static str,
    pub en: &'static str,
}

#[allow(clippy::too_many_arguments)]
const fn fc(
    field: &'static str,
    level: Sensitivity,
    encrypted: bool,
    searchable: bool,
    masking: Masking,
    clear_field: Option<&'static str>,
    zh: &'static str,
    en: &'static str,
) -> FieldClass {
    FieldClass {
        field,
        level,
        encrypted,
        searchable,
        masking,
        clear_field,
        zh,
        en,
    }
}

/// The classification of every customer field. Masking, export and the privacy page
/// read it from here; a test checks that every C3 field is encrypted and has a clear-field
/// permission.
pub const CUSTOMER_FIELDS: &[FieldClass] = &[
    fc(
        "kind",
        Sensitivity::C1,
        false,
        false,
        Masking::None,
        None,
        "客户类型",
        "Kind",
    ),
    fc(
        "status",
        Sensitivity::C1,
        false,
        false,
        Masking::None,
        None,
        "状态",
        "Status",
    ),
    fc(
        "region",
        Sensitivity::C1,
        false,
        false,
        Masking::None,
        None,
        "地区",
        "Region",
    ),
    fc(
        "name",
        Sensitivity::C2,
        false,
        false,
        Masking::Name,
        None,
        "姓名/名称",
        "Name",
    ),
    fc(
        "gender",
        Sensitivity::C2,
        false,
        false,
        Masking::None,
        None,
        "性别",
        "Gender",
    ),
    fc(
        "birth_date",
        Sensitivity::C2,
        false,
        false,
        Masking::Full,
        None,
        "出生日期",
        "Date of birth",
    ),
    fc(
        "email",
        Sensitivity::C2,
        true,
        false,
        Masking::Email,
        None,
        "电子邮箱",
        "E-mail",
    ),
    fc(
        "address",
        Sensitivity::C2,
        true,
        false,
        Masking::Full,
        None,
        "地址",
        "Address",
    ),
    fc(
        "id_number",
        Sensitivity::C3,
        true,
        true,
        Masking::ResidentId,
        Some("customer.id_number"),
        "证件号码",
        "ID number",
    ),
    fc(
        "phone",
        Sensitivity::C3,
        true,
        true,
        Masking::Mobile,
        Some("customer.phone"),
        "手机号",
        "Mobile",
    ),
    fc(
        "bank_card",
        Sensitivity::C3,
        true,
        true,
        Masking::BankCard,
        Some("customer.bank_card"),
        "银行卡号",
        "Bank card",
    ),
    fc(
        "monthly_income",
        Sensitivity::C3,
        true,
        false,
        Masking::Full,
        Some("customer.income"),
        "月收入",
        "Monthly income",
    ),
];

/// The classification of a field, if it is a customer field.
pub fn field_class(field: &str) -> Option<&'static FieldClass> {
    CUSTOMER_FIELDS.iter().find(|f| f.field == field)
}

/// A problem with one input field: which field, a stable code, and a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldProblem {
    pub field: &'static str,
    pub code: &'static str,
    pub message: String,
}

impl FieldProblem {
    pub fn new(field: &'static str, code: &'static str, message: impl Into<String>) -> Self {
        FieldProblem {
            field,
            code,
            message: message.into(),
        }
    }

    fn ident(field: &'static str, e: &IdentError) -> Self {
        FieldProblem::new(field, e.code(), e.to_string())
    }
}

/// Raw input for a customer, as typed into a form, sent as JSON or read from a file row.
/// Empty strings count as absent.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct CustomerInput {
    pub kind: Option<String>,
    pub name: Option<String>,
    /// Resident ID / residence permit (individual) or USCC (enterprise).
    pub id_number: Option<String>,
    pub phone: Option<String>,
    pub bank_card: Option<String>,
    pub email: Option<String>,
    pub address: Option<String>,
    /// Monthly income in yuan, e.g. `"12000.00"`.
    pub monthly_income: Option<String>,
}

/// A customer whose every field holds a valid value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidCustomer {
    pub kind: CustomerKind,
    pub name: String,
    pub id_kind: IdKind,
    /// Normalised: 18 characters upper-case `X` for IDs, 18 upper-case for USCC.
    pub id_number: String,
    pub phone: Option<Mobile>,
    pub bank_card: Option<BankCard>,
    pub email: Option<Email>,
    pub address: Option<String>,
    pub monthly_income: Option<Fen>,
    /// Derived from the ID number (individuals only).
    pub birth_date: Option<NaiveDate>,
    pub gender: Option<Gender>,
    /// Administrative division code: 6 digits from a resident ID, or the USCC's region.
    pub region_code: Option<String>,
}

fn present(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// Checks a person's or company's name: 1–100 characters, no control characters.
pub fn check_name(name: &str) -> Result<String, FieldProblem> {
    let n: String = name.split_whitespace().collect::<Vec<_>>().join(" ");
    let len = n.chars().count();
    if len == 0 {
        return Err(FieldProblem::new("name", "required", "enter the name"));
    }
    if len > 100 {
        return Err(FieldProblem::new(
            "name",
            "too_long",
            "a name is at most 100 characters",
        ));
    }
    if n.chars().any(|c| c.is_control() || matches!(c, '<' | '>')) {
        return Err(FieldProblem::new(
            "name",
            "invalid",
            "the name contains characters that are not allowed",
        ));
    }
    Ok(n)
}

/// Checks an address: 4–200 characters of text.
pub fn check_address(address: &str) -> Result<String, FieldProblem> {
    let a = address.trim();
    let len = a.chars().count();
    if !(4..=200).contains(&len) {
        return Err(FieldProblem::new(
            "address",
            "length",
            "an address is 4–200 characters",
        ));
    }
    if a.chars().any(char::is_control) {
        return Err(FieldProblem::new(
            "address",
            "invalid",
            "the address contains control characters",
        ));
    }
    Ok(a.to_owned())
}

impl CustomerInput {
    /// Validates every field, returning all problems at once. `today` refuses a date of
    /// birth in the future.
    pub fn validate(&self, today: NaiveDate) -> Result<ValidCustomer, Vec<FieldProblem>> {
        let mut problems = Vec::new();
        let kind = match present(&self.kind) {
            None => Some(CustomerKind::Individual),
            Some(k) => match CustomerKind::parse(k) {
                Some(k) => Some(k),
                None => {
                    problems.push(FieldProblem::new(
                        "kind",
                        "invalid",
                        "kind is `individual` or `enterprise`",
                    ));
                    None
                }
            },
        };
        let name = match present(&self.name) {
            Some(n) => check_name(n).map_err(|p| problems.push(p)).ok(),
            None => {
                problems.push(FieldProblem::new("name", "required", "enter the name"));
                None
            }
        };
        let mut id = None;
        match (present(&self.id_number), kind) {
            (None, _) => problems.push(FieldProblem::new(
                "id_number",
                "required",
                "enter the ID number (resident ID or residence permit; USCC for an enterprise)",
            )),
            (Some(raw), Some(CustomerKind::Enterprise)) => match Uscc::parse(raw) {
                Ok(u) => {
                    id = Some((
                        IdKind::Uscc,
                        u.as_str().to_owned(),
                        None,
                        None,
                        Some(u.region_code().to_owned()),
                    ))
                }
                Err(e) => problems.push(FieldProblem::ident("id_number", &e)),
            },
            (Some(raw), _) => match ResidentId::parse_as_of(raw, today) {
                Ok(r) => {
                    id = Some((
                        IdKind::of_resident(r.kind()),
                        r.as_str().to_owned(),
                        Some(r.birth_date()),
                        Some(r.gender()),
                        Some(r.region_code().to_owned()),
                    ))
                }
                Err(e) => problems.push(FieldProblem::ident("id_number", &e)),
            },
        }
        let phone = present(&self.phone).and_then(|p| {
            Mobile::parse(p)
                .map_err(|e| problems.push(FieldProblem::ident("phone", &e)))
                .ok()
        });
        let bank_card = present(&self.bank_card).and_then(|p| {
            BankCard::parse(p)
                .map_err(|e| problems.push(FieldProblem::ident("bank_card", &e)))
                .ok()
        });
        let email = present(&self.email).and_then(|p| {
            Email::parse(p)
                .map_err(|e| problems.push(FieldProblem::ident("email", &e)))
                .ok()
        });
        let address = present(&self.address)
            .and_then(|a| check_address(a).map_err(|p| problems.push(p)).ok());
        let monthly_income = present(&self.monthly_income).and_then(|s| match Fen::parse(s) {
            Ok(f) => Some(f),
            Err(e) => {
                problems.push(FieldProblem::new(
                    "monthly_income",
                    e.code(),
                    format!("monthly income is an amount in yuan such as 12000.00 ({e})"),
                ));
                None
            }
        });
        if kind == Some(CustomerKind::Enterprise) && monthly_income.is_some() {
            problems.push(FieldProblem::new(
                "monthly_income",
                "not_applicable",
                "monthly income is recorded for individuals only",
            ));
        }
        match (kind, name, id) {
            (
                Some(kind),
                Some(name),
                Some((id_kind, id_number, birth_date, gender, region_code)),
            ) if problems.is_empty() => Ok(ValidCustomer {
                kind,
                name,
                id_kind,
                id_number,
                phone,
                bank_card,
                email,
                address,
                monthly_income,
                birth_date,
                gender,
                region_code,
            }),
            _ => Err(problems),
        }
    }
}

impl ValidCustomer {
    /// Age in whole years on `date` (individuals).
    pub fn age_on(&self, date: NaiveDate) -> Option<u32> {
        date.years_since(self.birth_date?)
    }
}

/// How an individual is linked to an enterprise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RelationRole {
    /// 法定代表人.
    LegalRepresentative,
    /// 受益所有人 (beneficial owner: ≥ 25 % ownership or control, 银发〔2017〕235号).
    BeneficialOwner,
    /// 实际控制人.
    ActualController,
    /// 股东.
    Shareholder,
}

impl RelationRole {
    pub fn as_str(self) -> &'static str {
        match self {
            RelationRole::LegalRepresentative => "legal_representative",
            RelationRole::BeneficialOwner => "beneficial_owner",
            RelationRole::ActualController => "actual_controller",
            RelationRole::Shareholder => "shareholder",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            RelationRole::LegalRepresentative,
            RelationRole::BeneficialOwner,
            RelationRole::ActualController,
            RelationRole::Shareholder,
        ]
        .into_iter()
        .find(|r| r.as_str() == s)
    }
}

/// Ownership share in basis points (0–10000), checked.
pub fn check_share_bp(bp: i64) -> Result<i64, FieldProblem> {
    if (0..=10_000).contains(&bp) {
        Ok(bp)
    } else {
        Err(FieldProblem::new(
            "share_bp",
            "out_of_range",
            "a share is 0–10000 basis points (0–100 %)",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, 30).unwrap_or_default()
    }

    fn input(id: &str) -> CustomerInput {
        CustomerInput {
            kind: Some("individual".into()),
            name: Some(" 张  三 ".into()),
            id_number: Some(id.into()),
            phone: Some("13800138000".into()),
            ..Default::default()
        }
    }

    #[test]
    fn a_valid_individual_derives_birth_gender_region() {
        let c = input("11010519491231002x").validate(today()).unwrap();
        assert_eq!(c.id_number, "11010519491231002X");
        assert_eq!(c.name, "张 三");
        assert_eq!(c.birth_date, NaiveDate::from_ymd_opt(1949, 12, 31));
        assert_eq!(c.gender, Some(Gender::Female));
        assert_eq!(c.region_code.as_deref(), Some("110105"));
        assert_eq!(c.age_on(today()), Some(76));
        assert_eq!(c.id_kind, IdKind::Resident);
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let bad = CustomerInput {
            kind: Some("person".into()),
            name: None,
            id_number: Some("110105194912310021".into()),
            phone: Some("12345".into()),
            bank_card: Some("6222020000000000001".into()),
            email: Some("nope".into()),
            address: Some("x".into()),
            monthly_income: Some("-5".into()),
        };
        let problems = bad.validate(today()).unwrap_err();
        let fields: Vec<_> = problems.iter().map(|p| p.field).collect();
        for f in [
            "kind",
            "name",
            "id_number",
            "phone",
            "bank_card",
            "email",
            "address",
            "monthly_income",
        ] {
            assert!(fields.contains(&f), "{f} missing from {fields:?}");
        }
    }

    #[test]
    fn legacy_15_digit_numbers_are_converted() {
        let c = input("110105491231002").validate(today()).unwrap();
        assert_eq!(c.id_number.len(), 18);
        assert!(c.id_number.starts_with("11010519491231002"));
    }

    #[test]
    fn enterprises_take_a_uscc_and_no_income() {
        let uscc = crate::generate::uscc(7);
        let c = CustomerInput {
            kind: Some("enterprise".into()),
            name: Some("某某科技有限公司".into()),
            id_number: Some(uscc.as_str().to_owned()),
            ..Default::default()
        }
        .validate(today())
        .unwrap();
        assert_eq!(c.id_kind, IdKind::Uscc);
        assert_eq!(c.birth_date, None);
        let p = CustomerInput {
            kind: Some("enterprise".into()),
            name: Some("某某科技有限公司".into()),
            id_number: Some(uscc.as_str().to_owned()),
            monthly_income: Some("100".into()),
            ..Default::default()
        }
        .validate(today())
        .unwrap_err();
        assert_eq!(p[0].field, "monthly_income");
    }

    #[test]
    fn future_birth_dates_are_refused() {
        // Born 2027-01-01: valid number, impossible person today.
        let body = "11010520270101002";
        let id = ResidentId::from_body(body).unwrap();
        let p = input(id.as_str()).validate(today()).unwrap_err();
        assert_eq!(p[0].field, "id_number");
    }

    #[test]
    fn every_c3_field_is_encrypted_and_gated() {
        for f in CUSTOMER_FIELDS {
            if f.level == Sensitivity::C3 {
                assert!(f.encrypted, "{} must be encrypted", f.field);
                let clear = f.clear_field.unwrap_or("");
                assert!(
                    crate::access::is_sensitive_field(clear),
                    "{} needs a clear-field permission",
                    f.field
                );
                assert_ne!(f.masking, Masking::None);
            }
        }
        assert!(field_class("id_number").is_some());
        assert!(field_class("nonsense").is_none());
    }
}
