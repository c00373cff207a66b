//! Customers on SQLite and PostgreSQL: insert, scoped listing, blind-index search,
//! duplicate matches, optimistic edits, erasure and enterprise links.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use zhudai_store::customers::{
    customer_erase, customer_insert, customer_update, relation_insert, CustomerQuery,
    CustomerValues, IndexedField, ScopeFilter,
};
use zhudai_store::identity::NewUser;
use zhudai_store::meta::NewOrgUnit;
use zhudai_store::on_both;
use zhudai_store::testing::TestDb;

on_both!(
    scoped_listing_and_exact_search,
    edits_are_optimistic_and_erasure_clears,
    enterprise_links,
    deferred_search_indexes_still_answer_and_come_back,
    prepared_inserts_and_taking_back_a_customer_created_meanwhile
);

async fn setup(db: &TestDb) -> (i64, i64, i64, i64) {
    let s = &db.store;
    let company = s
        .org_unit_create(
            &NewOrgUnit {
                parent_id: None,
                kind: "company",
                code: "co",
                name_zh: "公司",
                name_en: "Co",
            },
            1,
        )
        .await
        .unwrap();
    let team_a = s
        .org_unit_create(
            &NewOrgUnit {
                parent_id: Some(company),
                kind: "team",
                code: "ta",
                name_zh: "甲",
                name_en: "A",
            },
            1,
        )
        .await
        .unwrap();
    let team_b = s
        .org_unit_create(
            &NewOrgUnit {
                parent_id: Some(company),
                kind: "team",
                code: "tb",
                name_zh: "乙",
                name_en: "B",
            },
            1,
        )
        .await
        .unwrap();
    let user = s
        .user_create(
            &NewUser {
                username: "cm",
                display_name: "cm",
                org_unit_id: Some(team_a),
                password_hash: "$argon2id$v=19$fake",
                must_change_password: false,
                role_ids: &[],
            },
            1,
        )
        .await
        .unwrap();
    (company, team_a, team_b, user)
}

fn values(
    r: &str,
    name: &str,
    id_bidx: &str,
    phone_bidx: &str,
    owner: i64,
    unit: i64,
) -> CustomerValues {
    CustomerValues {
        ref_: r.into(),
        kind: "individual".into(),
        name: name.into(),
        id_kind: "resident".into(),
        id_number_enc: Some(vec![1, 2, 3]),
        id_number_bidx: Some(id_bidx.into()),
        phone_enc: Some(vec![4, 5]),
        phone_bidx: Some(phone_bidx.into()),
        birth_date: Some("1990-01-02".into()),
        gender: Some("male".into()),
        region_code: Some("110105".into()),
        owner_user_id: owner,
        org_unit_id: Some(unit),
        created_by: Some(owner),
        ..Default::default()
    }
}

