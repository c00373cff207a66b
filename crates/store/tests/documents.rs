//! Customer documents, verification, consents and data-subject requests on SQLite and
//! PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use zhudai_store::customers::{customer_insert, CustomerValues};
use zhudai_store::documents::{
    consent_insert, consent_withdraw, document_decide, document_insert, documents_erase_customer,
    privacy_request_insert, privacy_request_transition, NewConsent, NewDocument, NewPrivacyRequest,
};
use zhudai_store::identity::NewUser;
use zhudai_store::on_both;
use zhudai_store::testing::TestDb;
use zhudai_store::Violation;

on_both!(
    versions_decisions_and_erasure,
    consents_withdraw_once,
    requests_move_forward_only
);

async fn user(db: &TestDb, name: &str) -> i64 {
    db.store
        .user_create(
            &NewUser {
                username: name,
                display_name: name,
                org_unit_id: None,
                password_hash: "$argon2id$v=19$fake",
                must_change_password: false,
                role_ids: &[],
            },
            1,
        )
        .await
        .unwrap()
}

async fn customer(db: &TestDb, owner: i64, r: &str) -> i64 {
    let mut tx = db.store.begin().await.unwrap();
    let id = customer_insert(
        &mut *tx,
        &CustomerValues {
            ref_: r.into(),
            kind: "individual".into(),
            name: "张三".into(),
            id_kind: "resident".into(),
            owner_user_id: owner,
            ..Default::default()
        },
        5,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    id
}

fn doc(customer_id: i64, t: &str, r: &str) -> NewDocument {
    NewDocument {
        ref_: r.into(),
        customer_id,
        doc_type: t.into(),
        content_type: "image/png".into(),
        size_bytes: 10,
        sha256: "ab".repeat(32),
        blob_key: format!("documents/{r}"),
        original_name_enc: Some(vec![1, 2]),
        retention_class: "aml_10y".into(),
        retain_until: Some("2036-11-29".into()),
        declared_name_enc: Some(vec![3]),
        declared_id_number_enc: Some(vec![4]),
        uploaded_by: None,
        ..Default::default()
    }
}

async fn versions_decisions_and_erasure(db: &TestDb) {
    let s = &db.store;
    let u = user(db, "up").await;
    let v = user(db, "ver").await;
    let c = customer(db, u, "c1").await;
    let other = customer(db, u, "c2").await;
    let mut tx = s.begin().await.unwrap();
    let (a1, v1) = document_insert(&mut tx, &doc(c, "id_front", "d1"), 10)
        .await
        .unwrap();
    let (a2, v2) = document_insert(&mut tx, &doc(c, "id_front", "d2"), 11)
        .await
        .unwrap();
    let (_, vb) = document_insert(&mut tx, &doc(c, "id_back", "d3"), 12)
        .await
        .unwrap();
    let (_, vo) = document_insert(&mut tx, &doc(other, "id_front", "d4"), 13)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        (v1, v2, vb, vo),
        (1, 2, 1, 1),
        "versions count per customer and type"
    );
    assert_eq!(
        s.document_latest_version(c, "id_front").await.unwrap(),
        Some(2)
    );
    assert_eq!(
        s.document_latest_version(c, "contract").await.unwrap(),
        None
    );
    // A rolled-back upload leaves no version behind.
    let mut tx = s.begin().await.unwrap();
    document_insert(&mut tx, &doc(c, "id_front", "d5"), 14)
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    assert_eq!(s.documents_of_customer(c).await.unwrap().len(), 3);
    // The same ref twice is refused by its named constraint.
    let mut tx = s.begin().await.unwrap();
    let e = document_insert(&mut tx, &doc(c, "other", "d1"), 15)
        .await
        .unwrap_err();
    assert!(
        e.is_unique_violation("customer_documents_ref_key", "customer_documents.ref"),
        "{e:?}"
    );
    drop(tx);

    assert_eq!(s.documents_pending(100).await.unwrap().len(), 4);
    let mut tx = s.begin().await.unwrap();
    assert!(document_decide(&mut tx, a2, "verified", None, "[]", v, 20)
        .await
        .unwrap());
    // Deciding twice fails: the version is no longer pending.
    assert!(
        !document_decide(&mut tx, a2, "rejected", Some("x"), "[]", v, 21)
            .await
            .unwrap()
    );
    assert!(document_decide(
        &mut tx,
        a1,
        "needs_more",
        Some("blurred"),
        "[{\"code\":\"expired\"}]",
        v,
        22
    )
    .await
    .unwrap());
    tx.commit().await.unwrap();
    let d2 = s.document_get(a2).await.unwrap().unwrap();
    assert_eq!((d2.status.as_str(), d2.verified_by), ("verified", Some(v)));
    let hist = s.document_verifications(a1).await.unwrap();
    assert_eq!(hist.len(), 1);
    assert_eq!(hist[0].note.as_deref(), Some("blurred"));
    assert!(hist[0].checks_json.contains("expired"));
    let pending = s.documents_pending(100).await.unwrap();
    assert_eq!(pending.len(), 2);
    assert_eq!(pending[0].owner_user_id, u);
    assert_eq!(pending[0].customer_name, "张三");

    let mut tx = s.begin().await.unwrap();
    let keys = documents_erase_customer(&mut tx, c, 30).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(keys, vec!["documents/d1", "documents/d2", "documents/d3"]);
    for d in s.documents_of_customer(c).await.unwrap() {
        assert_eq!(d.erased_at_ms, Some(30));
        assert!(
            d.original_name_enc.is_none()
                && d.declared_name_enc.is_none()
                && d.declared_id_number_enc.is_none()
        );
    }
    // The other customer is untouched; erased documents leave the queue.
    let left = s.documents_pending(100).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].document.customer_id, other);
    let mut tx = s.begin().await.unwrap();
    assert!(documents_erase_customer(&mut tx, c, 31)
        .await
        .unwrap()
        .is_empty());
    tx.commit().await.unwrap();
}

