//! Identity, data keys and the audit trail, on SQLite and on PostgreSQL.
//! PostgreSQL is required: when it cannot be reached these tests fail.

// The scenarios are plain async fns run by `on_both!`, not `#[test]`s, so clippy's
// allow-*-in-tests does not reach them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashSet;
use zhudai_crypto::audit_chain::{sign_checkpoint, BreakKind, CheckpointSigningKey, GENESIS_HASH};
use zhudai_crypto::envelope::{new_dek, Algorithm, WrappedDek};
use zhudai_crypto::keys::{Keyring, MasterKey};
use zhudai_store::audit::{self, AuditDraft, AuditFilter};
use zhudai_store::identity::{
    DataScope, NewApiToken, NewRole, NewSession, NewUser, RoleUpdate, UserQuery, UserStatus,
    UserUpdate,
};
use zhudai_store::keys::SubjectDek;
use zhudai_store::meta::NewOrgUnit;
use zhudai_store::on_both;
use zhudai_store::testing::TestDb;
use zhudai_store::{Backend, Store, Violation};

on_both!(
    roles_permissions_and_field_access,
    username_conflict_and_user_lifecycle,
    user_list_filters_and_pages,
    failed_logins_lock_out,
    totp_step_only_increases,
    sessions_touch_and_revoke_all,
    api_tokens_by_hash_and_revocation,
    subject_key_get_or_create_is_race_safe,
    destroyed_key_is_never_usable,
    system_key_and_rewrap,
    audit_appends_from_many_tasks_and_two_instances,
    audit_append_commits_with_the_business_change,
    audit_search_filters_and_pages,
    audit_detects_an_edited_row,
    audit_detects_a_deleted_row,
    audit_detects_swapped_rows,
    audit_rows_are_append_only,
    audit_checkpoints_and_signing_keys,
);

fn role<'a>(code: &'a str, scope: DataScope) -> NewRole<'a> {
    NewRole {
        code,
        name_zh: code,
        name_en: code,
        data_scope: scope,
        is_system: false,
        requires_2fa: false,
    }
}

fn user<'a>(username: &'a str, role_ids: &'a [i64]) -> NewUser<'a> {
    NewUser {
        username,
        display_name: username,
        org_unit_id: None,
        password_hash: "$argon2id$v=19$fake",
        must_change_password: false,
        role_ids,
    }
}

fn ring() -> Keyring {
    Keyring::new(MasterKey::generate().unwrap())
}

fn dek(ring: &Keyring) -> WrappedDek {
    new_dek(ring, Algorithm::Aes256Gcm).unwrap().1
}

async fn roles_permissions_and_field_access(db: &TestDb) {
    let s = &db.store;
    let cm = s
        .role_create(&role("customer_manager", DataScope::Team), 1)
        .await
        .unwrap();
    let mut approver = role("approver_l1", DataScope::Branch);
    approver.requires_2fa = true;
    approver.is_system = true;
    let ap = s.role_create(&approver, 1).await.unwrap();
    let dup = s
        .role_create(&role("approver_l1", DataScope::Own), 1)
        .await
        .unwrap_err();
    assert!(
        dup.is_unique_violation("roles_code_key", "roles.code"),
        "{dup:?}"
    );

    let got = s.role_by_code("approver_l1").await.unwrap().unwrap();
    assert_eq!(
        (got.id, got.data_scope, got.requires_2fa, got.is_system),
        (ap, DataScope::Branch, true, true)
    );
    assert!(s.role_by_code("nobody").await.unwrap().is_none());
    s.role_update(
        cm,
        &RoleUpdate {
            name_zh: "客户经理",
            name_en: "Customer manager",
            data_scope: DataScope::Own,
            requires_2fa: false,
        },
        2,
    )
    .await
    .unwrap();
    let roles = s.roles().await.unwrap();
    assert_eq!(roles.len(), 2);
    assert_eq!(
        (
            roles[0].name_zh.as_str(),
            roles[0].data_scope,
            roles[0].updated_at_ms
        ),
        ("客户经理", DataScope::Own, 2)
    );
    assert!(matches!(
        s.role_update(
            999,
            &RoleUpdate {
                name_zh: "x",
                name_en: "x",
                data_scope: DataScope::All,
                requires_2fa: false
            },
            2
        )
        .await,
        Err(zhudai_store::StoreError::NotFound)
    ));

    s.role_set_permissions(
        cm,
        &["customer.read", "customer.create", "application.create"],
        3,
    )
    .await
    .unwrap();
    s.role_set_permissions(
        ap,
        &["application.read", "application.approve", "customer.read"],
        3,
    )
    .await
    .unwrap();
    // Replacing drops what is not listed again; duplicates are harmless.
    s.role_set_permissions(
        cm,
        &["customer.read", "customer.create", "customer.create"],
        4,
    )
    .await
    .unwrap();
    assert_eq!(
        s.role_permissions(cm).await.unwrap(),
        vec!["customer.create", "customer.read"]
    );
    s.role_set_field_access(ap, &["customer.id_number"], 4)
        .await
        .unwrap();
    assert_eq!(
        s.role_field_access(ap).await.unwrap(),
        vec!["customer.id_number"]
    );
    assert!(s.role_set_permissions(999, &["x"], 4).await.is_err());

    let both = s.user_create(&user("lilei", &[cm, ap]), 5).await.unwrap();
    let only_cm = s.user_create(&user("hanmeimei", &[cm]), 5).await.unwrap();
    let none = s.user_create(&user("guest", &[]), 5).await.unwrap();
    let perms: Vec<String> = s
        .user_permissions(both)
        .await
        .unwrap()
        .into_iter()
        .collect();
    assert_eq!(
        perms,
        vec![
            "application.approve",
            "application.read",
            "customer.create",
            "customer.read"
        ]
    );
    assert_eq!(s.user_permissions(only_cm).await.unwrap().len(), 2);
    assert!(s.user_permissions(none).await.unwrap().is_empty());
    assert!(s
        .user_field_access(both)
        .await
        .unwrap()
        .contains("customer.id_number"));
    assert!(s.user_field_access(only_cm).await.unwrap().is_empty());
    let codes: Vec<String> = s
        .user_roles(both)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.code)
        .collect();
    assert_eq!(codes, vec!["customer_manager", "approver_l1"]);
}

