//! Funder reconciliation (issue #8 item 5): a funder's daily repayment file (CSV) is
//! matched against our posted repayments on that funder's loans, per loan and value
//! date, over the file's dates; every difference is a break (missing: the funder
//! reports money we do not have; extra: we have money the funder does not report;
//! amount_differs) that someone resolves with a note. Both the import and each
//! resolution are audited. The same file (by SHA-256) is imported once per funder.
//!
//! The file: a header row, then one line per repayment. Columns (English or Chinese
//! headers, any order): `loan_ref` (我方借据号) and/or `funder_loan_ref` (资金方借据号),
//! `value_date` (还款日期; `YYYY-MM-DD`, `YYYY/MM/DD` or `YYYYMMDD`), `amount` (还款金额,
//! yuan), optional `external_ref` (流水号).

use crate::auth::Caller;
use crate::customers::audit_draft;
use crate::error::{ApiError, FieldError};
use crate::state::AppState;
use chrono::NaiveDate;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use zhudai_domain::money::Fen;
use zhudai_domain::reconcile::{reconcile, Movement};
use zhudai_store::recon::{self as st, NewBreak, NewLine};

/// A parsed file line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileLine {
    pub line_no: i64,
    pub loan_ref: Option<String>,
    pub funder_loan_ref: Option<String>,
    pub value_date: NaiveDate,
    pub amount: Fen,
    pub external_ref: Option<String>,
}

fn column(header: &str) -> Option<&'static str> {
    let h = header.trim().trim_start_matches('\u{feff}').to_lowercase();
    Some(match h.as_str() {
        "loan_ref" | "我方借据号" | "借据号" | "平台借据号" => "loan_ref",
        "funder_loan_ref" | "资金方借据号" | "银行借据号" => "funder_loan_ref",
        "value_date" | "date" | "还款日期" | "日期" => "value_date",
        "amount" | "还款金额" | "金额" => "amount",
        "external_ref" | "流水号" | "交易流水号" => "external_ref",
        _ => return None,
    })
}

fn parse_date(s: &str) -> Option<NaiveDate> {
    let s = s.trim();
    ["%Y-%m-%d", "%Y/%m/%d", "%Y%m%d"]
        .iter()
        .find_map(|f| NaiveDate::parse_from_str(s, f).ok())
}

