//! Collections (issue #8 item 4): cases (opened and moved by the daily close), the
//! contact log with its per-debtor daily counter, assignment to collectors and to
//! outsourced agencies (commission on what was recovered), and closure.

use crate::db::Store;
use crate::error::StoreError;
use rust_decimal::Decimal;
use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};
use zhudai_domain::money::Fen;

/// A case with what the queue shows of its loan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CaseRow {
    pub id: i64,
    pub loan_id: i64,
    pub loan_ref: String,
    pub customer_id: i64,
    pub customer_name: String,
    pub owner_user_id: i64,
    pub org_unit_id: Option<i64>,
    pub bucket: String,
    pub state: String,
    pub opened_on: String,
    pub assignee_user_id: Option<i64>,
    pub assignee_name: Option<String>,
    pub agency_code: Option<String>,
    pub promised_amount_fen: Option<i64>,
    pub promised_date: Option<String>,
    pub contacts: i64,
    pub last_contact_at_ms: Option<i64>,
    pub closed_on: Option<String>,
    pub close_reason: Option<String>,
    pub closed_by: Option<String>,
    pub close_note: Option<String>,
    pub version: i64,
    pub dpd: i64,
    pub principal_outstanding_fen: i64,
    pub penalty_outstanding_fen: i64,
    pub funder_code: String,
}

const CASE_COLUMNS: &str = "c.id, c.loan_id, l.ref AS loan_ref, c.customer_id, cu.name AS customer_name, c.owner_user_id, \
    c.org_unit_id, c.bucket, c.state, c.opened_on, c.assignee_user_id, u.display_name AS assignee_name, c.agency_code, \
    c.promised_amount_fen, c.promised_date, c.contacts, c.last_contact_at_ms, c.closed_on, c.close_reason, c.closed_by, \
    c.close_note, c.version, l.dpd, l.principal_outstanding_fen, l.penalty_outstanding_fen, l.funder_code";

const CASE_FROM: &str = "collection_cases c JOIN loans l ON l.id = c.loan_id JOIN customers cu ON cu.id = c.customer_id \
    LEFT JOIN users u ON u.id = c.assignee_user_id";

fn case_row(r: &AnyRow) -> Result<CaseRow, StoreError> {
    Ok(CaseRow {
        id: r.try_get("id")?,
        loan_id: r.try_get("loan_id")?,
        loan_ref: r.try_get("loan_ref")?,
        customer_id: r.try_get("customer_id")?,
        customer_name: r.try_get("customer_name")?,
        owner_user_id: r.try_get("owner_user_id")?,
        org_unit_id: r.try_get("org_unit_id")?,
        bucket: r.try_get("bucket")?,
        state: r.try_get("state")?,
        opened_on: r.try_get("opened_on")?,
        assignee_user_id: r.try_get("assignee_user_id")?,
        assignee_name: r.try_get("assignee_name")?,
        agency_code: r.try_get("agency_code")?,
        promised_amount_fen: r.try_get("promised_amount_fen")?,
        promised_date: r.try_get("promised_date")?,
        contacts: r.try_get("contacts")?,
        last_contact_at_ms: r.try_get("last_contact_at_ms")?,
        closed_on: r.try_get("closed_on")?,
        close_reason: r.try_get("close_reason")?,
        closed_by: r.try_get("closed_by")?,
        close_note: r.try_get("close_note")?,
        version: r.try_get("version")?,
        dpd: r.try_get("dpd")?,
        principal_outstanding_fen: r.try_get("principal_outstanding_fen")?,
        penalty_outstanding_fen: r.try_get("penalty_outstanding_fen")?,
        funder_code: r.try_get("funder_code")?,
    })
}

/// Which cases a caller sees: all, those of some org units plus those assigned to them,
/// or only those assigned to them (a collector's "own" scope).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaseScope {
    All,
    Units { units: Vec<i64>, me: i64 },
    Assigned(i64),
}

impl CaseScope {
    pub fn admits(&self, case: &CaseRow) -> bool {
        match self {
            CaseScope::All => true,
            CaseScope::Units { units, me } => {
                case.assignee_user_id == Some(*me)
                    || case.org_unit_id.is_some_and(|u| units.contains(&u))
            }
            CaseScope::Assigned(me) => case.assignee_user_id == Some(*me),
        }
    }