async fn username_conflict_and_user_lifecycle(db: &TestDb) {
    let s = &db.store;
    let r1 = s.role_create(&role("r1", DataScope::Own), 1).await.unwrap();
    let r2 = s.role_create(&role("r2", DataScope::All), 1).await.unwrap();
    let team = s
        .org_unit_create(
            &NewOrgUnit {
                parent_id: None,
                kind: "team",
                code: "T1",
                name_zh: "一组",
                name_en: "Team 1",
            },
            1,
        )
        .await
        .unwrap();
    let id = s
        .user_create(
            &NewUser {
                org_unit_id: Some(team),
                ..user("lilei", &[r1])
            },
            10,
        )
        .await
        .unwrap();
    let dup = s.user_create(&user("lilei", &[r2]), 11).await.unwrap_err();
    assert!(
        dup.is_unique_violation("users_username_key", "users.username"),
        "{dup:?}"
    );
    // An unknown role rolls the whole creation back.
    let bad_role = s
        .user_create(&user("wangwu", &[r1, 987_654]), 11)
        .await
        .unwrap_err();
    assert!(
        matches!(bad_role.violation(), Some(Violation::ForeignKey { .. })),
        "{bad_role:?}"
    );
    assert!(s.user_by_username("wangwu").await.unwrap().is_none());

    let u = s.user_by_username("lilei").await.unwrap().unwrap();
    assert_eq!(
        (u.id, u.org_unit_id, u.status, u.role_ids.clone()),
        (id, Some(team), UserStatus::Active, vec![r1])
    );
    assert_eq!(
        (
            u.failed_logins,
            u.totp_enabled,
            u.totp_last_step,
            u.password_changed_at_ms
        ),
        (0, false, 0, 10)
    );
    assert!(
        !format!("{u:?}").contains("argon2"),
        "password hash leaked into Debug"
    );

    s.user_update(
        id,
        &UserUpdate {
            display_name: Some("李雷"),
            org_unit_id: Some(None),
            status: Some(UserStatus::Disabled),
            role_ids: Some(&[r2, r1]),
        },
        20,
    )
    .await
    .unwrap();
    let u = s.user_by_id(id).await.unwrap().unwrap();
    assert_eq!(
        (u.display_name.as_str(), u.org_unit_id, u.status),
        ("李雷", None, UserStatus::Disabled)
    );
    assert_eq!((u.role_ids.clone(), u.updated_at_ms), (vec![r1, r2], 20));
    // A failing step (unknown role) leaves the user as it was.
    assert!(s
        .user_update(
            id,
            &UserUpdate {
                display_name: Some("x"),
                role_ids: Some(&[424_242]),
                ..Default::default()
            },
            30
        )
        .await
        .is_err());
    assert_eq!(
        s.user_by_id(id).await.unwrap().unwrap().display_name,
        "李雷"
    );
    assert!(matches!(
        s.user_update(999, &UserUpdate::default(), 30).await,
        Err(zhudai_store::StoreError::NotFound)
    ));

    s.user_set_password_hash(id, "$argon2id$new", true, 40)
        .await
        .unwrap();
    let u = s.user_by_id(id).await.unwrap().unwrap();
    assert_eq!(
        (
            u.password_hash.as_str(),
            u.must_change_password,
            u.password_changed_at_ms
        ),
        ("$argon2id$new", true, 40)
    );
    assert!(s.user_by_id(999).await.unwrap().is_none());
}

async fn user_list_filters_and_pages(db: &TestDb) {
    let s = &db.store;
    let r = s.role_create(&role("r", DataScope::Own), 1).await.unwrap();
    for name in ["alice", "bob", "carol", "dave", "a_b"] {
        s.user_create(&user(name, &[r]), 1).await.unwrap();
    }
    s.user_create(
        &NewUser {
            display_name: "张三 Alice",
            ..user("zhangsan", &[])
        },
        1,
    )
    .await
    .unwrap();
    let all = s
        .user_list(&UserQuery {
            text: None,
            offset: 0,
            limit: 3,
        })
        .await
        .unwrap();
    assert_eq!(all.total, 6);
    let names: Vec<_> = all.users.iter().map(|u| u.username.as_str()).collect();
    assert_eq!(names, vec!["a_b", "alice", "bob"]);
    assert_eq!(all.users[1].role_ids, vec![r]);
    let rest = s
        .user_list(&UserQuery {
            text: Some(""),
            offset: 3,
            limit: 3,
        })
        .await
        .unwrap();
    assert_eq!(
        rest.users
            .iter()
            .map(|u| u.username.as_str())
            .collect::<Vec<_>>(),
        vec!["carol", "dave", "zhangsan"]
    );
    assert!(rest.users[2].role_ids.is_empty());
    // Case-insensitive, over username and display name.
    let found = s
        .user_list(&UserQuery {
            text: Some("ALIC"),
            offset: 0,
            limit: 10,
        })
        .await
        .unwrap();
    assert_eq!(found.total, 2);
    assert_eq!(
        found
            .users
            .iter()
            .map(|u| u.username.as_str())
            .collect::<Vec<_>>(),
        vec!["alice", "zhangsan"]
    );
    assert_eq!(
        s.user_list(&UserQuery {
            text: Some("张三"),
            offset: 0,
            limit: 10
        })
        .await
        .unwrap()
        .total,
        1
    );
    // LIKE wildcards in the text are literal.
    let literal = s
        .user_list(&UserQuery {
            text: Some("_"),
            offset: 0,
            limit: 10,
        })
        .await
        .unwrap();
    assert_eq!(
        literal
            .users
            .iter()
            .map(|u| u.username.as_str())
            .collect::<Vec<_>>(),
        vec!["a_b"]
    );
    assert_eq!(
        s.user_list(&UserQuery {
            text: Some("%"),
            offset: 0,
            limit: 10
        })
        .await
        .unwrap()
        .total,
        0
    );
}

