//! Bulk customer import and export: the engine (lenient, strict, dry run, idempotent
//! re-import, partial updates, scope), the HTTP import job and its error report, and
//! exports (masking, approval threshold, four eyes, one download).

use crate::support::TestApp;
use std::sync::Arc;
use zhudai_domain::generate;
use zhudai_server::import::engine::ImportOptions;
use zhudai_server::import::{Engine, Outcome, Table};
use zhudai_store::customers::{CustomerQuery, ScopeFilter};
use zhudai_store::imports::{self as db, NewImport};
use zhudai_store::testing::TestDb;

struct Person {
    name: &'static str,
    id: String,
    phone: String,
}

fn people(n: u64) -> Vec<Person> {
    const NAMES: [&str; 6] = ["张三", "李四", "王五", "赵六", "钱七", "孙八"];
    (0..n)
        .map(|i| Person {
            name: NAMES[(i % 6) as usize],
            id: generate::resident_id(1000 + i).as_str().to_owned(),
            phone: generate::mobile(1000 + i).as_str().to_owned(),
        })
        .collect()
}

/// A CSV with Chinese headers: the people, then a bad checksum, a bad phone, and a
/// repeat of the first person.
fn csv_with_bad_rows(ps: &[Person]) -> String {
    let mut s = String::from("客户类型,姓名,证件号码,手机号,月收入\n");
    for p in ps {
        s.push_str(&format!("个人,{},{},{},12000.00\n", p.name, p.id, p.phone));
    }
    let mut bad = ps[0].id.clone();
    let last = bad.pop().unwrap();
    bad.push(if last == '1' { '2' } else { '1' });
    s.push_str(&format!("个人,坏校验,{bad},13800138000,\n"));
    s.push_str(&format!(
        "个人,坏手机,{},12345,\n",
        generate::resident_id(9).as_str()
    ));
    s.push_str(&format!("个人,重复,{},13900139000,\n", ps[0].id));
    s
}

async fn owner(app: &TestApp, role: &str) -> zhudai_store::identity::User {
    let name = app.user_with_role(role).await;
    app.state
        .store()
        .user_by_username(&name)
        .await
        .unwrap()
        .unwrap()
}

async fn run(
    app: &TestApp,
    who: &zhudai_store::identity::User,
    bytes: &[u8],
    dry_run: bool,
    strict: bool,
    scope: ScopeFilter,
) -> (i64, Outcome) {
    let store = app.state.store();
    let table = Table::parse(bytes).unwrap();
    let mut conn = store.writer().acquire().await.unwrap();
    let id = db::import_insert(
        &mut conn,
        &NewImport {
            file_name: "t.csv",
            file_format: table.format.as_str(),
            file_digest: &zhudai_server::import::digest(bytes),
            file_size: bytes.len() as i64,
            dry_run,
            strict,
            status: "running",
            requested_by: Some(who.id),
            owner_user_id: who.id,
            org_unit_id: who.org_unit_id,
            runner: None,
        },
        app.state.now_ms(),
    )
    .await
    .unwrap();
    drop(conn);
    let engine = Engine {
        store: store.clone(),
        vault: app.state.vault().clone(),
        clock: app.state.clock_arc(),
    };
    let opts = ImportOptions {
        dry_run,
        strict,
        owner_user_id: who.id,
        org_unit_id: who.org_unit_id,
        requested_by: Some(who.id),
        scope,
        actor: who.username.clone(),
        roles: "test".into(),
        today: app.state.clock().today(),
        // Small batches: several transactions even for a small file.
        batch_rows: 2,
        // Every import here that writes into a table at most half its size builds the
        // search indexes at its end (SQLite): the path a large first import takes (the
        // HTTP job below keeps them throughout).
        defer_indexes_from_rows: 1,
    };
    let o = engine
        .run(id, table, &opts, Arc::new(|_, _, _| {}))
        .await
        .unwrap();
    (id, o)
}

async fn all_customers(app: &TestApp) -> Vec<zhudai_store::customers::CustomerRow> {
    app.state
        .store()
        .customer_list(&CustomerQuery {
            scope: &ScopeFilter::All,
            name: None,
            exact: None,
            kind: None,
            status: None,
            offset: 0,
            limit: 1000,
        })
        .await
        .unwrap()
        .rows
}