async fn consents_withdraw_once(db: &TestDb) {
    let s = &db.store;
    let u = user(db, "cm").await;
    let c = customer(db, u, "c1").await;
    let id = consent_insert(
        s.writer(),
        &NewConsent {
            customer_id: c,
            purpose: "funder_sharing".into(),
            recipients: vec!["bank_a".into(), "trust_b".into()],
            policy_version: "2026.1".into(),
            channel: "app".into(),
            given_at_ms: 100,
            evidence_document_id: None,
            recorded_by: Some(u),
        },
        110,
    )
    .await
    .unwrap();
    let later = consent_insert(
        s.writer(),
        &NewConsent {
            customer_id: c,
            purpose: "marketing".into(),
            recipients: vec![],
            policy_version: "2026.1".into(),
            channel: "web".into(),
            given_at_ms: 200,
            ..Default::default()
        },
        210,
    )
    .await
    .unwrap();
    let list = s.consents_of_customer(c).await.unwrap();
    assert_eq!(
        list.iter().map(|c| c.id).collect::<Vec<_>>(),
        vec![later, id]
    );
    assert_eq!(list[1].recipients, vec!["bank_a", "trust_b"]);
    assert!(consent_withdraw(s.writer(), id, 300, "phone", Some(u))
        .await
        .unwrap());
    assert!(!consent_withdraw(s.writer(), id, 400, "app", Some(u))
        .await
        .unwrap());
    let got = s.consent_get(id).await.unwrap().unwrap();
    assert_eq!(got.withdrawn_at_ms, Some(300));
    assert_eq!(got.withdrawn_channel.as_deref(), Some("phone"));
    // A bad channel is refused by the database too.
    let e = consent_withdraw(s.writer(), later, 300, "fax", None)
        .await
        .unwrap_err();
    assert!(
        matches!(e.violation(), Some(Violation::Check { .. })),
        "{e:?}"
    );
}

async fn requests_move_forward_only(db: &TestDb) {
    let s = &db.store;
    let u = user(db, "co").await;
    let c = customer(db, u, "c1").await;
    let new = |kind: &str, due: &str| NewPrivacyRequest {
        customer_id: c,
        kind: kind.into(),
        channel: "web".into(),
        details_enc: None,
        received_on: "2026-11-29".into(),
        due_on: due.into(),
        created_by: Some(u),
    };
    let a = privacy_request_insert(s.writer(), &new("access", "2026-12-14"), 1)
        .await
        .unwrap();
    let b = privacy_request_insert(s.writer(), &new("deletion", "2026-12-01"), 2)
        .await
        .unwrap();
    let open = s.privacy_requests(true, None, 50).await.unwrap();
    assert_eq!(
        open.iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![b, a],
        "earliest due first"
    );
    assert!(
        privacy_request_transition(s.writer(), a, "open", "in_progress", u, None, 5)
            .await
            .unwrap()
    );
    assert!(
        !privacy_request_transition(s.writer(), a, "open", "completed", u, None, 6)
            .await
            .unwrap()
    );
    assert!(privacy_request_transition(
        s.writer(),
        a,
        "in_progress",
        "completed",
        u,
        Some("sent"),
        7
    )
    .await
    .unwrap());
    let done = s.privacy_request_get(a).await.unwrap().unwrap();
    assert_eq!(
        (
            done.status.as_str(),
            done.closed_at_ms,
            done.resolution.as_deref()
        ),
        ("completed", Some(7), Some("sent"))
    );
    assert_eq!(s.privacy_requests(true, None, 50).await.unwrap().len(), 1);
    assert_eq!(
        s.privacy_requests(false, Some(c), 50).await.unwrap().len(),
        2
    );
    assert_eq!(
        s.privacy_requests(false, Some(c + 100), 50)
            .await
            .unwrap()
            .len(),
        0
    );
    let e = privacy_request_insert(s.writer(), &new("forget", "2026-12-01"), 3)
        .await
        .unwrap_err();
    assert!(
        matches!(e.violation(), Some(Violation::Check { name }) if name.contains("privacy_requests_kind_check")),
        "{e:?}"
    );
}