async fn failed_logins_lock_out(db: &TestDb) {
    let s = &db.store;
    let id = s.user_create(&user("lilei", &[]), 0).await.unwrap();
    for n in 1..=4 {
        let f = s
            .user_record_failed_login(id, 5, 1_000 + n, n)
            .await
            .unwrap();
        assert_eq!((f.failed_logins, f.locked_until_ms), (n, None));
    }
    let f = s.user_record_failed_login(id, 5, 900_000, 5).await.unwrap();
    assert_eq!((f.failed_logins, f.locked_until_ms), (5, Some(900_000)));
    let u = s.user_by_id(id).await.unwrap().unwrap();
    assert!(u.is_locked_out(899_999) && !u.is_locked_out(900_000));
    // Failing again after the lockout ran out locks again, with the new end.
    let f = s
        .user_record_failed_login(id, 5, 2_000_000, 1_000_000)
        .await
        .unwrap();
    assert_eq!((f.failed_logins, f.locked_until_ms), (6, Some(2_000_000)));
    s.user_reset_failed_logins(id, 2_000_001).await.unwrap();
    let u = s.user_by_id(id).await.unwrap().unwrap();
    assert_eq!((u.failed_logins, u.locked_until_ms), (0, None));
    // Concurrent failures are all counted.
    let mut handles = Vec::new();
    for _ in 0..10 {
        let s = s.clone();
        handles.push(tokio::spawn(async move {
            s.user_record_failed_login(id, 100, 0, 1)
                .await
                .unwrap()
                .failed_logins
        }));
    }
    let mut counts = Vec::new();
    for h in handles {
        counts.push(h.await.unwrap());
    }
    counts.sort_unstable();
    assert_eq!(counts, (1..=10).collect::<Vec<_>>());
    assert!(matches!(
        s.user_record_failed_login(999, 5, 0, 0).await,
        Err(zhudai_store::StoreError::NotFound)
    ));
}

async fn totp_step_only_increases(db: &TestDb) {
    let s = &db.store;
    let id = s.user_create(&user("lilei", &[]), 0).await.unwrap();
    assert!(
        !s.user_enable_totp(id, 1).await.unwrap(),
        "enabled without a secret"
    );
    s.user_set_totp_secret(id, &[1, 2, 3, 0, 255], 2)
        .await
        .unwrap();
    let u = s.user_by_id(id).await.unwrap().unwrap();
    assert_eq!(
        (u.totp_secret_enc.clone(), u.totp_enabled),
        (Some(vec![1, 2, 3, 0, 255]), false)
    );
    assert!(!format!("{u:?}").contains("255"));
    assert!(s.user_enable_totp(id, 3).await.unwrap());
    assert!(s.user_by_id(id).await.unwrap().unwrap().totp_enabled);

    assert!(s.user_advance_totp_step(id, 57_000_000).await.unwrap());
    assert!(
        !s.user_advance_totp_step(id, 57_000_000).await.unwrap(),
        "same step accepted twice"
    );
    assert!(
        !s.user_advance_totp_step(id, 56_999_999).await.unwrap(),
        "older step accepted"
    );
    assert!(s.user_advance_totp_step(id, 57_000_001).await.unwrap());

    // The same code presented to two instances at once: exactly one login wins.
    let other = Store::open(&db.location, &Default::default())
        .await
        .unwrap();
    for step in [57_000_010_i64, 57_000_011, 57_000_012] {
        let mut handles = Vec::new();
        for i in 0..6 {
            let store = if i % 2 == 0 { s.clone() } else { other.clone() };
            handles.push(tokio::spawn(async move {
                store.user_advance_totp_step(id, step).await.unwrap()
            }));
        }
        let mut wins = 0;
        for h in handles {
            wins += usize::from(h.await.unwrap());
        }
        assert_eq!(wins, 1, "step {step}");
    }
    other.close().await;
    assert_eq!(
        s.user_by_id(id).await.unwrap().unwrap().totp_last_step,
        57_000_012
    );

    s.user_disable_totp(id, 4).await.unwrap();
    let u = s.user_by_id(id).await.unwrap().unwrap();
    assert_eq!(
        (u.totp_secret_enc, u.totp_enabled, u.totp_last_step),
        (None, false, 0)
    );
}

