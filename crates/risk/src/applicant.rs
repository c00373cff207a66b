//! The applicant facts a decision reads, their typed schema and how they fill a record.
//!
//! An [`Applicant`] is the stored input of a decision (its JSON is digested and kept, so
//! a decision can be replayed). Its JSON mirrors the rule field paths:
//!
//! ```json
//! { "app": { "amount": "30000.00", "months": 12, "product": "consumer_std", "purpose": "装修" },
//!   "applicant": { "age": 41, "monthly_income": "12000.00", "identity_match": true,
//!                  "blacklisted": false, "recent_applications": 1,
//!                  "duplicate_phone": false, "duplicate_bank_card": false,
//!                  "duplicate_id_number": false, "has_phone": true,
//!                  "existing_loans": 0, "province": "北京市" },
//!   "features": { "status_of_existing_checking_account": "... < 0 DM" } }
//! ```
//!
//! `features` are model inputs given directly by name (e.g. bureau data a caller has);
//! they win over the model's input mapping ([`crate::inputs`]).

use std::collections::BTreeMap;
use std::sync::OnceLock;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use zhudai_expr::{Record, RecordError, Schema, Slot, Type};

/// What is asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppFacts {
    /// Yuan, two decimals at most.
    #[serde(with = "rust_decimal::serde::str")]
    pub amount: Decimal,
    /// Term in months.
    pub months: i64,
    /// Product code.
    #[serde(default)]
    pub product: String,
    /// Free-text purpose.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purpose: Option<String>,
}

/// What we know about the person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct PersonFacts {
    /// Age in whole years; unknown without a birth date.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub age: Option<i64>,
    /// Declared monthly income in yuan.
    #[serde(
        with = "rust_decimal::serde::str_option",
        skip_serializing_if = "Option::is_none"
    )]
    pub monthly_income: Option<Decimal>,
    /// Identity documents agree with the customer (name and ID number); unknown when no
    /// identity document declares them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity_match: Option<bool>,
    /// The ID number, phone or bank card is on the blacklist.
    pub blacklisted: bool,
    /// Applications by this person (same ID number) in the rule set's window (多头).
    pub recent_applications: i64,
    /// Another customer has the same phone number.
    pub duplicate_phone: bool,
    /// Another customer has the same bank card.
    pub duplicate_bank_card: bool,
    /// Another customer has the same ID number.
    pub duplicate_id_number: bool,
    /// A mobile number is on file.
    pub has_phone: bool,
    /// Earlier applications of this customer that were approved or disbursed.
    pub existing_loans: i64,
    /// Province of the ID's region code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub province: Option<String>,
}

/// A model input given directly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum FeatureValue {
    /// A number.
    Number(f64),
    /// Text (a category, or a number as text).
    Text(String),
}

/// The input of one decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Applicant {
    pub app: AppFacts,
    #[serde(default)]
    pub applicant: PersonFacts,
    /// Model inputs by feature name; `null` means missing.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub features: BTreeMap<String, Option<FeatureValue>>,
}

impl Applicant {
    /// The canonical JSON (struct order, sorted feature names): what is stored and digested.
    pub fn to_canonical_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// SHA-256 (hex) of [`Applicant::to_canonical_json`].
    pub fn digest(&self) -> String {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(self.to_canonical_json().as_bytes()))
    }

    /// Builds an applicant from flat `path → text` pairs (a CSV row whose header names
    /// fields such as `app.amount`, `applicant.age` or `features.<name>`). Empty text
    /// leaves a field unset.
    pub fn from_flat<S: AsRef<str>>(pairs: &[(S, S)]) -> Result<Self, String> {
        let mut app = serde_json::Map::new();
        let mut person = serde_json::Map::new();
        let mut features = serde_json::Map::new();
        for (k, v) in pairs {
            let (k, v) = (k.as_ref().trim(), v.as_ref().trim());
            if v.is_empty() {
                continue;
            }
            let (group, name) = k
                .split_once('.')
                .ok_or_else(|| format!("column `{k}` is not a field path such as app.amount"))?;
            let typed = |ty: Option<&Type>| -> Result<serde_json::Value, String> {
                let bad = || {
                    format!(
                        "`{k}`: `{v}` is not a {}",
                        ty.map(|t| t.to_string()).unwrap_or_default()
                    )
                };
                if inner_is(ty, &Type::Int) {
                    return Ok(serde_json::Value::from(
                        v.parse::<i64>().map_err(|_| bad())?,
                    ));
                }
                if inner_is(ty, &Type::Bool) {
                    return match v.to_ascii_lowercase().as_str() {
                        "true" | "1" | "yes" | "是" => Ok(serde_json::Value::Bool(true)),
                        "false" | "0" | "no" | "否" => Ok(serde_json::Value::Bool(false)),
                        _ => Err(bad()),
                    };
                }
                Ok(serde_json::Value::String(v.to_owned()))
            };
            match group {
                "app" | "applicant" => {
                    let ty = schema().and_then(|s| s.field_type(k));
                    if ty.is_none() {
                        return Err(format!("unknown field `{k}`"));
                    }
                    let value = typed(ty)?;
                    if group == "app" {
                        app.insert(name.to_owned(), value);
                    } else {
                        person.insert(name.to_owned(), value);
                    }
                }
                "features" => {
                    let value = match v.parse::<f64>() {
                        Ok(x) if x.is_finite() => serde_json::Value::from(x),
                        _ => serde_json::Value::String(v.to_owned()),
                    };
                    features.insert(name.to_owned(), value);
                }
                _ => return Err(format!("unknown field `{k}`")),
            }
        }
        let json = serde_json::json!({ "app": app, "applicant": person, "features": features });
        serde_json::from_value(json).map_err(|e| e.to_string())
    }
}

