#!/usr/bin/env python3
"""Five-tier classification of a loan book computed independently with DuckDB.

zhudai's daily close classifies loans with set-based SQL on SQLite/PostgreSQL. This
script recomputes the same figures from raw exported rows, with DuckDB SQL written from
the rules (rules-cn.md), and compares them with what the close stored.

Usage: cob_duckdb.py DIR
DIR holds:
  params.json       {"business_date": "YYYY-MM-DD", "tolerance": 0, "substandard": 90,
                     "doubtful": 270, "loss": 360}
  loans.csv         loan_id,floor,ours_class,ours_dpd,ours_bucket      (open loans)
  installments.csv  loan_id,due_date,principal_due,principal_paid,interest_due,interest_paid,
                    fee_due,fee_paid,penalty_accrued,penalty_paid        (due before the date)
  observations.csv  loan_id,active,ends_on                               (restructurings)
Prints one JSON object: loans, mismatches (count), examples (first 10), by_tier (DuckDB's
counts), seconds (DuckDB's load and query time). Exit 3 when duckdb is missing.
"""
import json
import os
import sys
import time

try:
    import duckdb
except ImportError:
    sys.stderr.write("duckdb is not installed: run scripts/install-deps.sh\n")
    sys.exit(3)


def main():
    d = sys.argv[1]
    p = json.load(open(os.path.join(d, "params.json")))
    t0 = time.perf_counter()
    con = duckdb.connect()
    con.execute(
        "CREATE TABLE loans AS SELECT * FROM read_csv(?, header = true, columns = "
        "{'loan_id': 'BIGINT', 'floor': 'VARCHAR', 'ours_class': 'VARCHAR', 'ours_dpd': 'BIGINT', 'ours_bucket': 'VARCHAR'})",
        [os.path.join(d, "loans.csv")],
    )
    con.execute(
        "CREATE TABLE inst AS SELECT * FROM read_csv(?, header = true, columns = "
        "{'loan_id': 'BIGINT', 'due_date': 'DATE', 'principal_due': 'BIGINT', 'principal_paid': 'BIGINT', "
        "'interest_due': 'BIGINT', 'interest_paid': 'BIGINT', 'fee_due': 'BIGINT', 'fee_paid': 'BIGINT', "
        "'penalty_accrued': 'BIGINT', 'penalty_paid': 'BIGINT'})",
        [os.path.join(d, "installments.csv")],
    )
    con.execute(
        "CREATE TABLE obs AS SELECT * FROM read_csv(?, header = true, columns = "
        "{'loan_id': 'BIGINT', 'active': 'BIGINT', 'ends_on': 'DATE'})",
        [os.path.join(d, "observations.csv")],
    )
    t1 = time.perf_counter()
    # The rules: an installment is overdue on the business date when it fell due before
    # it and something (principal, interest, fee or penalty) is still owed on it; DPD is
    # the age of the oldest overdue one; tier = max(floor by DPD, manual floor, 关注 while
    # a restructured loan is under observation).
    rows = con.execute(
        """
        WITH oldest AS (
            SELECT loan_id, MIN(due_date) AS due
            FROM inst
            WHERE due_date < CAST(? AS DATE)
              AND (principal_due - principal_paid) + (interest_due - interest_paid)
                + (fee_due - fee_paid) + (penalty_accrued - penalty_paid) > 0
            GROUP BY loan_id
        ),
        facts AS (
            SELECT l.loan_id, l.floor, l.ours_class, l.ours_dpd, l.ours_bucket,
                   COALESCE(date_diff('day', o.due, CAST(? AS DATE)), 0) AS dpd,
                   EXISTS (SELECT 1 FROM obs b WHERE b.loan_id = l.loan_id AND b.active = 1
                           AND b.ends_on >= CAST(? AS DATE)) AS observed
            FROM loans l LEFT JOIN oldest o ON o.loan_id = l.loan_id
        ),
        ranked AS (
            SELECT *,
                   greatest(
                     CASE WHEN dpd > ? THEN 4 WHEN dpd > ? THEN 3 WHEN dpd > ? THEN 2
                          WHEN dpd > ? THEN 1 ELSE 0 END,
                     CASE floor WHEN 'special_mention' THEN 1 WHEN 'substandard' THEN 2
                          WHEN 'doubtful' THEN 3 WHEN 'loss' THEN 4 ELSE 0 END,
                     CASE WHEN observed THEN 1 ELSE 0 END) AS rank,
                   CASE WHEN dpd = 0 THEN 'M0' WHEN dpd <= 30 THEN 'M1' WHEN dpd <= 60 THEN 'M2'
                        WHEN dpd <= 90 THEN 'M3' WHEN dpd <= 120 THEN 'M4' WHEN dpd <= 150 THEN 'M5'
                        ELSE 'M6+' END AS bucket
            FROM facts
        )
        SELECT loan_id, dpd, bucket,
               ['normal', 'special_mention', 'substandard', 'doubtful', 'loss'][rank + 1] AS tier,
               ours_class, ours_dpd, ours_bucket
        FROM ranked
        """,
        [
            p["business_date"],
            p["business_date"],
            p["business_date"],
            p["loss"],
            p["doubtful"],
            p["substandard"],
            p["tolerance"],
        ],
    ).fetchall()
    t2 = time.perf_counter()
    mismatches = [
        r for r in rows if r[3] != r[4] or r[1] != r[5] or r[2] != r[6]
    ]
    by_tier = {}
    for r in rows:
        by_tier[r[3]] = by_tier.get(r[3], 0) + 1
    print(
        json.dumps(
            {
                "loans": len(rows),
                "mismatches": len(mismatches),
                "examples": [
                    {"loan_id": r[0], "duckdb": [r[1], r[2], r[3]], "ours": [r[5], r[6], r[4]]}
                    for r in mismatches[:10]
                ],
                "by_tier": by_tier,
                "load_seconds": t1 - t0,
                "query_seconds": t2 - t1,
            }
        )
    )


if __name__ == "__main__":
    main()