/// Parses the file; every bad line is reported (at most 50), and a bad file is refused
/// whole.
pub fn parse(bytes: &[u8]) -> Result<Vec<FileLine>, ApiError> {
    let text = crate::import::read::decode_text(bytes)
        .map(|(t, _)| t)
        .map_err(|e| ApiError::field("file", e.code(), e.to_string()))?;
    let mut rdr = csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let headers = rdr
        .headers()
        .map_err(|e| ApiError::field("file", "unreadable", e.to_string()))?
        .clone();
    let cols: Vec<Option<&str>> = headers.iter().map(column).collect();
    let has = |c: &str| cols.contains(&Some(c));
    let mut missing = Vec::new();
    if !has("loan_ref") && !has("funder_loan_ref") {
        missing.push("loan_ref or funder_loan_ref");
    }
    for c in ["value_date", "amount"] {
        if !has(c) {
            missing.push(c);
        }
    }
    if !missing.is_empty() {
        return Err(ApiError::field(
            "file",
            "missing_columns",
            format!("the header lacks {}", missing.join(", ")),
        ));
    }
    let mut out = Vec::new();
    let mut errors: Vec<FieldError> = Vec::new();
    for (i, rec) in rdr.records().enumerate() {
        let line_no = i as i64 + 2;
        let rec = match rec {
            Ok(r) => r,
            Err(e) => {
                errors.push(FieldError::new(
                    format!("line {line_no}"),
                    "unreadable",
                    e.to_string(),
                ));
                continue;
            }
        };
        if rec.iter().all(|v| v.trim().is_empty()) {
            continue;
        }
        let get = |name: &str| -> Option<String> {
            cols.iter()
                .position(|c| *c == Some(name))
                .and_then(|i| rec.get(i))
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        };
        let loan_ref = get("loan_ref");
        let funder_loan_ref = get("funder_loan_ref");
        let mut bad = Vec::new();
        if loan_ref.is_none() && funder_loan_ref.is_none() {
            bad.push("no loan reference".to_owned());
        }
        let date = get("value_date").and_then(|d| parse_date(&d));
        if date.is_none() {
            bad.push("value_date is not a date such as 2026-11-28".to_owned());
        }
        let amount = get("amount").and_then(|a| Fen::parse(&a.replace(',', "")).ok());
        if !amount.is_some_and(Fen::is_positive) {
            bad.push("amount is not a positive yuan amount such as 8884.88".to_owned());
        }
        match (date, amount, bad.is_empty()) {
            (Some(value_date), Some(amount), true) => out.push(FileLine {
                line_no,
                loan_ref,
                funder_loan_ref,
                value_date,
                amount,
                external_ref: get("external_ref"),
            }),
            _ => errors.push(FieldError::new(
                format!("line {line_no}"),
                "invalid",
                bad.join("; "),
            )),
        }
        if errors.len() >= 50 {
            break;
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    if out.is_empty() {
        return Err(ApiError::field(
            "file",
            "empty",
            "the file has no repayment lines",
        ));
    }
    Ok(out)
}

/// What an import did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Imported {
    pub file_id: i64,
    /// The same file was imported before: nothing new.
    pub replayed: bool,
}

/// Imports a funder's repayment file and records its breaks.
pub async fn import(
    state: &AppState,
    caller: &Caller,
    funder: &str,
    file_name: &str,
    bytes: &[u8],
) -> Result<Imported, ApiError> {
    let funder = funder.trim();
    let partner = state
        .store()
        .partner_by_code(funder)
        .await?
        .filter(|p| p.kind == "funder")
        .ok_or_else(|| {
            ApiError::field("funder", "unknown", format!("`{funder}` is not a funder"))
        })?;
    let lines = parse(bytes)?;
    let digest = hex::encode(Sha256::digest(bytes));
    {
        let mut conn = state.store().writer().acquire().await?;
        if let Some(id) = st::file_by_digest(&mut conn, &partner.code, &digest).await? {
            return Ok(Imported {
                file_id: id,
                replayed: true,
            });
        }
    }
    let refs: Vec<String> = lines.iter().filter_map(|l| l.loan_ref.clone()).collect();
    let frefs: Vec<String> = lines
        .iter()
        .filter_map(|l| l.funder_loan_ref.clone())
        .collect();
    let loans = state
        .store()
        .funder_loans(&partner.code, &refs, &frefs)
        .await?;
    let by_ref: HashMap<&str, (i64, &str)> = loans
        .iter()
        .map(|l| (l.ref_.as_str(), (l.id, l.ref_.as_str())))
        .collect();
    let by_funder_ref: HashMap<&str, (i64, &str)> = loans
        .iter()
        .filter_map(|l| {
            l.funder_loan_ref
                .as_deref()
                .map(|f| (f, (l.id, l.ref_.as_str())))
        })
        .collect();
    let mut moves = Vec::with_capacity(lines.len());
    let mut stored = Vec::with_capacity(lines.len());
    for l in &lines {
        let found = l
            .loan_ref
            .as_deref()
            .and_then(|r| by_ref.get(r))
            .or_else(|| {
                l.funder_loan_ref
                    .as_deref()
                    .and_then(|r| by_funder_ref.get(r))
            })
            .copied();
        let key = match found {
            Some((_, r)) => r.to_owned(),
            None => l
                .loan_ref
                .clone()
                .or_else(|| {
                    l.funder_loan_ref
                        .clone()
                        .map(|f| format!("{}:{f}", partner.code))
                })
                .unwrap_or_default(),
        };
        moves.push(Movement {
            loan_ref: key,
            loan_id: found.map(|f| f.0),
            value_date: l.value_date,
            amount_fen: l.amount.as_fen(),
        });
        stored.push(NewLine {
            line_no: l.line_no,
            loan_ref: l.loan_ref.clone(),
            funder_loan_ref: l.funder_loan_ref.clone(),
            loan_id: found.map(|f| f.0),
            value_date: l.value_date.format("%Y-%m-%d").to_string(),
            amount_fen: l.amount.as_fen(),
            external_ref: l.external_ref.clone(),
        });
    }
    let from = lines.iter().map(|l| l.value_date).min().unwrap_or_default();
    let to = lines.iter().map(|l| l.value_date).max().unwrap_or_default();
    let (from_s, to_s) = (
        from.format("%Y-%m-%d").to_string(),
        to.format("%Y-%m-%d").to_string(),
    );
    let ours: Vec<Movement> = state
        .store()
        .funder_repayments(&partner.code, &from_s, &to_s)
        .await?
        .into_iter()
        .filter_map(|r| {
            Some(Movement {
                loan_ref: r.loan_ref,
                loan_id: Some(r.loan_id),
                value_date: NaiveDate::parse_from_str(&r.value_date, "%Y-%m-%d").ok()?,
                amount_fen: r.amount_fen,
            })
        })
        .collect();
    let m = reconcile(&moves, &ours);
    let breaks: Vec<NewBreak> = m
        .breaks
        .iter()
        .map(|b| NewBreak {
            kind: b.kind.code().into(),
            loan_id: b.loan_id,
            loan_ref: b.loan_ref.clone(),
            value_date: b.value_date.format("%Y-%m-%d").to_string(),
            funder_fen: b.funder_fen,
            ours_fen: b.ours_fen,
        })
        .collect();
    let funder_total: i64 = moves.iter().map(|m| m.amount_fen).sum();
    let ours_total: i64 = ours.iter().map(|m| m.amount_fen).sum();
    let now = state.now_ms();
    let mut tx = state.store().begin().await?;
    let Some(id) = st::file_insert(
        &mut tx,
        &partner.code,
        file_name,
        &digest,
        (&from_s, &to_s),
        m.matched as i64,
        (funder_total, ours_total),
        &stored,
        &breaks,
        &caller.username,
        now,
    )
    .await?
    else {
        tx.rollback().await?;
        let mut conn = state.store().writer().acquire().await?;
        let id = st::file_by_digest(&mut conn, &partner.code, &digest)
            .await?
            .ok_or_else(|| ApiError::Conflict("the file is being imported; try again".into()))?;
        return Ok(Imported {
            file_id: id,
            replayed: true,
        });
    };
    zhudai_store::audit::append(
        &mut tx,
        &audit_draft(caller, now, "recon.import", format!("recon_file:{id}")).reason(format!(
            "{} {file_name} ({} lines, {from_s}–{to_s}): {} matched, {} breaks",
            partner.code,
            lines.len(),
            m.matched,
            breaks.len()
        )),
    )
    .await?;
    tx.commit().await?;
    Ok(Imported {
        file_id: id,
        replayed: false,
    })
}

/// Resolves a break with a note (audited).
pub async fn resolve(
    state: &AppState,
    caller: &Caller,
    id: i64,
    note: &str,
) -> Result<(), ApiError> {
    let note = note.trim();
    if note.chars().count() < 4 {
        return Err(ApiError::field(
            "note",
            "required",
            "say how the break was resolved (at least a few words)",
        ));
    }
    let b = state
        .store()
        .recon_break(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no break has id {id}")))?;
    let now = state.now_ms();
    let mut tx = state.store().begin().await?;
    if !st::break_resolve(&mut tx, id, note, &caller.username, now).await? {
        return Err(ApiError::Conflict("the break is resolved already".into()));
    }
    zhudai_store::audit::append(
        &mut tx,
        &audit_draft(caller, now, "recon.resolve", format!("recon_break:{id}")).reason(format!(
            "{} {} {} funder {} ours {}: {note}",
            b.kind,
            b.loan_ref,
            b.value_date,
            Fen::new(b.funder_fen),
            Fen::new(b.ours_fen)
        )),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_english_and_chinese_headers_and_reports_bad_lines() {
        let ok = parse("loan_ref,value_date,amount,external_ref\nL1,2026-11-28,8884.88,T1\nL2,20261128,\"1,000.00\",\n".as_bytes()).unwrap();
        assert_eq!(ok.len(), 2);
        assert_eq!(ok[1].amount, Fen::new(100_000));
        let zh = parse("资金方借据号,还款日期,还款金额\nBA-1,2026/11/28,10\n".as_bytes()).unwrap();
        assert_eq!(zh[0].funder_loan_ref.as_deref(), Some("BA-1"));
        let Err(ApiError::Validation(errs)) = parse(
            "loan_ref,value_date,amount\nL1,tomorrow,10\n,2026-11-28,10\nL3,2026-11-28,-5\n"
                .as_bytes(),
        ) else {
            panic!("bad lines must be refused")
        };
        assert_eq!(
            errs.iter().map(|e| e.field.as_str()).collect::<Vec<_>>(),
            ["line 2", "line 3", "line 4"]
        );
        assert!(parse("loan_ref,amount\nL1,10\n".as_bytes()).is_err());
    }
}