    fn sql(&self, binds: &mut Vec<i64>) -> String {
        match self {
            CaseScope::All => String::new(),
            CaseScope::Assigned(me) => {
                binds.push(*me);
                format!(" AND c.assignee_user_id = ${}", binds.len())
            }
            CaseScope::Units { units, me } => {
                binds.push(*me);
                let mut s = format!(" AND (c.assignee_user_id = ${}", binds.len());
                if !units.is_empty() {
                    let marks: Vec<String> = units
                        .iter()
                        .map(|u| {
                            binds.push(*u);
                            format!("${}", binds.len())
                        })
                        .collect();
                    s.push_str(&format!(" OR c.org_unit_id IN ({})", marks.join(", ")));
                }
                s.push(')');
                s
            }
        }
    }
}

/// Whom a queue shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Assignee {
    Any,
    Unassigned,
    User(i64),
}

/// A queue.
#[derive(Debug, Clone)]
pub struct CaseFilter {
    pub scope: CaseScope,
    /// `open` or `closed`.
    pub state: String,
    pub bucket: Option<String>,
    pub assignee: Assignee,
    pub agency: Option<String>,
    pub limit: i64,
    pub offset: i64,
}

/// One logged contact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContactRow {
    pub id: i64,
    pub case_id: i64,
    pub at_ms: i64,
    pub local_date: String,
    pub channel: String,
    pub outcome: String,
    pub promised_amount_fen: Option<i64>,
    pub promised_date: Option<String>,
    pub note: Option<String>,
    pub user_name: String,
    pub agency_code: Option<String>,
}

/// A contact to log.
#[derive(Debug, Clone)]
pub struct NewContact<'a> {
    pub case_id: i64,
    pub loan_id: i64,
    pub customer_id: i64,
    pub at_ms: i64,
    pub local_date: &'a str,
    pub channel: &'a str,
    pub outcome: &'a str,
    pub promised_amount_fen: Option<i64>,
    pub promised_date: Option<&'a str>,
    pub note: Option<&'a str>,
    pub user_id: i64,
    pub user_name: &'a str,
    pub agency_code: Option<&'a str>,
}

/// An agency assignment, with what it recovered so far (frozen once ended).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AssignmentRow {
    pub id: i64,
    pub case_id: i64,
    pub loan_id: i64,
    pub agency_code: String,
    pub commission_rate: String,
    pub assigned_on: String,
    pub ended_on: Option<String>,
    pub active: bool,
    pub recovered_fen: i64,
    pub commission_fen: i64,
    pub assigned_by: String,
}

/// Per agency: cases held now and all-time recovered and commission.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AgencySummary {
    pub agency_code: String,
    pub name: String,
    pub commission_rate: Option<String>,
    pub active_cases: i64,
    pub assignments: i64,
    pub recovered_fen: i64,
    pub commission_fen: i64,
}

/// Recovered during an assignment: the loan's posted repayments with a value date from
/// the assignment day to its end (or `today`).
const RECOVERED_SQL: &str = "CAST(COALESCE((SELECT SUM(r.amount_fen) FROM repayments r WHERE r.loan_id = a.loan_id \
    AND r.status = 'posted' AND r.value_date >= a.assigned_on AND r.value_date <= COALESCE(a.ended_on, $1)), 0) AS BIGINT)";

fn assignment_row(r: &AnyRow) -> Result<AssignmentRow, StoreError> {
    let active = r.try_get::<Option<i64>, _>("active_flag")?.is_some();
    let rate: String = r.try_get("commission_rate")?;
    let live: i64 = r.try_get("live_recovered")?;
    let frozen: Option<i64> = r.try_get("recovered_fen")?;
    let recovered = if active { live } else { frozen.unwrap_or(live) };
    let commission = match (active, r.try_get::<Option<i64>, _>("commission_fen")?) {
        (false, Some(c)) => c,
        _ => zhudai_domain::collection::commission(
            Fen::new(recovered),
            rate.parse::<Decimal>().unwrap_or(Decimal::ZERO),
        )
        .as_fen(),
    };
    Ok(AssignmentRow {
        id: r.try_get("id")?,
        case_id: r.try_get("case_id")?,
        loan_id: r.try_get("loan_id")?,
        agency_code: r.try_get("agency_code")?,
        commission_rate: rate,
        assigned_on: r.try_get("assigned_on")?,
        ended_on: r.try_get("ended_on")?,
        active,
        recovered_fen: recovered,
        commission_fen: commission,
        assigned_by: r.try_get("assigned_by")?,
    })
}