fn inner_is(ty: Option<&Type>, want: &Type) -> bool {
    match ty {
        Some(Type::Optional(inner)) => inner.as_ref() == want,
        Some(t) => t == want,
        None => false,
    }
}

/// Every field a policy rule may name, with its type.
pub const FIELDS: &[(&str, &str)] = &[
    ("app.amount", "decimal(2)"),
    ("app.months", "int"),
    ("app.product", "string"),
    ("app.purpose", "optional<string>"),
    ("applicant.age", "optional<int>"),
    ("applicant.monthly_income", "optional<decimal(2)>"),
    ("applicant.identity_match", "optional<bool>"),
    ("applicant.blacklisted", "bool"),
    ("applicant.recent_applications", "int"),
    ("applicant.duplicate_phone", "bool"),
    ("applicant.duplicate_bank_card", "bool"),
    ("applicant.duplicate_id_number", "bool"),
    ("applicant.has_phone", "bool"),
    ("applicant.existing_loans", "int"),
    ("applicant.province", "optional<string>"),
    ("score.points", "int"),
];

fn ty_of(s: &str) -> Type {
    match s {
        "decimal(2)" => Type::decimal(2),
        "int" => Type::Int,
        "bool" => Type::Bool,
        "string" => Type::String,
        "optional<string>" => Type::optional(Type::String),
        "optional<int>" => Type::optional(Type::Int),
        "optional<bool>" => Type::optional(Type::Bool),
        _ => Type::optional(Type::decimal(2)),
    }
}

struct Compiled {
    schema: Schema,
    slots: Slots,
}

/// Slots resolved once.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Slots {
    pub amount: Slot,
    pub months: Slot,
    pub product: Slot,
    pub purpose: Slot,
    pub age: Slot,
    pub income: Slot,
    pub identity: Slot,
    pub blacklisted: Slot,
    pub recent: Slot,
    pub dup_phone: Slot,
    pub dup_card: Slot,
    pub dup_id: Slot,
    pub has_phone: Slot,
    pub existing: Slot,
    pub province: Slot,
    pub score: Slot,
}

fn compiled() -> Option<&'static Compiled> {
    static C: OnceLock<Option<Compiled>> = OnceLock::new();
    C.get_or_init(|| {
        let mut b = Schema::builder();
        for (name, ty) in FIELDS {
            b = b.field(name, ty_of(ty));
        }
        let schema = b.build().ok()?;
        let s = |n: &str| schema.slot(n);
        let slots = Slots {
            amount: s("app.amount")?,
            months: s("app.months")?,
            product: s("app.product")?,
            purpose: s("app.purpose")?,
            age: s("applicant.age")?,
            income: s("applicant.monthly_income")?,
            identity: s("applicant.identity_match")?,
            blacklisted: s("applicant.blacklisted")?,
            recent: s("applicant.recent_applications")?,
            dup_phone: s("applicant.duplicate_phone")?,
            dup_card: s("applicant.duplicate_bank_card")?,
            dup_id: s("applicant.duplicate_id_number")?,
            has_phone: s("applicant.has_phone")?,
            existing: s("applicant.existing_loans")?,
            province: s("applicant.province")?,
            score: s("score.points")?,
        };
        Some(Compiled { schema, slots })
    })
    .as_ref()
}

/// The typed schema rules are compiled against (built once). `None` never happens in
/// practice: [`FIELDS`] is a constant, valid schema (a unit test builds it).
pub fn schema() -> Option<&'static Schema> {
    compiled().map(|c| &c.schema)
}

pub(crate) fn slots() -> Option<Slots> {
    compiled().map(|c| c.slots)
}

/// Yuan with two decimals as fen-units (the decimal(2) mantissa), when exact.
pub(crate) fn units2(d: Decimal) -> Option<i128> {
    let mut d = d;
    if d.scale() > 2 {
        let r = d.round_dp(2);
        if r != d {
            return None;
        }
        d = r;
    }
    let m = d.mantissa();
    Some(m * 10i128.pow(2 - d.scale()))
}