async fn sessions_touch_and_revoke_all(db: &TestDb) {
    let s = &db.store;
    let alice = s.user_create(&user("alice", &[]), 0).await.unwrap();
    let bob = s.user_create(&user("bob", &[]), 0).await.unwrap();
    let new = |hash: &'static str, user_id| NewSession {
        token_hash: hash,
        user_id,
        absolute_expires_at_ms: 10_000,
        ip: Some("10.0.0.8"),
        user_agent: None,
        csrf_token_hash: "csrf",
    };
    let a1 = s.session_create(&new("h-a1", alice), 100).await.unwrap();
    let a2 = s.session_create(&new("h-a2", alice), 200).await.unwrap();
    let a3 = s.session_create(&new("h-a3", alice), 300).await.unwrap();
    let b1 = s.session_create(&new("h-b1", bob), 300).await.unwrap();
    let dup = s.session_create(&new("h-a1", bob), 300).await.unwrap_err();
    assert!(
        dup.is_unique_violation("sessions_token_hash_key", "sessions.token_hash"),
        "{dup:?}"
    );

    let got = s.session_by_token_hash("h-a2").await.unwrap().unwrap();
    assert_eq!(
        (
            got.id,
            got.user_id,
            got.last_seen_ms,
            got.ip.as_deref(),
            got.user_agent.as_deref()
        ),
        (a2, alice, 200, Some("10.0.0.8"), None)
    );
    assert!(
        got.is_active(250, 1_000)
            && !got.is_active(1_200, 1_000)
            && !got.is_active(10_000, 100_000)
    );
    assert!(s.session_by_token_hash("nope").await.unwrap().is_none());
    assert!(s.session_touch(a2, 900).await.unwrap());
    assert!(
        !s.session_touch(a2, 800).await.unwrap(),
        "touch moved last_seen back"
    );
    assert_eq!(
        s.session_by_token_hash("h-a2")
            .await
            .unwrap()
            .unwrap()
            .last_seen_ms,
        900,
        "last_seen went back"
    );

    // Idle timeout 500 at t=1000: a1 (seen 100), a3 (seen 300) idle; a2 (seen 900) active.
    let active: Vec<i64> = s
        .sessions_active(alice, 1_000, 500)
        .await
        .unwrap()
        .iter()
        .map(|x| x.id)
        .collect();
    assert_eq!(active, vec![a2]);
    let active: Vec<i64> = s
        .sessions_active(alice, 1_000, 10_000)
        .await
        .unwrap()
        .iter()
        .map(|x| x.id)
        .collect();
    assert_eq!(active, vec![a3, a2, a1]);

    // Log out everywhere else, keeping the current session.
    assert_eq!(
        s.session_revoke_all(alice, Some(a2), 1_100).await.unwrap(),
        2
    );
    let active: Vec<i64> = s
        .sessions_active(alice, 1_200, 10_000)
        .await
        .unwrap()
        .iter()
        .map(|x| x.id)
        .collect();
    assert_eq!(active, vec![a2]);
    assert!(
        !s.session_touch(a1, 1_300).await.unwrap(),
        "revoked session touched"
    );
    assert!(
        s.session_by_token_hash("h-a1")
            .await
            .unwrap()
            .unwrap()
            .revoked_at_ms
            == Some(1_100)
    );
    assert!(s.session_revoke(a2, 1_400).await.unwrap());
    assert!(!s.session_revoke(a2, 1_500).await.unwrap());
    assert_eq!(s.session_revoke_all(alice, None, 1_600).await.unwrap(), 0);
    // Bob is untouched.
    assert_eq!(
        s.sessions_active(bob, 1_600, 10_000).await.unwrap()[0].id,
        b1
    );
    assert_eq!(s.session_revoke_all(bob, None, 1_700).await.unwrap(), 1);
    assert!(s
        .sessions_active(bob, 1_700, 10_000)
        .await
        .unwrap()
        .is_empty());
}

async fn api_tokens_by_hash_and_revocation(db: &TestDb) {
    let s = &db.store;
    let alice = s.user_create(&user("alice", &[]), 0).await.unwrap();
    let hash = zhudai_crypto::tokens::hash_token("zd_secret-token").to_hex();
    let id = s
        .api_token_create(
            &NewApiToken {
                token_hash: &hash,
                user_id: alice,
                name: "funder sync",
                scopes: &["applications:read", "decisions:write"],
                expires_at_ms: Some(5_000),
            },
            100,
        )
        .await
        .unwrap();
    let other = s
        .api_token_create(
            &NewApiToken {
                token_hash: "h2",
                user_id: alice,
                name: "n",
                scopes: &[],
                expires_at_ms: None,
            },
            200,
        )
        .await
        .unwrap();
    assert!(s
        .api_token_create(
            &NewApiToken {
                token_hash: "h3",
                user_id: alice,
                name: "n",
                scopes: &["a b"],
                expires_at_ms: None
            },
            1
        )
        .await
        .is_err());
    let dup = s
        .api_token_create(
            &NewApiToken {
                token_hash: &hash,
                user_id: alice,
                name: "x",
                scopes: &[],
                expires_at_ms: None,
            },
            300,
        )
        .await
        .unwrap_err();
    assert!(
        dup.is_unique_violation("api_tokens_token_hash_key", "api_tokens.token_hash"),
        "{dup:?}"
    );

    let presented = zhudai_crypto::tokens::hash_token("zd_secret-token").to_hex();
    let t = s.api_token_by_hash(&presented).await.unwrap().unwrap();
    assert_eq!(
        (t.id, t.user_id, t.name.as_str(), t.last_used_ms),
        (id, alice, "funder sync", None)
    );
    assert_eq!(t.scopes, vec!["applications:read", "decisions:write"]);
    assert!(t.is_usable(4_999) && !t.is_usable(5_000));
    assert!(s
        .api_token_by_hash(&zhudai_crypto::tokens::hash_token("zd_guess").to_hex())
        .await
        .unwrap()
        .is_none());
    s.api_token_touch(id, 400).await.unwrap();
    s.api_token_touch(id, 300).await.unwrap();
    assert_eq!(
        s.api_token_by_hash(&presented)
            .await
            .unwrap()
            .unwrap()
            .last_used_ms,
        Some(400)
    );

    let listed: Vec<i64> = s
        .api_tokens_of_user(alice)
        .await
        .unwrap()
        .iter()
        .map(|t| t.id)
        .collect();
    assert_eq!(listed, vec![other, id]);
    assert!(s.api_token_revoke(id, 500).await.unwrap());
    assert!(!s.api_token_revoke(id, 600).await.unwrap());
    let t = s.api_token_by_hash(&presented).await.unwrap().unwrap();
    assert_eq!(t.revoked_at_ms, Some(500));
    assert!(!t.is_usable(501));
    assert!(s
        .api_token_by_hash("h2")
        .await
        .unwrap()
        .unwrap()
        .is_usable(i64::MAX - 1));
}