/// Counts one more contact of a debtor on a local day, unless `limit` were exceeded.
/// One statement: two collectors at once cannot both take the last free slot. Returns
/// the new count, or `None` at the limit.
pub async fn contact_slot(
    conn: &mut AnyConnection,
    customer_id: i64,
    local_date: &str,
    limit: i64,
) -> Result<Option<i64>, StoreError> {
    Ok(sqlx::query_scalar(
        "INSERT INTO collection_contact_days (customer_id, local_date, contacts) VALUES ($1, $2, 1)
         ON CONFLICT (customer_id, local_date) DO UPDATE SET contacts = collection_contact_days.contacts + 1
           WHERE collection_contact_days.contacts < $3
         RETURNING contacts",
    )
    .bind(customer_id)
    .bind(local_date)
    .bind(limit)
    .fetch_optional(&mut *conn)
    .await?)
}

/// Contacts of a debtor logged on a local day.
pub async fn contacts_on(
    conn: &mut AnyConnection,
    customer_id: i64,
    local_date: &str,
) -> Result<i64, StoreError> {
    Ok(sqlx::query_scalar::<_, i64>(
        "SELECT COALESCE(MAX(contacts), 0) FROM collection_contact_days WHERE customer_id = $1 AND local_date = $2",
    )
    .bind(customer_id)
    .bind(local_date)
    .fetch_one(&mut *conn)
    .await?)
}

pub async fn contact_insert(
    conn: &mut AnyConnection,
    c: &NewContact<'_>,
) -> Result<i64, StoreError> {
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO collection_contacts (case_id, loan_id, customer_id, at_ms, local_date, channel, outcome,
            promised_amount_fen, promised_date, note, user_id, user_name, agency_code)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) RETURNING id",
    )
    .bind(c.case_id)
    .bind(c.loan_id)
    .bind(c.customer_id)
    .bind(c.at_ms)
    .bind(c.local_date)
    .bind(c.channel)
    .bind(c.outcome)
    .bind(c.promised_amount_fen)
    .bind(c.promised_date)
    .bind(c.note)
    .bind(c.user_id)
    .bind(c.user_name)
    .bind(c.agency_code)
    .fetch_one(&mut *conn)
    .await?;
    sqlx::query(
        "UPDATE collection_cases SET contacts = contacts + 1, last_contact_at_ms = $2,
            promised_amount_fen = CASE WHEN $3 IS NULL THEN promised_amount_fen ELSE $3 END,
            promised_date = CASE WHEN $4 IS NULL THEN promised_date ELSE $4 END,
            version = version + 1, updated_at_ms = $2
         WHERE id = $1",
    )
    .bind(c.case_id)
    .bind(c.at_ms)
    .bind(c.promised_amount_fen)
    .bind(c.promised_date)
    .execute(&mut *conn)
    .await?;
    Ok(id)
}

/// Assigns an open case to a collector (or unassigns with `None`); false when the case
/// is not open or its version moved.
pub async fn case_assign(
    conn: &mut AnyConnection,
    case_id: i64,
    user: Option<i64>,
    version: Option<i64>,
    now_ms: i64,
) -> Result<bool, StoreError> {
    let n = sqlx::query(
        "UPDATE collection_cases SET assignee_user_id = $2, version = version + 1, updated_at_ms = $3
         WHERE id = $1 AND state = 'open' AND ($4 IS NULL OR version = $4)",
    )
    .bind(case_id)
    .bind(user)
    .bind(now_ms)
    .bind(version)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    Ok(n == 1)
}