/// Fills `rec` (built from [`schema`]) with the applicant's facts and the score.
pub(crate) fn fill(
    rec: &mut Record,
    s: &Slots,
    a: &Applicant,
    score: i64,
) -> Result<(), RecordError> {
    rec.clear();
    let amount = units2(a.app.amount).ok_or(RecordError::NotOptional("app.amount".into()))?;
    rec.set_decimal_units(s.amount, amount)?;
    rec.set_int(s.months, a.app.months)?;
    rec.set_str(s.product, &a.app.product)?;
    if let Some(p) = &a.app.purpose {
        rec.set_str(s.purpose, p)?;
    }
    let p = &a.applicant;
    if let Some(age) = p.age {
        rec.set_int(s.age, age)?;
    }
    if let Some(i) = p.monthly_income.and_then(units2) {
        rec.set_decimal_units(s.income, i)?;
    }
    if let Some(m) = p.identity_match {
        rec.set_bool(s.identity, m)?;
    }
    rec.set_bool(s.blacklisted, p.blacklisted)?;
    rec.set_int(s.recent, p.recent_applications)?;
    rec.set_bool(s.dup_phone, p.duplicate_phone)?;
    rec.set_bool(s.dup_card, p.duplicate_bank_card)?;
    rec.set_bool(s.dup_id, p.duplicate_id_number)?;
    rec.set_bool(s.has_phone, p.has_phone)?;
    rec.set_int(s.existing, p.existing_loans)?;
    if let Some(pr) = &p.province {
        rec.set_str(s.province, pr)?;
    }
    rec.set_int(s.score, score)?;
    Ok(())
}

/// The value of an applicant field as a model input (numbers for numeric facts, text for
/// strings, `"true"`/`"false"` for booleans); `None` when absent or not a field.
pub(crate) fn field_value(a: &Applicant, path: &str) -> Option<FieldValue> {
    let p = &a.applicant;
    let b = |x: bool| Some(FieldValue::Text(if x { "true" } else { "false" }.into()));
    let dec = |d: Decimal| d.to_string().parse::<f64>().ok().map(FieldValue::Number);
    match path {
        "app.amount" => dec(a.app.amount),
        "app.months" => Some(FieldValue::Number(a.app.months as f64)),
        "app.product" => Some(FieldValue::Text(a.app.product.clone())),
        "app.purpose" => a.app.purpose.clone().map(FieldValue::Text),
        "applicant.age" => p.age.map(|x| FieldValue::Number(x as f64)),
        "applicant.monthly_income" => p.monthly_income.and_then(dec),
        "applicant.identity_match" => p.identity_match.and_then(b),
        "applicant.blacklisted" => b(p.blacklisted),
        "applicant.recent_applications" => Some(FieldValue::Number(p.recent_applications as f64)),
        "applicant.duplicate_phone" => b(p.duplicate_phone),
        "applicant.duplicate_bank_card" => b(p.duplicate_bank_card),
        "applicant.duplicate_id_number" => b(p.duplicate_id_number),
        "applicant.has_phone" => b(p.has_phone),
        "applicant.existing_loans" => Some(FieldValue::Number(p.existing_loans as f64)),
        "applicant.province" => p.province.clone().map(FieldValue::Text),
        _ => None,
    }
}

/// A fact as a model input.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum FieldValue {
    Number(f64),
    Text(String),
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn schema_builds_and_names_every_field() {
        assert!(slots().is_some());
        for (name, _) in FIELDS {
            assert!(schema().unwrap().slot(name).is_some(), "{name}");
        }
    }

    #[test]
    fn json_round_trip_and_digest_are_stable() {
        let json = r#"{"app":{"amount":"30000.00","months":12,"product":"p"},"applicant":{"age":41,"blacklisted":false}}"#;
        let a: Applicant = serde_json::from_str(json).unwrap();
        let again: Applicant = serde_json::from_str(&a.to_canonical_json()).unwrap();
        assert_eq!(a, again);
        assert_eq!(a.digest(), again.digest());
        assert_eq!(a.digest().len(), 64);
        assert!(serde_json::from_str::<Applicant>(
            r#"{"app":{"amount":"1","months":1},"applicant":{"agee":3}}"#
        )
        .is_err());
    }

    #[test]
    fn flat_rows_become_applicants() {
        let a = Applicant::from_flat(&[
            ("app.amount", "5000"),
            ("app.months", "6"),
            ("applicant.age", "17"),
            ("applicant.blacklisted", "yes"),
            ("applicant.province", ""),
            ("features.purpose", "car (new)"),
            ("features.duration", "12"),
        ])
        .unwrap();
        assert_eq!(a.app.months, 6);
        assert_eq!(a.applicant.age, Some(17));
        assert!(a.applicant.blacklisted);
        assert_eq!(a.applicant.province, None);
        assert_eq!(a.features["duration"], Some(FeatureValue::Number(12.0)));
        let e = Applicant::from_flat(&[("app.amount", "5000"), ("app.months", "x")]).unwrap_err();
        assert!(e.contains("app.months"), "{e}");
        let e = Applicant::from_flat(&[("applicant.agee", "5")]).unwrap_err();
        assert!(e.contains("unknown field"), "{e}");
    }
}
