//! Products, versions and quotes on SQLite and on PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use rust_decimal_macros::dec;
use zhudai_domain::money::{Fen, Rate};
use zhudai_domain::product::{Eligibility, ProductSpec, ProductStatus};
use zhudai_domain::schedule::{DayCount, RepaymentMethod};
use zhudai_store::audit::{AuditDraft, AuditFilter};
use zhudai_store::on_both;
use zhudai_store::products::{NewQuote, NewVersion};
use zhudai_store::testing::TestDb;

on_both!(
    versions_are_numbered_and_immutable,
    code_is_unique_and_failed_writes_leave_no_audit,
    status_changes_are_conditional,
    quotes_are_frozen,
);

fn spec(rate: &str) -> ProductSpec {
    ProductSpec {
        methods: vec![
            RepaymentMethod::EqualInstallment,
            RepaymentMethod::EqualPrincipal,
        ],
        min_months: 6,
        max_months: 24,
        min_amount: Fen::from_yuan(1_000).unwrap(),
        max_amount: Fen::from_yuan(100_000).unwrap(),
        annual_rate: Rate::parse(rate).unwrap(),
        day_count: DayCount::Actual365,
        fees: vec![],
        penalty_markup: dec!(0.3),
        eligibility: Eligibility::default(),
        funder_codes: vec!["bank_a".into(), "cfc_b".into()],
    }
}

fn version<'a>(s: &'a ProductSpec, check: &'a serde_json::Value) -> NewVersion<'a> {
    NewVersion {
        spec: s,
        worst_apr: "0.180000",
        apr_cap: "0.24",
        cap_check: check,
        note: Some("first"),
        created_by: "pm",
    }
}

fn draft(action: &str) -> AuditDraft {
    AuditDraft::new(1_000, action, "success").actor("pm")
}

async fn audit_count(db: &TestDb, action: &str) -> i64 {
    db.store
        .audit_count(&AuditFilter {
            action_prefix: Some(action.into()),
            ..Default::default()
        })
        .await
        .unwrap()
}

async fn versions_are_numbered_and_immutable(db: &TestDb) {
    let s = &db.store;
    let check = serde_json::json!({"worst": {"apr": "0.18"}});
    let v1 = spec("0.18");
    let (p, first) = s
        .product_create(
            "consumer",
            "消费贷",
            &version(&v1, &check),
            &draft("product.create"),
            10,
        )
        .await
        .unwrap();
    assert_eq!((p.current_version, first.version), (1, 1));
    assert_eq!(p.status, ProductStatus::Draft);
    assert_eq!(first.spec, v1, "the spec round-trips exactly");
    let v2 = spec("0.16");
    let second = s
        .product_add_version(
            "consumer",
            Some("消费贷 II"),
            &version(&v2, &check),
            &draft("product.version"),
            20,
        )
        .await
        .unwrap();
    assert_eq!(second.version, 2);
    let versions = s.product_versions(p.id).await.unwrap();
    assert_eq!(
        versions.iter().map(|v| v.version).collect::<Vec<_>>(),
        vec![2, 1]
    );
    assert_eq!(
        versions[1].spec.annual_rate,
        Rate::parse("0.18").unwrap(),
        "version 1 unchanged"
    );
    assert_eq!(
        s.product_version(p.id, None)
            .await
            .unwrap()
            .unwrap()
            .version,
        2
    );
    assert_eq!(
        s.product_version(p.id, Some(1))
            .await
            .unwrap()
            .unwrap()
            .spec,
        v1
    );
    assert!(s.product_version(p.id, Some(3)).await.unwrap().is_none());
    let p = s.product_by_code("consumer").await.unwrap().unwrap();
    assert_eq!((p.name.as_str(), p.current_version), ("消费贷 II", 2));
    // The database refuses to edit or delete a version.
    let upd = zhudai_store::sqlx::query(
        "UPDATE product_versions SET annual_rate = '0.01' WHERE version = 1",
    )
    .execute(s.writer())
    .await;
    assert!(upd.is_err(), "versions must be append-only");
    let del = zhudai_store::sqlx::query("DELETE FROM product_versions")
        .execute(s.writer())
        .await;
    assert!(del.is_err());
    assert_eq!(audit_count(db, "product.").await, 2);
    // Concurrent saves get distinct consecutive numbers.
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let store = s.clone();
        let spec = v2.clone();
        tasks.push(tokio::spawn(async move {
            let check = serde_json::json!({});
            store
                .product_add_version(
                    "consumer",
                    None,
                    &version(&spec, &check),
                    &draft("product.version"),
                    30,
                )
                .await
                .unwrap()
                .version
        }));
    }
    let mut got = Vec::new();
    for t in tasks {
        got.push(t.await.unwrap());
    }
    got.sort_unstable();
    assert_eq!(got, (3..=8).collect::<Vec<_>>());
}