/// Hands an open case to an agency; `None` when it is with an agency already.
#[allow(clippy::too_many_arguments)]
pub async fn agency_assign(
    conn: &mut AnyConnection,
    case_id: i64,
    loan_id: i64,
    agency: &str,
    rate: &str,
    on: &str,
    by: &str,
    now_ms: i64,
) -> Result<Option<i64>, StoreError> {
    let id: Option<i64> = sqlx::query_scalar(
        "INSERT INTO collection_agency_assignments (case_id, loan_id, agency_code, commission_rate, assigned_on,
            active_flag, assigned_by, created_at_ms)
         VALUES ($1, $2, $3, $4, $5, 1, $6, $7)
         ON CONFLICT (case_id, active_flag) DO NOTHING RETURNING id",
    )
    .bind(case_id)
    .bind(loan_id)
    .bind(agency)
    .bind(rate)
    .bind(on)
    .bind(by)
    .bind(now_ms)
    .fetch_optional(&mut *conn)
    .await?;
    if id.is_some() {
        sqlx::query("UPDATE collection_cases SET agency_code = $2, version = version + 1, updated_at_ms = $3 WHERE id = $1")
            .bind(case_id)
            .bind(agency)
            .bind(now_ms)
            .execute(&mut *conn)
            .await?;
    }
    Ok(id)
}