zhudai_store::on_both!(
    lenient_import_reports_bad_rows_and_is_idempotent,
    strict_mode_imports_nothing_when_a_row_is_bad,
    dry_run_writes_no_customer,
    existing_customers_outside_the_scope_are_not_touched,
    http_import_runs_as_a_job_with_an_error_report,
    exports_are_masked_and_large_ones_need_four_eyes,
);

async fn lenient_import_reports_bad_rows_and_is_idempotent(db: &TestDb) {
    let app = TestApp::start(db).await;
    let who = owner(&app, "customer_manager").await;
    let ps = people(5);
    let csv = csv_with_bad_rows(&ps);
    let (id, o) = run(&app, &who, csv.as_bytes(), false, false, ScopeFilter::All).await;
    assert_eq!(o.status, "done");
    assert_eq!(o.total_rows, 8);
    assert_eq!(
        (o.counts.inserted, o.counts.rejected),
        (5, 3),
        "{:?}",
        o.counts
    );
    let errs = app.state.store().import_errors(id, 100).await.unwrap();
    let by_row: Vec<(i64, &str, &str)> = errs
        .iter()
        .map(|e| (e.row_no, e.field.as_str(), e.code.as_str()))
        .collect();
    assert_eq!(
        by_row,
        vec![
            (7, "id_number", "resident_id.checksum"),
            (8, "phone", "mobile.format"),
            (9, "id_number", "duplicate_in_file"),
        ]
    );
    // Masked, never the clear value.
    assert!(!errs[0]
        .value_masked
        .as_deref()
        .unwrap()
        .contains(&ps[0].id[6..14]));
    // Every stored customer decrypts (through the API's own decryption) to its row.
    let rows = all_customers(&app).await;
    assert_eq!(rows.len(), 5);
    // The phone and card indexes are back after the import (SQLite builds them at its
    // end here), and exact phone search finds each customer through them.
    let indexes: Vec<String> = zhudai_store::sqlx::query_scalar(match db.store.backend() {
        zhudai_store::Backend::Sqlite => {
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'customers'"
        }
        zhudai_store::Backend::Postgres => {
            "SELECT indexname::text FROM pg_indexes WHERE tablename = 'customers'"
        }
    })
    .fetch_all(app.state.store().reader())
    .await
    .unwrap();
    for (name, _) in db::DEFERRABLE_INDEXES {
        assert!(indexes.iter().any(|i| i == name), "{name} in {indexes:?}");
    }
    for p in &ps {
        let bidx = app
            .state
            .vault()
            .blind_index(zhudai_crypto::blind_index::FieldKind::Phone, &p.phone);
        let page = app
            .state
            .store()
            .customer_list(&CustomerQuery {
                scope: &ScopeFilter::All,
                name: None,
                exact: Some((zhudai_store::customers::IndexedField::Phone, &bidx)),
                kind: None,
                status: None,
                offset: 0,
                limit: 10,
            })
            .await
            .unwrap();
        assert_eq!(page.rows.len(), 1, "phone of {}", p.name);
        assert_eq!(page.rows[0].name, p.name);
    }
    for r in &rows {
        let clear = zhudai_server::customers::decrypt(app.state.vault(), r)
            .await
            .unwrap();
        let p = ps
            .iter()
            .find(|p| Some(&p.id) == clear.id_number.as_ref())
            .expect("a row of the file");
        assert_eq!(r.name, p.name);
        assert_eq!(clear.phone.as_deref(), Some(p.phone.as_str()));
        assert_eq!(clear.monthly_income.as_deref(), Some("12000.00"));
        assert_eq!(r.owner_user_id, who.id);
        assert!(r.birth_date.is_some());
    }
    // Same file again: nothing changes.
    let (_, again) = run(&app, &who, csv.as_bytes(), false, false, ScopeFilter::All).await;
    assert_eq!(
        (
            again.counts.inserted,
            again.counts.updated,
            again.counts.unchanged,
            again.counts.rejected
        ),
        (0, 0, 5, 3)
    );
    assert_eq!(all_customers(&app).await, rows, "the rows are untouched");
    // A changed phone updates that customer; an empty cell keeps the stored value.
    let new_phone = generate::mobile(77).as_str().to_owned();
    let edit = format!(
        "name,id_number,phone,monthly_income\n{},{},{new_phone},\n{},{},,\n",
        ps[1].name, ps[1].id, ps[2].name, ps[2].id
    );
    let (_, upd) = run(&app, &who, edit.as_bytes(), false, false, ScopeFilter::All).await;
    assert_eq!(
        (upd.counts.updated, upd.counts.unchanged),
        (1, 1),
        "{:?}",
        upd.counts
    );
    let after = all_customers(&app).await;
    assert_eq!(after.len(), 5);
    for r in &after {
        let clear = zhudai_server::customers::decrypt(app.state.vault(), r)
            .await
            .unwrap();
        if clear.id_number.as_deref() == Some(ps[1].id.as_str()) {
            assert_eq!(clear.phone.as_deref(), Some(new_phone.as_str()));
            assert_eq!(clear.monthly_income.as_deref(), Some("12000.00"), "kept");
            assert_eq!(r.version, 2);
        }
    }
    // The batches are in the audit trail.
    let n = app
        .state
        .store()
        .audit_count(&zhudai_store::audit::AuditFilter {
            action_prefix: Some("customer.import".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(n >= 3, "one record per written batch, got {n}");
    app.stop().await;
}

async fn strict_mode_imports_nothing_when_a_row_is_bad(db: &TestDb) {
    let app = TestApp::start(db).await;
    let who = owner(&app, "customer_manager").await;
    let ps = people(4);
    let (id, o) = run(
        &app,
        &who,
        csv_with_bad_rows(&ps).as_bytes(),
        false,
        true,
        ScopeFilter::All,
    )
    .await;
    assert_eq!(o.status, "rejected");
    assert_eq!(o.counts.rejected, 3);
    assert!(all_customers(&app).await.is_empty());
    let job = app.state.store().import_get(id).await.unwrap().unwrap();
    assert_eq!(job.status, "rejected");
    assert_eq!(job.counts.inserted, 4, "what would have been inserted");
    // Without the bad rows, strict mode imports everything in one transaction.
    let good: String = csv_with_bad_rows(&ps)
        .lines()
        .take(5)
        .map(|l| format!("{l}\n"))
        .collect();
    let (_, o) = run(&app, &who, good.as_bytes(), false, true, ScopeFilter::All).await;
    assert_eq!(
        (o.status, o.counts.inserted, o.counts.rejected),
        ("done", 4, 0)
    );
    assert_eq!(all_customers(&app).await.len(), 4);
    app.stop().await;
}

async fn dry_run_writes_no_customer(db: &TestDb) {
    let app = TestApp::start(db).await;
    let who = owner(&app, "customer_manager").await;
    let ps = people(3);
    let keys_before = app.state.store().data_key_counts_by_master().await.unwrap();
    let (id, o) = run(
        &app,
        &who,
        csv_with_bad_rows(&ps).as_bytes(),
        true,
        false,
        ScopeFilter::All,
    )
    .await;
    assert_eq!(
        (o.status, o.counts.inserted, o.counts.rejected),
        ("done", 3, 3)
    );
    assert!(all_customers(&app).await.is_empty());
    assert_eq!(
        app.state.store().data_key_counts_by_master().await.unwrap(),
        keys_before,
        "no data key was made"
    );
    assert_eq!(
        app.state
            .store()
            .import_errors(id, 100)
            .await
            .unwrap()
            .len(),
        3
    );
    app.stop().await;
}

async fn existing_customers_outside_the_scope_are_not_touched(db: &TestDb) {
    let app = TestApp::start(db).await;
    let a = owner(&app, "customer_manager").await;
    let b = owner(&app, "customer_manager").await;
    let ps = people(2);
    let first = format!("name,id_number\n{},{}\n", ps[0].name, ps[0].id);
    run(
        &app,
        &a,
        first.as_bytes(),
        false,
        false,
        ScopeFilter::Owner(a.id),
    )
    .await;
    let second = format!(
        "name,id_number\n改名,{}\n{},{}\n",
        ps[0].id, ps[1].name, ps[1].id
    );
    let (id, o) = run(
        &app,
        &b,
        second.as_bytes(),
        false,
        false,
        ScopeFilter::Owner(b.id),
    )
    .await;
    assert_eq!((o.counts.inserted, o.counts.rejected), (1, 1));
    let errs = app.state.store().import_errors(id, 10).await.unwrap();
    assert_eq!(errs[0].code, "outside_scope");
    let rows = all_customers(&app).await;
    assert!(rows
        .iter()
        .any(|r| r.name == ps[0].name && r.owner_user_id == a.id));
    assert!(!rows.iter().any(|r| r.name == "改名"));
    app.stop().await;
}

/// Runs the queued jobs (the worker's work) until none is left.
pub(crate) async fn drain_jobs(app: &TestApp) {
    while let Some(job) = app
        .state
        .store()
        .claim("default", "test", app.state.now_ms(), 60_000)
        .await
        .unwrap()
    {
        let id = job.id;
        let kind = job.kind.clone();
        if kind == zhudai_server::import::job::JOB_KIND {
            zhudai_server::import::job::run_job(app.state.clone(), job)
                .await
                .unwrap();
        }
        app.state
            .store()
            .complete(id, "test", app.state.now_ms())
            .await
            .unwrap();
    }
}

async fn http_import_runs_as_a_job_with_an_error_report(db: &TestDb) {
    let app = TestApp::start(db).await;
    let user = app.user_with_role("customer_manager").await;
    let (token, _) = app.login(&user).await;
    let c = reqwest::Client::new();
    let upload = |bytes: Vec<u8>, dry: bool| {
        let form = reqwest::multipart::Form::new()
            .part(
                "file",
                reqwest::multipart::Part::bytes(bytes).file_name("customers.csv"),
            )
            .text("dry_run", if dry { "true" } else { "false" });
        c.post(app.url("/api/v1/customers/imports"))
            .bearer_auth(&token)
            .multipart(form)
            .send()
    };
    // A file without the ID column: 422 naming `file`, nothing stored.
    let r = upload(b"name,phone\nx,1\n".to_vec(), false).await.unwrap();
    assert_eq!(r.status(), 422);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["errors"][0]["field"], "file");
    assert!(app
        .state
        .store()
        .import_list(None, 10)
        .await
        .unwrap()
        .is_empty());
    // A GBK file with bad rows.
    let ps = people(3);
    let text = csv_with_bad_rows(&ps);
    let (gbk, _, _) = encoding_rs::GBK.encode(&text);
    let r = upload(gbk.to_vec(), false).await.unwrap();
    assert_eq!(r.status(), 202);
    let id = r.json::<serde_json::Value>().await.unwrap()["id"]
        .as_i64()
        .unwrap();
    let status = |id: i64| {
        c.get(app.url(&format!("/api/v1/customers/imports/{id}")))
            .bearer_auth(&token)
            .send()
    };
    let v: serde_json::Value = status(id).await.unwrap().json().await.unwrap();
    assert_eq!(v["status"], "queued");
    drain_jobs(&app).await;
    let v: serde_json::Value = status(id).await.unwrap().json().await.unwrap();
    assert_eq!(v["status"], "done", "{v}");
    assert_eq!(v["inserted"], 3);
    assert_eq!(v["rejected"], 3);
    assert_eq!(v["processed_rows"], 6);
    assert_eq!(
        v["problems"][0]["problem_zh"],
        "证件号码校验位（最后一位）不正确"
    );
    // The uploaded file is gone once the import is over.
    assert!(app.state.store().import_file(id).await.unwrap().is_none());
    // The error report.
    let r = c
        .get(app.url(&format!("/api/v1/customers/imports/{id}/errors.xlsx")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let bytes = r.bytes().await.unwrap().to_vec();
    use calamine::Reader;
    let mut book = calamine::open_workbook_auto_from_rs(std::io::Cursor::new(bytes)).unwrap();
    let range = book.worksheet_range_at(0).unwrap().unwrap();
    let rows: Vec<Vec<String>> = range
        .rows()
        .map(|r| r.iter().map(|c| c.to_string()).collect())
        .collect();
    assert_eq!(rows.len(), 4);
    assert_eq!(rows[1][0], "5");
    assert_eq!(rows[3][3], "与文件中前面某行的证件号码重复");
    // Someone else (not scope `all`) cannot see it.
    let other = app.user_with_role("customer_manager").await;
    let (t2, _) = app.login(&other).await;
    let r = c
        .get(app.url(&format!("/api/v1/customers/imports/{id}")))
        .bearer_auth(&t2)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    app.stop().await;
}

async fn exports_are_masked_and_large_ones_need_four_eyes(db: &TestDb) {
    let mut settings = zhudai_server::ServerSettings {
        data_dir: db.data_dir(),
        ..Default::default()
    };
    settings.export_approval_rows = 3;
    let app = TestApp::start_with(db, settings).await;
    let user = app.user_with_role("customer_manager").await;
    let who = app
        .state
        .store()
        .user_by_username(&user)
        .await
        .unwrap()
        .unwrap();
    let ps = people(3);
    let csv: String = csv_with_bad_rows(&ps)
        .lines()
        .take(4)
        .map(|l| format!("{l}\n"))
        .collect();
    run(&app, &who, csv.as_bytes(), false, false, ScopeFilter::All).await;
    let (token, _) = app.login(&user).await;
    let c = reqwest::Client::new();
    let r = c
        .get(app.url("/api/v1/customers/export?format=csv"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    let text = text.trim_start_matches('\u{feff}');
    let mut lines = text.lines();
    assert!(lines
        .next()
        .unwrap()
        .starts_with("id,kind,name,id_kind,id_number,phone"));
    for p in &ps {
        let line = text
            .lines()
            .find(|l| l.contains(&p.phone))
            .expect("phone in clear: the role sees it");
        assert!(
            !line.contains(&p.id),
            "the ID number is masked for this role"
        );
        assert!(line.contains("***"), "income masked: {line}");
    }
    // A fourth customer puts the export over the threshold.
    let more = format!(
        "name,id_number\n周九,{}\n",
        generate::resident_id(4242).as_str()
    );
    run(&app, &who, more.as_bytes(), false, false, ScopeFilter::All).await;
    let r = c
        .get(app.url("/api/v1/customers/export?format=xlsx"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    let r = c
        .post(app.url("/api/v1/customers/exports"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"format": "xlsx", "reason": "quarterly review"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let req: serde_json::Value = r.json().await.unwrap();
    let id = req["id"].as_i64().unwrap();
    assert_eq!(req["row_count"], 4);
    assert_eq!(req["clear_fields"], serde_json::json!(["phone"]));
    // Not downloadable before approval.
    let file = |t: &str| {
        c.get(app.url(&format!("/api/v1/customers/exports/{id}/file")))
            .bearer_auth(t.to_owned())
            .send()
    };
    assert_eq!(file(&token).await.unwrap().status(), 409);
    // The compliance officer approves (someone else).
    let approver = app.user_with_role("compliance").await;
    let (ta, _) = app.login(&approver).await;
    let pending: serde_json::Value = c
        .get(app.url("/api/v1/customers/exports/pending"))
        .bearer_auth(&ta)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(pending[0]["id"], id);
    let r = c
        .post(app.url(&format!("/api/v1/customers/exports/{id}/decision")))
        .bearer_auth(&ta)
        .json(&serde_json::json!({"approve": true, "note": "ok"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // The requester cannot decide (no permission), and downloads exactly once.
    let r = c
        .post(app.url(&format!("/api/v1/customers/exports/{id}/decision")))
        .bearer_auth(&token)
        .json(&serde_json::json!({"approve": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = file(&token).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-export-rows"], "4");
    let bytes = r.bytes().await.unwrap().to_vec();
    use calamine::Reader;
    let mut book = calamine::open_workbook_auto_from_rs(std::io::Cursor::new(bytes)).unwrap();
    let range = book.worksheet_range_at(0).unwrap().unwrap();
    assert_eq!(range.rows().count(), 5);
    assert_eq!(file(&token).await.unwrap().status(), 409, "one download");
    // Every export is audited with its rows and clear fields.
    let page = app
        .state
        .store()
        .audit_search(
            &zhudai_store::audit::AuditFilter {
                action_prefix: Some("customer.export".into()),
                ..Default::default()
            },
            None,
            10,
        )
        .await
        .unwrap();
    let exports: Vec<_> = page
        .records
        .iter()
        .filter(|r| r.action == "customer.export")
        .collect();
    assert_eq!(exports.len(), 2);
    assert!(exports.iter().all(|r| r
        .reason
        .as_deref()
        .unwrap_or("")
        .contains("in clear: phone")));
    app.stop().await;
}