async fn scoped_listing_and_exact_search(db: &TestDb) {
    let s = &db.store;
    let (_, team_a, team_b, user) = setup(db).await;
    let mut tx = s.begin().await.unwrap();
    let a = customer_insert(
        &mut *tx,
        &values("r1", "张三", "id1", "p1", user, team_a),
        10,
    )
    .await
    .unwrap();
    let b = customer_insert(
        &mut *tx,
        &values("r2", "李四", "id2", "p1", user, team_b),
        11,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    // A third, inserted and rolled back, leaves nothing behind.
    let mut tx = s.begin().await.unwrap();
    customer_insert(
        &mut *tx,
        &values("r3", "王五", "id3", "p3", user, team_b),
        12,
    )
    .await
    .unwrap();
    tx.rollback().await.unwrap();
    assert_eq!(s.customer_count().await.unwrap(), 2);

    let all = ScopeFilter::All;
    let q = |scope| CustomerQuery {
        scope,
        name: None,
        exact: None,
        kind: None,
        status: None,
        offset: 0,
        limit: 10,
    };
    let page = s.customer_list(&q(&all)).await.unwrap();
    assert_eq!(page.total, 2);
    assert_eq!(page.rows[0].id, b, "newest first");

    // Team A sees only its own customer; owner 999 with team A likewise.
    let team = ScopeFilter::Units {
        units: vec![team_a],
        owner: 999,
    };
    let page = s.customer_list(&q(&team)).await.unwrap();
    assert_eq!((page.total, page.rows[0].id), (1, a));
    // Owning a customer in another team puts it in scope.
    let owner_scope = ScopeFilter::Units {
        units: vec![],
        owner: user,
    };
    assert_eq!(s.customer_list(&q(&owner_scope)).await.unwrap().total, 2);
    assert_eq!(
        s.customer_list(&q(&ScopeFilter::Owner(999)))
            .await
            .unwrap()
            .total,
        0
    );
    assert!(team.admits(user, Some(team_a)) && !team.admits(user, Some(team_b)));
    assert!(
        team.admits(999, None),
        "the scope owner's own records are in scope"
    );

    // Exact search and name search (LIKE wildcards in the input are literal).
    let mut by_id = q(&all);
    by_id.exact = Some((IndexedField::IdNumber, "id2"));
    assert_eq!(s.customer_list(&by_id).await.unwrap().rows[0].name, "李四");
    let mut by_name = q(&all);
    by_name.name = Some("三");
    assert_eq!(s.customer_list(&by_name).await.unwrap().total, 1);
    by_name.name = Some("%");
    assert_eq!(s.customer_list(&by_name).await.unwrap().total, 0);
    let mut paged = q(&all);
    paged.limit = 1;
    paged.offset = 1;
    let p = s.customer_list(&paged).await.unwrap();
    assert_eq!((p.total, p.rows.len(), p.rows[0].id), (2, 1, a));

    // Duplicate phone: each sees the other, not itself.
    let m = s
        .customer_matches(IndexedField::Phone, "p1", Some(a))
        .await
        .unwrap();
    assert_eq!(m.len(), 1);
    assert_eq!((m[0].id, m[0].org_unit_id), (b, Some(team_b)));
    assert!(s
        .customer_matches(IndexedField::IdNumber, "id1", Some(a))
        .await
        .unwrap()
        .is_empty());
}

async fn edits_are_optimistic_and_erasure_clears(db: &TestDb) {
    let s = &db.store;
    let (_, team_a, _, user) = setup(db).await;
    let id = customer_insert(
        s.writer(),
        &values("r1", "张三", "id1", "p1", user, team_a),
        10,
    )
    .await
    .unwrap();
    let mut v = values("r1", "张三丰", "id1", "p9", user, team_a);
    v.phone_bidx = Some("p9".into());
    assert!(customer_update(s.writer(), id, 1, &v, 20).await.unwrap());
    assert!(
        !customer_update(s.writer(), id, 1, &v, 21).await.unwrap(),
        "stale version refused"
    );
    let c = s.customer_get(id).await.unwrap().unwrap();
    assert_eq!(
        (
            c.name.as_str(),
            c.version,
            c.phone_bidx.as_deref(),
            c.updated_at_ms
        ),
        ("张三丰", 2, Some("p9"), 20)
    );
    assert!(customer_erase(s.writer(), id, 30).await.unwrap());
    let c = s.customer_get(id).await.unwrap().unwrap();
    assert_eq!(c.status, "erased");
    assert!(c.id_number_enc.is_none() && c.phone_bidx.is_none() && c.birth_date.is_none());
    assert!(!c.name.contains("张"));
    assert!(
        !customer_update(s.writer(), id, 3, &v, 40).await.unwrap(),
        "erased rows are not edited"
    );
    assert!(s
        .customer_matches(IndexedField::IdNumber, "id1", None)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(s.customer_by_ref("r1").await.unwrap().unwrap().id, id);
}

async fn enterprise_links(db: &TestDb) {
    let s = &db.store;
    let (_, team_a, _, user) = setup(db).await;
    let person = customer_insert(
        s.writer(),
        &values("r1", "张三", "id1", "p1", user, team_a),
        10,
    )
    .await
    .unwrap();
    let mut e = values("r2", "某某有限公司", "u1", "p2", user, team_a);
    e.kind = "enterprise".into();
    e.id_kind = "uscc".into();
    let ent = customer_insert(s.writer(), &e, 11).await.unwrap();
    relation_insert(
        s.writer(),
        ent,
        person,
        "legal_representative",
        None,
        Some(user),
        12,
    )
    .await
    .unwrap();
    relation_insert(
        s.writer(),
        ent,
        person,
        "beneficial_owner",
        Some(3000),
        Some(user),
        12,
    )
    .await
    .unwrap();
    let dup = relation_insert(
        s.writer(),
        ent,
        person,
        "beneficial_owner",
        Some(3000),
        Some(user),
        13,
    )
    .await;
    assert!(dup.is_err(), "the same link twice is refused");
    let bad = relation_insert(s.writer(), ent, person, "friend", None, Some(user), 13).await;
    assert!(bad.is_err(), "unknown roles are refused by the schema");
    let links = s.customer_relations(person).await.unwrap();
    assert_eq!(links.len(), 2);
    assert_eq!(links[1].share_bp, Some(3000));
    assert_eq!(s.customer_relations(ent).await.unwrap().len(), 2);
}

/// The search indexes a large import defers (SQLite only).
async fn index_names(db: &TestDb) -> Vec<String> {
    let sql = match db.store.backend() {
        zhudai_store::Backend::Sqlite => {
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'customers' ORDER BY name"
        }
        zhudai_store::Backend::Postgres => {
            "SELECT indexname::text AS name FROM pg_indexes WHERE tablename = 'customers' ORDER BY indexname"
        }
    };
    zhudai_store::sqlx::query_scalar::<_, String>(sql)
        .fetch_all(db.store.reader())
        .await
        .unwrap()
}

async fn deferred_search_indexes_still_answer_and_come_back(db: &TestDb) {
    use zhudai_store::imports::{
        defers_indexes, search_indexes_defer, search_indexes_restore, DEFERRABLE_INDEXES,
        DEFER_INDEXES_FROM_ROWS,
    };
    let s = &db.store;
    let (_, team_a, _, user) = setup(db).await;
    let before = index_names(db).await;
    for (name, _) in DEFERRABLE_INDEXES {
        assert!(before.iter().any(|n| n == name), "{name} in {before:?}");
    }
    // Only a large import into a table at most half its size defers them.
    let from = DEFER_INDEXES_FROM_ROWS;
    assert!(defers_indexes(from, 0, from));
    assert!(defers_indexes(from, from / 2, from));
    assert!(defers_indexes(2 * from, from, from));
    assert!(!defers_indexes(from - 1, 0, from));
    assert!(!defers_indexes(from, from / 2 + 1, from));
    assert!(!defers_indexes(from, from, from));

    let mut conn = s.writer().acquire().await.unwrap();
    let dropped = search_indexes_defer(&mut conn).await.unwrap();
    drop(conn);
    let during = index_names(db).await;
    let sqlite = s.backend() == zhudai_store::Backend::Sqlite;
    assert_eq!(dropped, sqlite, "PostgreSQL keeps its indexes");
    for (name, _) in DEFERRABLE_INDEXES {
        assert_eq!(during.iter().any(|n| n == name), !sqlite, "{name}");
    }
    // Without the indexes, phone search and duplicate flags still find the rows.
    let mut tx = s.begin().await.unwrap();
    let a = customer_insert(&mut *tx, &values("d1", "甲", "i1", "ph", user, team_a), 1)
        .await
        .unwrap();
    let b = customer_insert(&mut *tx, &values("d2", "乙", "i2", "ph", user, team_a), 2)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let m = s
        .customer_matches(IndexedField::Phone, "ph", Some(a))
        .await
        .unwrap();
    assert_eq!(m.iter().map(|c| c.id).collect::<Vec<_>>(), vec![b]);

    // A restart (migrate) puts back what a crashed import left dropped; restoring
    // again changes nothing.
    s.migrate().await.unwrap();
    assert_eq!(index_names(db).await, before);
    let mut conn = s.writer().acquire().await.unwrap();
    search_indexes_restore(&mut conn).await.unwrap();
    drop(conn);
    assert_eq!(index_names(db).await, before);
}

/// The import's write path: statements built beforehand, then the ID numbers found twice
/// (a customer created between the import's look-up and its write) taken back.
async fn prepared_inserts_and_taking_back_a_customer_created_meanwhile(db: &TestDb) {
    use zhudai_crypto::envelope::{Algorithm, WrappedDek};
    use zhudai_store::imports::{
        customer_insert_undo, customers_insert_prepare, data_keys_insert_prepare, execute_prepared,
        id_bidx_repeated,
    };
    let s = &db.store;
    let (_, team_a, _, user) = setup(db).await;
    // Created by someone else "meanwhile".
    let mut tx = s.begin().await.unwrap();
    let other = customer_insert(
        &mut *tx,
        &values("o1", "先到", "taken", "p0", user, team_a),
        1,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();

    // 150 new customers: two customer statements on SQLite (95 rows of 21 values each).
    let mut rows: Vec<_> = (0..150)
        .map(|i| {
            values(
                &format!("n{i}"),
                &format!("新{i}"),
                &format!("b{i}"),
                "p",
                user,
                team_a,
            )
        })
        .collect();
    rows[7].id_number_bidx = Some("taken".into());
    // Every text and blob column set on one row and NULL on another: the values move
    // into the statements' arguments (imports::Moved), NULLs included.
    rows[148].bank_card_enc = Some(vec![7, 0, 255]);
    rows[148].bank_card_bidx = Some("card148".into());
    rows[148].email_enc = Some(vec![8; 40]);
    rows[148].address_enc = Some(vec![5, 5]);
    rows[148].monthly_income_enc = Some(vec![6]);
    rows[147].phone_enc = None;
    rows[147].phone_bidx = None;
    rows[147].birth_date = None;
    rows[147].gender = None;
    rows[147].region_code = None;
    let keys: Vec<(WrappedDek, String)> = rows
        .iter()
        .map(|r| {
            (
                WrappedDek {
                    id: format!("k-{}", r.ref_),
                    wrapped: vec![9; 60],
                    master_key_id: "m1".into(),
                    algorithm: Algorithm::Aes256Gcm,
                },
                format!("customer:{}", r.ref_),
            )
        })
        .collect();
    let backend = s.backend();
    let customers = customers_insert_prepare(backend, rows.clone(), 5).unwrap();
    // SQLite binds at most about 2,000 values per statement, PostgreSQL 8,000.
    let statements = if backend == zhudai_store::Backend::Sqlite {
        2
    } else {
        1
    };
    assert_eq!(customers.len(), statements, "{customers:?}");
    let key_stmts = data_keys_insert_prepare(backend, keys, 5).unwrap();
    assert!(!key_stmts.is_empty());
    let mut tx = s.writer().begin_alone(false).await.unwrap();
    execute_prepared(&mut tx, key_stmts).await.unwrap();
    execute_prepared(&mut tx, customers).await.unwrap();
    let bidx: Vec<String> = rows
        .iter()
        .filter_map(|r| r.id_number_bidx.clone())
        .collect();
    assert_eq!(
        id_bidx_repeated(&mut tx, &bidx).await.unwrap(),
        vec!["taken".to_owned()]
    );
    customer_insert_undo(&mut tx, "n7", "customer:n7")
        .await
        .unwrap();
    assert!(id_bidx_repeated(&mut tx, &bidx).await.unwrap().is_empty());
    tx.commit().await.unwrap();

    assert_eq!(
        s.customer_count().await.unwrap(),
        150,
        "149 new and the other"
    );
    let mut by_id = CustomerQuery {
        scope: &ScopeFilter::All,
        name: None,
        exact: Some((IndexedField::IdNumber, "taken")),
        kind: None,
        status: None,
        offset: 0,
        limit: 10,
    };
    let page = s.customer_list(&by_id).await.unwrap();
    assert_eq!(
        page.rows.iter().map(|c| c.id).collect::<Vec<_>>(),
        vec![other]
    );
    by_id.exact = Some((IndexedField::IdNumber, "b149"));
    let page = s.customer_list(&by_id).await.unwrap();
    assert_eq!(page.rows.len(), 1);
    let r = &page.rows[0];
    assert_eq!(
        (r.name.as_str(), r.created_at_ms, r.owner_user_id),
        ("新149", 5, user)
    );
    assert_eq!(r.id_number_enc.as_deref(), Some(&[1u8, 2, 3][..]));
    for i in [147, 148] {
        by_id.exact = Some((
            IndexedField::IdNumber,
            rows[i].id_number_bidx.as_deref().unwrap(),
        ));
        let page = s.customer_list(&by_id).await.unwrap();
        assert_eq!(page.rows.len(), 1, "row {i}");
        let (got, want) = (&page.rows[0], &rows[i]);
        let stored = CustomerValues {
            ref_: got.ref_.clone(),
            kind: got.kind.clone(),
            name: got.name.clone(),
            id_kind: got.id_kind.clone(),
            id_number_enc: got.id_number_enc.clone(),
            id_number_bidx: got.id_number_bidx.clone(),
            phone_enc: got.phone_enc.clone(),
            phone_bidx: got.phone_bidx.clone(),
            bank_card_enc: got.bank_card_enc.clone(),
            bank_card_bidx: got.bank_card_bidx.clone(),
            email_enc: got.email_enc.clone(),
            address_enc: got.address_enc.clone(),
            monthly_income_enc: got.monthly_income_enc.clone(),
            birth_date: got.birth_date.clone(),
            gender: got.gender.clone(),
            region_code: got.region_code.clone(),
            owner_user_id: got.owner_user_id,
            org_unit_id: got.org_unit_id,
            created_by: got.created_by,
        };
        assert_eq!(&stored, want, "row {i} as stored");
    }
    assert!(s
        .data_key_of_subject("customer:n7")
        .await
        .unwrap()
        .is_none());
    match s.data_key_of_subject("customer:n149").await.unwrap() {
        Some(zhudai_store::keys::SubjectDek::Ready(k)) => {
            assert_eq!((k.id.as_str(), k.wrapped), ("k-n149", vec![9; 60]));
        }
        other => panic!("the key of n149: {other:?}"),
    }
}