async fn subject_key_get_or_create_is_race_safe(db: &TestDb) {
    let s = &db.store;
    let ring = std::sync::Arc::new(ring());
    let other = Store::open(&db.location, &Default::default())
        .await
        .unwrap();
    let mut handles = Vec::new();
    for i in 0..16 {
        let store = if i % 2 == 0 { s.clone() } else { other.clone() };
        let ring = ring.clone();
        handles.push(tokio::spawn(async move {
            let candidate = dek(&ring);
            match store
                .data_key_for_subject("customer:42", &candidate, i)
                .await
                .unwrap()
            {
                SubjectDek::Ready(k) => (k, candidate.id),
                SubjectDek::Destroyed { .. } => panic!("fresh subject reported destroyed"),
            }
        }));
    }
    let mut ids = HashSet::new();
    let mut winners = 0;
    for h in handles {
        let (key, candidate_id) = h.await.unwrap();
        winners += usize::from(key.id == candidate_id);
        // Every caller can use what it got.
        zhudai_crypto::envelope::unwrap_dek(&key, &ring).unwrap();
        ids.insert(key.id);
    }
    assert_eq!(ids.len(), 1, "several keys for one subject: {ids:?}");
    assert_eq!(winners, 1);
    other.close().await;
    let n: i64 = sqlx::Row::try_get(
        &sqlx::query("SELECT COUNT(*) AS n FROM data_keys")
            .fetch_one(s.reader())
            .await
            .unwrap(),
        "n",
    )
    .unwrap();
    assert_eq!(n, 1);
    // A second subject gets its own key.
    let SubjectDek::Ready(k2) = s
        .data_key_for_subject("customer:43", &dek(&ring), 1)
        .await
        .unwrap()
    else {
        panic!()
    };
    assert!(!ids.contains(&k2.id));
}

async fn destroyed_key_is_never_usable(db: &TestDb) {
    let s = &db.store;
    let ring = ring();
    let candidate = dek(&ring);
    let SubjectDek::Ready(key) = s
        .data_key_for_subject("customer:7", &candidate, 1)
        .await
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(key, candidate);
    assert_eq!(s.data_key(&key.id).await.unwrap(), Some(key.clone()));

    assert_eq!(
        s.data_key_destroy_subject("customer:7", 50).await.unwrap(),
        Some(key.id.clone())
    );
    assert_eq!(
        s.data_key_destroy_subject("customer:7", 60).await.unwrap(),
        None
    );
    assert_eq!(
        s.data_key_destroy_subject("customer:nobody", 60)
            .await
            .unwrap(),
        None
    );
    assert_eq!(s.data_key(&key.id).await.unwrap(), None);
    assert_eq!(
        s.data_key_of_subject("customer:7").await.unwrap(),
        Some(SubjectDek::Destroyed {
            id: key.id.clone(),
            destroyed_at_ms: 50
        })
    );
    // get-or-create never replaces a destroyed key with a fresh one.
    assert_eq!(
        s.data_key_for_subject("customer:7", &dek(&ring), 70)
            .await
            .unwrap(),
        SubjectDek::Destroyed {
            id: key.id.clone(),
            destroyed_at_ms: 50
        }
    );
    let info = s.data_key_info(&key.id).await.unwrap().unwrap();
    assert_eq!(
        (info.subject.as_deref(), info.destroyed_at_ms),
        (Some("customer:7"), Some(50))
    );
    // The key material is really gone from the row, and cannot be put back.
    let wrapped: Vec<u8> = sqlx::Row::try_get(
        &sqlx::query("SELECT wrapped FROM data_keys WHERE id = $1")
            .bind(key.id.as_str())
            .fetch_one(s.reader())
            .await
            .unwrap(),
        "wrapped",
    )
    .unwrap();
    assert!(wrapped.is_empty());
    let restore = sqlx::query("UPDATE data_keys SET wrapped = $1 WHERE id = $2")
        .bind(key.wrapped.clone())
        .bind(key.id.as_str())
        .execute(s.writer())
        .await
        .unwrap_err();
    assert!(matches!(
        zhudai_store::StoreError::from(restore).violation(),
        Some(Violation::Check { .. })
    ));
    // Neither rotation lists it nor rewrap revives it.
    assert!(s
        .data_keys_by_master(&key.master_key_id, None, 100)
        .await
        .unwrap()
        .is_empty());
    assert!(!s.data_key_rewrap(&key, &key.master_key_id).await.unwrap());
    assert_eq!(s.data_key(&key.id).await.unwrap(), None);
}