/// Ends a case's active agency assignment on `on`, freezing recovered and commission;
/// returns it (None when there was none).
pub async fn agency_end(
    conn: &mut AnyConnection,
    case_id: i64,
    on: &str,
    by: &str,
    now_ms: i64,
) -> Result<Option<AssignmentRow>, StoreError> {
    let r = sqlx::query(&format!(
        "SELECT a.*, {RECOVERED_SQL} AS live_recovered FROM collection_agency_assignments a
          WHERE a.case_id = $2 AND a.active_flag = 1"
    ))
    .bind(on)
    .bind(case_id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(r) = r else { return Ok(None) };
    let mut row = assignment_row(&r)?;
    sqlx::query(
        "UPDATE collection_agency_assignments SET active_flag = NULL, ended_on = $2, ended_by = $3,
            recovered_fen = $4, commission_fen = $5 WHERE id = $1",
    )
    .bind(row.id)
    .bind(on)
    .bind(by)
    .bind(row.recovered_fen)
    .bind(row.commission_fen)
    .execute(&mut *conn)
    .await?;
    sqlx::query("UPDATE collection_cases SET agency_code = NULL, version = version + 1, updated_at_ms = $2 WHERE id = $1")
        .bind(case_id)
        .bind(now_ms)
        .execute(&mut *conn)
        .await?;
    row.active = false;
    row.ended_on = Some(on.to_owned());
    Ok(Some(row))
}

/// Closes an open case; false when it was not open.
pub async fn case_close(
    conn: &mut AnyConnection,
    case_id: i64,
    reason: &str,
    note: &str,
    by: &str,
    on: &str,
    now_ms: i64,
) -> Result<bool, StoreError> {
    let n = sqlx::query(
        "UPDATE collection_cases SET state = 'closed', open_flag = NULL, closed_on = $2, close_reason = $3,
            close_note = $4, closed_by = $5, version = version + 1, updated_at_ms = $6
         WHERE id = $1 AND state = 'open'",
    )
    .bind(case_id)
    .bind(on)
    .bind(reason)
    .bind(note)
    .bind(by)
    .bind(now_ms)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    Ok(n == 1)
}

/// A collection agency's default commission rate; false when the code is no agency.
pub async fn set_agency_rate(
    conn: &mut AnyConnection,
    code: &str,
    rate: &str,
) -> Result<bool, StoreError> {
    let n = sqlx::query(
        "UPDATE partners SET commission_rate = $2 WHERE code = $1 AND kind = 'collection_agency'",
    )
    .bind(code)
    .bind(rate)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    Ok(n == 1)
}

pub async fn case_lock(
    conn: &mut AnyConnection,
    case_id: i64,
) -> Result<Option<CaseRow>, StoreError> {
    sqlx::query("UPDATE collection_cases SET version = version WHERE id = $1")
        .bind(case_id)
        .execute(&mut *conn)
        .await?;
    let r = sqlx::query(&format!(
        "SELECT {CASE_COLUMNS} FROM {CASE_FROM} WHERE c.id = $1"
    ))
    .bind(case_id)
    .fetch_optional(&mut *conn)
    .await?;
    r.as_ref().map(case_row).transpose()
}

impl Store {
    /// A queue page, oldest-opened first, and the total.
    pub async fn cases(&self, f: &CaseFilter) -> Result<(Vec<CaseRow>, i64), StoreError> {
        let mut binds: Vec<i64> = Vec::new();
        let mut strs: Vec<(usize, String)> = Vec::new();
        let mut cond = String::from(" WHERE 1 = 1");
        strs.push((0, f.state.clone()));
        cond.push_str(" AND c.state = $STATE");
        if let Some(b) = &f.bucket {
            strs.push((0, b.clone()));
            cond.push_str(" AND c.bucket = $BUCKET");
        }
        if let Some(a) = &f.agency {
            strs.push((0, a.clone()));
            cond.push_str(" AND c.agency_code = $AGENCY");
        }
        match f.assignee {
            Assignee::Any => {}
            Assignee::Unassigned => cond.push_str(" AND c.assignee_user_id IS NULL"),
            Assignee::User(u) => {
                binds.push(u);
                cond.push_str(&format!(" AND c.assignee_user_id = ${}", binds.len()));
            }
        }
        cond.push_str(&f.scope.sql(&mut binds));
        // The text parameters follow the integer ones.
        let mut n = binds.len();
        for key in ["$STATE", "$BUCKET", "$AGENCY"] {
            if cond.contains(key) {
                n += 1;
                cond = cond.replace(key, &format!("${n}"));
            }
        }
        let texts: Vec<String> = strs.into_iter().map(|(_, s)| s).collect();
        let total_sql = format!("SELECT COUNT(*) FROM collection_cases c{cond}");
        let mut q = sqlx::query_scalar::<_, i64>(&total_sql);
        for b in &binds {
            q = q.bind(*b);
        }
        for t in &texts {
            q = q.bind(t.as_str());
        }
        let total = q.fetch_one(self.reader()).await?;
        let list_sql = format!(
            "SELECT {CASE_COLUMNS} FROM {CASE_FROM}{cond} ORDER BY l.dpd DESC, c.id LIMIT {} OFFSET {}",
            f.limit.clamp(1, 1000),
            f.offset.max(0)
        );
        let mut q = sqlx::query(&list_sql);
        for b in &binds {
            q = q.bind(*b);
        }
        for t in &texts {
            q = q.bind(t.as_str());
        }
        let rows = q.fetch_all(self.reader()).await?;
        Ok((rows.iter().map(case_row).collect::<Result<_, _>>()?, total))
    }

    /// Open cases in scope per bucket.
    pub async fn case_counts(&self, scope: &CaseScope) -> Result<Vec<(String, i64)>, StoreError> {
        let mut binds = Vec::new();
        let cond = scope.sql(&mut binds);
        let sql = format!(
            "SELECT c.bucket, COUNT(*) AS n FROM collection_cases c WHERE c.state = 'open'{cond} GROUP BY c.bucket ORDER BY c.bucket"
        );
        let mut q = sqlx::query(&sql);
        for b in &binds {
            q = q.bind(*b);
        }
        let rows = q.fetch_all(self.reader()).await?;
        rows.iter()
            .map(|r| Ok((r.try_get("bucket")?, r.try_get("n")?)))
            .collect()
    }

    pub async fn case(&self, id: i64) -> Result<Option<CaseRow>, StoreError> {
        let r = sqlx::query(&format!(
            "SELECT {CASE_COLUMNS} FROM {CASE_FROM} WHERE c.id = $1"
        ))
        .bind(id)
        .fetch_optional(self.reader())
        .await?;
        r.as_ref().map(case_row).transpose()
    }

    pub async fn cases_of_loan(&self, loan_id: i64) -> Result<Vec<CaseRow>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {CASE_COLUMNS} FROM {CASE_FROM} WHERE c.loan_id = $1 ORDER BY c.id DESC"
        ))
        .bind(loan_id)
        .fetch_all(self.reader())
        .await?;
        rows.iter().map(case_row).collect()
    }

    pub async fn contacts_of(&self, case_id: i64) -> Result<Vec<ContactRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, case_id, at_ms, local_date, channel, outcome, promised_amount_fen, promised_date, note,
                user_name, agency_code FROM collection_contacts WHERE case_id = $1 ORDER BY id DESC",
        )
        .bind(case_id)
        .fetch_all(self.reader())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(ContactRow {
                    id: r.try_get("id")?,
                    case_id: r.try_get("case_id")?,
                    at_ms: r.try_get("at_ms")?,
                    local_date: r.try_get("local_date")?,
                    channel: r.try_get("channel")?,
                    outcome: r.try_get("outcome")?,
                    promised_amount_fen: r.try_get("promised_amount_fen")?,
                    promised_date: r.try_get("promised_date")?,
                    note: r.try_get("note")?,
                    user_name: r.try_get("user_name")?,
                    agency_code: r.try_get("agency_code")?,
                })
            })
            .collect()
    }

    /// A case's agency assignments, newest first, recovered counted through `today`.
    pub async fn assignments_of(
        &self,
        case_id: i64,
        today: &str,
    ) -> Result<Vec<AssignmentRow>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT a.*, {RECOVERED_SQL} AS live_recovered FROM collection_agency_assignments a
              WHERE a.case_id = $2 ORDER BY a.id DESC"
        ))
        .bind(today)
        .bind(case_id)
        .fetch_all(self.reader())
        .await?;
        rows.iter().map(assignment_row).collect()
    }

    /// Every collection agency with its cases, recoveries and commission to date.
    pub async fn agency_summaries(&self, today: &str) -> Result<Vec<AgencySummary>, StoreError> {
        let agencies = sqlx::query(
            "SELECT code, name_zh, commission_rate FROM partners WHERE kind = 'collection_agency' ORDER BY code",
        )
        .fetch_all(self.reader())
        .await?;
        let rows = sqlx::query(&format!(
            "SELECT a.*, {RECOVERED_SQL} AS live_recovered FROM collection_agency_assignments a ORDER BY a.id"
        ))
        .bind(today)
        .fetch_all(self.reader())
        .await?;
        let all: Vec<AssignmentRow> = rows.iter().map(assignment_row).collect::<Result<_, _>>()?;
        agencies
            .iter()
            .map(|r| {
                let code: String = r.try_get("code")?;
                let mine: Vec<&AssignmentRow> =
                    all.iter().filter(|a| a.agency_code == code).collect();
                Ok(AgencySummary {
                    name: r.try_get("name_zh")?,
                    commission_rate: r.try_get("commission_rate")?,
                    active_cases: mine.iter().filter(|a| a.active).count() as i64,
                    assignments: mine.len() as i64,
                    recovered_fen: mine.iter().map(|a| a.recovered_fen).sum(),
                    commission_fen: mine.iter().map(|a| a.commission_fen).sum(),
                    agency_code: code,
                })
            })
            .collect()
    }

    /// A collection agency's default commission rate; `Err(NotFound)` when the code is
    /// not an agency.
    pub async fn agency_rate(&self, code: &str) -> Result<Option<String>, StoreError> {
        let r = sqlx::query(
            "SELECT commission_rate FROM partners WHERE code = $1 AND kind = 'collection_agency'",
        )
        .bind(code)
        .fetch_optional(self.reader())
        .await?
        .ok_or(StoreError::NotFound)?;
        Ok(r.try_get("commission_rate")?)
    }

    /// Active users whose roles may work collection cases: (id, display name).
    pub async fn collectors(&self) -> Result<Vec<(i64, String)>, StoreError> {
        let rows = sqlx::query(
            "SELECT DISTINCT u.id, u.display_name FROM users u JOIN user_roles ur ON ur.user_id = u.id
               JOIN role_permissions rp ON rp.role_id = ur.role_id
              WHERE rp.permission = 'collection.work' AND u.status = 'active' ORDER BY u.display_name, u.id",
        )
        .fetch_all(self.reader())
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("id")?, r.try_get("display_name")?)))
            .collect()
    }
}