async fn code_is_unique_and_failed_writes_leave_no_audit(db: &TestDb) {
    let s = &db.store;
    let check = serde_json::json!({});
    let v = spec("0.18");
    s.product_create(
        "biz",
        "经营贷",
        &version(&v, &check),
        &draft("product.create"),
        1,
    )
    .await
    .unwrap();
    let err = s
        .product_create(
            "biz",
            "again",
            &version(&v, &check),
            &draft("product.create"),
            2,
        )
        .await
        .unwrap_err();
    assert!(
        err.is_unique_violation("products_code_key", "products.code"),
        "{err:?}"
    );
    assert_eq!(
        audit_count(db, "product.create").await,
        1,
        "the failed create left no audit record"
    );
    let err = s
        .product_add_version(
            "nope",
            None,
            &version(&v, &check),
            &draft("product.version"),
            3,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, zhudai_store::StoreError::NotFound));
    assert_eq!(audit_count(db, "product.version").await, 0);
    assert_eq!(s.products().await.unwrap().len(), 1);
}

async fn status_changes_are_conditional(db: &TestDb) {
    let s = &db.store;
    let check = serde_json::json!({});
    let v = spec("0.18");
    s.product_create(
        "p1",
        "P1",
        &version(&v, &check),
        &draft("product.create"),
        1,
    )
    .await
    .unwrap();
    use ProductStatus::*;
    assert!(s
        .product_set_status("p1", Draft, Active, &draft("product.status"), 2)
        .await
        .unwrap());
    // Stale expectation: nothing changes, nothing is audited.
    assert!(!s
        .product_set_status("p1", Draft, Retired, &draft("product.status"), 3)
        .await
        .unwrap());
    assert_eq!(
        s.product_by_code("p1").await.unwrap().unwrap().status,
        Active
    );
    assert_eq!(audit_count(db, "product.status").await, 1);
}

async fn quotes_are_frozen(db: &TestDb) {
    let s = &db.store;
    let check = serde_json::json!({});
    let v = spec("0.18");
    let (p, pv) = s
        .product_create("q", "Q", &version(&v, &check), &draft("product.create"), 1)
        .await
        .unwrap();
    let snapshot = r#"{"apr":"0.1800"}"#;
    let id = s
        .quote_create(
            &NewQuote {
                product_id: p.id,
                product_version_id: pv.id,
                amount: Fen::from_yuan(5_000).unwrap(),
                months: 12,
                method: "equal_installment",
                start_date: "2026-01-10",
                apr: "0.1800",
                snapshot,
                digest: "abc",
                created_by: "cm",
            },
            &draft("quote.create"),
            5,
        )
        .await
        .unwrap();
    let q = s.quote_by_id(id).await.unwrap().unwrap();
    assert_eq!(
        (q.product_code.as_str(), q.version, q.snapshot.as_str()),
        ("q", 1, snapshot)
    );
    assert_eq!(q.amount, Fen::from_yuan(5_000).unwrap());
    assert!(s.quote_by_id(id + 1).await.unwrap().is_none());
    let upd = zhudai_store::sqlx::query("UPDATE quotes SET apr = '0.01'")
        .execute(s.writer())
        .await;
    assert!(upd.is_err(), "quotes must be append-only");
    let rec = s
        .audit_search(
            &AuditFilter {
                action_prefix: Some("quote.".into()),
                ..Default::default()
            },
            None,
            10,
        )
        .await
        .unwrap();
    assert_eq!(
        rec.records[0].target.as_deref(),
        Some(format!("quote:{id}").as_str())
    );
}