async fn system_key_and_rewrap(db: &TestDb) {
    let s = &db.store;
    let mut ring = ring();
    // Concurrent first starts agree on one system key.
    let other = Store::open(&db.location, &Default::default())
        .await
        .unwrap();
    let candidates: Vec<WrappedDek> = (0..6).map(|_| dek(&ring)).collect();
    let mut handles = Vec::new();
    for (i, c) in candidates.into_iter().enumerate() {
        let store = if i % 2 == 0 { s.clone() } else { other.clone() };
        handles.push(tokio::spawn(async move {
            store.data_key_system(&c, 1).await.unwrap()
        }));
    }
    let mut ids = HashSet::new();
    for h in handles {
        ids.insert(h.await.unwrap().id);
    }
    other.close().await;
    assert_eq!(ids.len(), 1);
    let system = s.data_key_system(&dek(&ring), 2).await.unwrap();
    assert!(ids.contains(&system.id));
    let n: i64 = sqlx::Row::try_get(
        &sqlx::query("SELECT COUNT(*) AS n FROM data_keys")
            .fetch_one(s.reader())
            .await
            .unwrap(),
        "n",
    )
    .unwrap();
    assert_eq!(n, 1, "losing candidates left rows behind");

    // Rotation: list by master key in pages, rewrap each, conditional on the old master.
    let old_master = system.master_key_id.clone();
    for i in 0..5 {
        s.data_key_for_subject(&format!("customer:{i}"), &dek(&ring), 3)
            .await
            .unwrap();
    }
    let first = s.data_keys_by_master(&old_master, None, 4).await.unwrap();
    let second = s
        .data_keys_by_master(&old_master, Some(&first[3].id), 4)
        .await
        .unwrap();
    assert_eq!((first.len(), second.len()), (4, 2));
    let new_master = MasterKey::generate().unwrap();
    for key in first.iter().chain(&second) {
        let rewrapped = zhudai_crypto::envelope::rewrap(key, &ring, &new_master).unwrap();
        assert!(s.data_key_rewrap(&rewrapped, &old_master).await.unwrap());
        assert!(
            !s.data_key_rewrap(&rewrapped, &old_master).await.unwrap(),
            "rewrapped twice"
        );
    }
    assert!(s
        .data_keys_by_master(&old_master, None, 100)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        s.data_keys_by_master(new_master.id(), None, 100)
            .await
            .unwrap()
            .len(),
        6
    );
    let new_id = new_master.id().to_owned();
    ring.rotate(new_master);
    assert!(ring.remove_retired(&old_master));
    let system = s.data_key(&system.id).await.unwrap().unwrap();
    assert_eq!(system.master_key_id, new_id);
    zhudai_crypto::envelope::unwrap_dek(&system, &ring).unwrap();
}

fn draft(n: i64) -> AuditDraft {
    AuditDraft::new(1_700_000_000_000 + n, "customer.update", "success")
        .actor(format!("u{}", n % 3))
        .role("customer_manager")
        .source_ip("10.0.0.8")
        .request_id(format!("req-{n}"))
        .target(format!("customer:{}", n % 5))
        .change_digest(zhudai_crypto::audit_chain::digest_change(
            &serde_json::json!(null),
            &serde_json::json!({ "n": n }),
        ))
}

async fn audit_appends_from_many_tasks_and_two_instances(db: &TestDb) {
    let s = &db.store;
    let first = s.audit_append(&draft(0)).await.unwrap();
    assert_eq!((first.seq, first.prev_hash.as_str()), (1, GENESIS_HASH));
    let other = Store::open(&db.location, &Default::default())
        .await
        .unwrap();
    let mut handles = Vec::new();
    for t in 0..16_i64 {
        let store = if t % 2 == 0 { s.clone() } else { other.clone() };
        handles.push(tokio::spawn(async move {
            let mut seqs = Vec::new();
            for i in 0..10 {
                seqs.push(store.audit_append(&draft(t * 100 + i)).await.unwrap().seq);
            }
            seqs
        }));
    }
    let mut seqs = HashSet::new();
    for h in handles {
        for seq in h.await.unwrap() {
            assert!(seqs.insert(seq), "seq {seq} given twice");
        }
    }
    other.close().await;
    assert_eq!(seqs, (2..=161).collect::<HashSet<i64>>());
    let head = s.audit_verify(&[]).await.unwrap().unwrap();
    assert_eq!((head.seq, head.records_checked), (161, 161));
    assert_eq!(s.audit_head().await.unwrap().hash, head.hash);
    // Small pages walk the same chain.
    assert_eq!(s.audit_verify_paged(&[], 7).await.unwrap().unwrap(), head);
    assert_eq!(s.audit_records_after(150, 100).await.unwrap().len(), 11);
}

async fn audit_append_commits_with_the_business_change(db: &TestDb) {
    let s = &db.store;
    s.audit_append(&draft(1)).await.unwrap();
    // Rolled back: neither the change nor the record exist, and the seq is given back.
    let mut tx = s.begin().await.unwrap();
    sqlx::query("INSERT INTO system_meta (key, value, updated_at_ms) VALUES ('k', 'v', 0)")
        .execute(&mut *tx)
        .await
        .unwrap();
    let rec = audit::append(&mut tx, &draft(2)).await.unwrap();
    assert_eq!(rec.seq, 2);
    tx.rollback().await.unwrap();
    assert_eq!(s.meta_get("k").await.unwrap(), None);
    assert!(s.audit_record(2).await.unwrap().is_none());
    // Committed: both.
    let mut tx = s.begin().await.unwrap();
    sqlx::query("INSERT INTO system_meta (key, value, updated_at_ms) VALUES ('k', 'v', 0)")
        .execute(&mut *tx)
        .await
        .unwrap();
    let rec = audit::append(&mut tx, &draft(3)).await.unwrap();
    let rec2 = audit::append(&mut tx, &draft(4)).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        (rec.seq, rec2.seq, rec2.prev_hash.clone()),
        (2, 3, rec.hash.clone())
    );
    assert_eq!(s.audit_record(2).await.unwrap(), Some(rec));
    assert_eq!(s.meta_get("k").await.unwrap().as_deref(), Some("v"));
    assert_eq!(s.audit_verify(&[]).await.unwrap().unwrap().seq, 3);
}

async fn audit_search_filters_and_pages(db: &TestDb) {
    let s = &db.store;
    for n in 0..30 {
        let mut d = draft(n);
        if n % 10 == 0 {
            d.action = "auth.login".into();
            d.outcome = "denied".into();
        }
        if n == 7 {
            d.action = "customer_x.update".into(); // shares "customer" but not "customer."
        }
        s.audit_append(&d).await.unwrap();
    }
    let everything = AuditFilter::default();
    assert_eq!(s.audit_count(&everything).await.unwrap(), 30);
    let page = s.audit_search(&everything, None, 12).await.unwrap();
    assert_eq!(page.records.first().map(|r| r.seq), Some(30));
    assert_eq!(page.next_before_seq, Some(19));
    let page2 = s
        .audit_search(&everything, page.next_before_seq, 12)
        .await
        .unwrap();
    assert_eq!(page2.records.first().map(|r| r.seq), Some(18));
    let page3 = s
        .audit_search(&everything, page2.next_before_seq, 12)
        .await
        .unwrap();
    assert_eq!((page3.records.len(), page3.next_before_seq), (6, None));

    let by_action = AuditFilter {
        action_prefix: Some("customer.".into()),
        ..Default::default()
    };
    assert_eq!(s.audit_count(&by_action).await.unwrap(), 26);
    let login = AuditFilter {
        action_prefix: Some("auth.".into()),
        outcome: Some("denied".into()),
        ..Default::default()
    };
    let found = s.audit_search(&login, None, 100).await.unwrap();
    assert_eq!(
        found.records.iter().map(|r| r.seq).collect::<Vec<_>>(),
        vec![21, 11, 1]
    );
    assert_eq!(
        s.audit_count(&AuditFilter {
            action_prefix: Some("Auth.".into()),
            ..Default::default()
        })
        .await
        .unwrap(),
        0
    );
    assert_eq!(
        s.audit_count(&AuditFilter {
            action_prefix: Some("%".into()),
            ..Default::default()
        })
        .await
        .unwrap(),
        0
    );

    let actor = AuditFilter {
        actor: Some("u1".into()),
        target: Some("customer:1".into()),
        ..Default::default()
    };
    // n % 3 == 1 and n % 5 == 1: n = 1, 16 → seqs 2, 17.
    let found = s.audit_search(&actor, None, 100).await.unwrap();
    assert_eq!(
        found.records.iter().map(|r| r.seq).collect::<Vec<_>>(),
        vec![17, 2]
    );
    let window = AuditFilter {
        from_ms: Some(1_700_000_000_005),
        to_ms: Some(1_700_000_000_010),
        ..Default::default()
    };
    assert_eq!(s.audit_count(&window).await.unwrap(), 5);
    let all = AuditFilter {
        from_ms: Some(0),
        to_ms: Some(i64::MAX),
        actor: Some("u1".into()),
        action_prefix: Some("customer".into()),
        target: Some("customer:1".into()),
        outcome: Some("success".into()),
    };
    assert_eq!(s.audit_count(&all).await.unwrap(), 2);
    assert_eq!(
        s.audit_search(&all, Some(17), 1).await.unwrap().records[0].seq,
        2
    );
}

/// Lets a test play the insider with database access: switches the append-only triggers off.
async fn disable_audit_triggers(s: &Store) {
    let sql = match s.backend() {
        Backend::Postgres => "ALTER TABLE audit_log DISABLE TRIGGER ALL",
        Backend::Sqlite => "DROP TRIGGER audit_log_no_update; DROP TRIGGER audit_log_no_delete;",
    };
    sqlx::raw_sql(sql).execute(s.writer()).await.unwrap();
}

async fn five_records(s: &Store) {
    for n in 1..=5 {
        s.audit_append(&draft(n)).await.unwrap();
    }
    assert_eq!(s.audit_verify(&[]).await.unwrap().unwrap().seq, 5);
    disable_audit_triggers(s).await;
}

async fn audit_detects_an_edited_row(db: &TestDb) {
    let s = &db.store;
    five_records(s).await;
    sqlx::query("UPDATE audit_log SET outcome = 'denied' WHERE seq = 3")
        .execute(s.writer())
        .await
        .unwrap();
    let brk = s.audit_verify(&[]).await.unwrap().unwrap_err();
    assert_eq!(brk.seq, 3);
    assert!(
        matches!(brk.kind, BreakKind::AlteredContent { .. }),
        "{brk}"
    );
    assert!(brk.to_string().contains("seq 3"));
}

async fn audit_detects_a_deleted_row(db: &TestDb) {
    let s = &db.store;
    five_records(s).await;
    sqlx::query("DELETE FROM audit_log WHERE seq = 3")
        .execute(s.writer())
        .await
        .unwrap();
    let brk = s.audit_verify_paged(&[], 2).await.unwrap().unwrap_err();
    assert_eq!(
        (brk.seq, brk.kind),
        (
            4,
            BreakKind::SeqGap {
                expected: 3,
                found: 4
            }
        )
    );
    // Deleting the newest record leaves an intact-looking shorter chain; the head catches it.
    sqlx::query("DELETE FROM audit_log WHERE seq >= 3")
        .execute(s.writer())
        .await
        .unwrap();
    let brk = s.audit_verify(&[]).await.unwrap().unwrap_err();
    assert_eq!(brk.seq, 5);
    assert!(
        matches!(brk.kind, BreakKind::CheckpointMismatch { .. }),
        "{brk}"
    );
}

async fn audit_detects_swapped_rows(db: &TestDb) {
    let s = &db.store;
    five_records(s).await;
    for (from, to) in [(3, -3), (4, 3), (-3, 4)] {
        sqlx::query("UPDATE audit_log SET seq = $1 WHERE seq = $2")
            .bind(to)
            .bind(from)
            .execute(s.writer())
            .await
            .unwrap();
    }
    let brk = s.audit_verify(&[]).await.unwrap().unwrap_err();
    assert_eq!(brk.seq, 3);
    assert!(matches!(brk.kind, BreakKind::BrokenLink { .. }), "{brk}");
}

async fn audit_rows_are_append_only(db: &TestDb) {
    let s = &db.store;
    s.audit_append(&draft(1)).await.unwrap();
    for sql in [
        "UPDATE audit_log SET outcome = 'denied' WHERE seq = 1",
        "UPDATE audit_log SET seq = 2 WHERE seq = 1",
        "DELETE FROM audit_log WHERE seq = 1",
        "DELETE FROM audit_log",
    ] {
        let err = sqlx::query(sql).execute(s.writer()).await.unwrap_err();
        assert!(
            err.to_string().contains("audit_log is append-only"),
            "{sql}: {err}"
        );
    }
    if s.backend() == Backend::Postgres {
        let err = sqlx::query("TRUNCATE audit_log")
            .execute(s.writer())
            .await
            .unwrap_err();
        assert!(err.to_string().contains("append-only"), "{err}");
    }
    let key = CheckpointSigningKey::generate().unwrap();
    let head = s.audit_head().await.unwrap();
    s.audit_checkpoint_store(&sign_checkpoint(&key, head.seq, &head.hash, 5))
        .await
        .unwrap();
    let err = sqlx::query("DELETE FROM audit_checkpoints")
        .execute(s.writer())
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("audit_checkpoints is append-only"),
        "{err}"
    );
    assert_eq!(s.audit_verify(&[]).await.unwrap().unwrap().seq, 1);
}

async fn audit_checkpoints_and_signing_keys(db: &TestDb) {
    let s = &db.store;
    assert!(s.audit_signing_key_active().await.unwrap().is_none());
    let key = CheckpointSigningKey::generate().unwrap();
    let stored = s
        .audit_signing_key_init(&key.public_key_hex(), b"sealed-secret", 1)
        .await
        .unwrap();
    assert_eq!(
        (stored.public_key.clone(), stored.active),
        (key.public_key_hex(), true)
    );
    // A second instance starting later keeps the first key.
    let late = CheckpointSigningKey::generate().unwrap();
    let again = s
        .audit_signing_key_init(&late.public_key_hex(), b"other", 2)
        .await
        .unwrap();
    assert_eq!(again, stored);

    assert!(s.audit_checkpoint_latest().await.unwrap().is_none());
    for n in 1..=3 {
        s.audit_append(&draft(n)).await.unwrap();
    }
    let head = s.audit_head().await.unwrap();
    let cp = sign_checkpoint(&key, head.seq, &head.hash, 10);
    s.audit_checkpoint_store(&cp).await.unwrap();
    s.audit_checkpoint_store(&cp).await.unwrap();
    for n in 4..=6 {
        s.audit_append(&draft(n)).await.unwrap();
    }
    let latest = s.audit_checkpoint_latest().await.unwrap().unwrap();
    assert_eq!(latest, cp);
    zhudai_crypto::audit_chain::verify_checkpoint(&latest, &key.public_key_hex()).unwrap();
    assert_eq!(s.audit_checkpoints().await.unwrap(), vec![cp.clone()]);
    assert_eq!(
        s.audit_verify(std::slice::from_ref(&cp))
            .await
            .unwrap()
            .unwrap()
            .seq,
        6
    );
    // A checkpoint the chain does not pass through is reported at its seq.
    let forged = sign_checkpoint(&key, 2, &head.hash, 11);
    let brk = s.audit_verify(&[forged]).await.unwrap().unwrap_err();
    assert_eq!(brk.seq, 2);

    s.audit_signing_key_rotate(&late.public_key_hex(), b"new-sealed", 20)
        .await
        .unwrap();
    let active = s.audit_signing_key_active().await.unwrap().unwrap();
    assert_eq!(active.public_key, late.public_key_hex());
    let keys = s.audit_signing_keys().await.unwrap();
    assert_eq!(keys.len(), 2);
    assert_eq!((keys[0].active, keys[0].retired_at_ms), (false, Some(20)));
    assert_eq!(keys[1].secret_enc, b"new-sealed".to_vec());
}
