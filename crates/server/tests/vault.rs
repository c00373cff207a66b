//! The field-encryption service (`zhudai_server::vault`) on SQLite and on PostgreSQL:
//! round trips, binding to the place, the key directory, rotation while another
//! instance runs, crypto-shredding, blind indexes, and no plaintext at rest.
//! PostgreSQL is required: when it cannot be reached the `postgres::` tests fail.
//!
//! Throughput (ignored by default):
//! `cargo test --release -p zhudai-server --test vault -- --ignored --nocapture`

// The scenarios are plain async fns run by `on_both!`, not `#[test]`s, so clippy's
// allow-*-in-tests does not reach them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::{Arc, Mutex};

use secrecy::SecretString;
use zhudai_domain::clock::SystemClock;
use zhudai_server::vault::{
    rotate_master, Algorithm, FieldAad, FieldKind, Vault, VaultError, ACTIVE_FILE, KEYS_DIR,
};
use zhudai_store::keys::SubjectDek;
use zhudai_store::on_both;
use zhudai_store::sqlx::{self, Row};
use zhudai_store::testing::TestDb;
use zhudai_store::{Backend, Store};

on_both!(
    round_trip_system_and_subject_fields,
    ciphertext_is_bound_to_its_place_and_subject,
    a_second_vault_reads_the_first_ones_data,
    subject_key_creation_races_to_one_key,
    rotation_rewraps_every_key_and_old_data_still_decrypts,
    shredding_a_subject_loses_only_their_data,
    blind_indexes_match_normalised_values_and_survive_rotation,
    plaintext_is_never_stored,
    env_master_key_creates_no_file_and_cannot_be_rotated,
    sm4_deployment_round_trips,
    concurrent_first_starts_agree_on_one_key,
);

const ID_NUMBER: &str = "11010519491231002X";

async fn open_at(store: &Store, dir: &Path) -> Vault {
    Vault::open(
        store,
        dir,
        None,
        Algorithm::Aes256Gcm,
        Arc::new(SystemClock),
    )
    .await
    .unwrap()
}

async fn open(db: &TestDb) -> Vault {
    open_at(&db.store, db.dir.path()).await
}

fn keys_dir(db: &TestDb) -> std::path::PathBuf {
    db.dir.path().join(KEYS_DIR)
}

fn key_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with("master-") && n.ends_with(".key"))
        .collect();
    names.sort();
    names
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

async fn round_trip_system_and_subject_fields(db: &TestDb) {
    let vault = open(db).await;
    let aad = FieldAad::new("person", "id_number", "42");
    for subject in [None, Some("person:42"), Some("user:7")] {
        let ct = vault.encrypt_field(subject, &aad, ID_NUMBER).await.unwrap();
        assert!(!ct
            .windows(ID_NUMBER.len())
            .any(|w| w == ID_NUMBER.as_bytes()));
        let back = vault.decrypt_field(subject, &aad, &ct).await.unwrap();
        assert_eq!(back.as_str(), ID_NUMBER);
        // Two encryptions of one value differ (random nonce).
        let again = vault.encrypt_field(subject, &aad, ID_NUMBER).await.unwrap();
        assert_ne!(ct, again);
    }
    // Chinese text, empty text.
    let name = FieldAad::new("person", "name", "42");
    let ct = vault
        .encrypt_field(Some("person:42"), &name, "欧阳娜娜")
        .await
        .unwrap();
    let back = vault
        .decrypt_field(Some("person:42"), &name, &ct)
        .await
        .unwrap();
    assert_eq!(back.as_str(), "欧阳娜娜");
    let ct = vault.encrypt_field(None, &name, "").await.unwrap();
    assert_eq!(
        vault
            .decrypt_field(None, &name, &ct)
            .await
            .unwrap()
            .as_str(),
        ""
    );

    // One DEK per subject, made on first use and wrapped under the active master key.
    let Some(SubjectDek::Ready(dek)) = db.store.data_key_of_subject("person:42").await.unwrap()
    else {
        panic!("person:42 has a key")
    };
    assert_eq!(dek.master_key_id, vault.active_master_key_id());
    assert!(db
        .store
        .data_key_of_subject("person:43")
        .await
        .unwrap()
        .is_none());

    // Debug output names key ids, never key material.
    let dbg = format!("{vault:?}");
    assert!(dbg.contains(&vault.active_master_key_id()), "{dbg}");
    let key_file = fs::read_to_string(keys_dir(db).join(&key_files(&keys_dir(db))[0])).unwrap();
    assert!(!dbg.contains(key_file.trim()));
    assert!(!dbg.contains(ID_NUMBER));
}

async fn ciphertext_is_bound_to_its_place_and_subject(db: &TestDb) {
    let vault = open(db).await;
    let here = FieldAad::new("person", "id_number", "42");
    for subject in [None, Some("person:42")] {
        let ct = vault
            .encrypt_field(subject, &here, ID_NUMBER)
            .await
            .unwrap();
        for elsewhere in [
            FieldAad::new("person", "id_number", "43"),
            FieldAad::new("person", "phone", "42"),
            FieldAad::new("loan", "id_number", "42"),
            // Length prefixes: moving characters between parts changes the AAD.
            FieldAad::new("person", "id_numbe", "r42"),
        ] {
            let err = vault
                .decrypt_field(subject, &elsewhere, &ct)
                .await
                .unwrap_err();
            assert!(matches!(err, VaultError::Decrypt), "{err}");
            assert!(!err.to_string().contains(ID_NUMBER));
        }
        let mut tampered = ct.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert!(matches!(
            vault.decrypt_field(subject, &here, &tampered).await,
            Err(VaultError::Decrypt)
        ));
        assert!(matches!(
            vault.decrypt_field(subject, &here, &ct[..5]).await,
            Err(VaultError::Malformed(_))
        ));
    }
    // Another subject's key, the system key, or a subject with no key: all refuse.
    let ct = vault
        .encrypt_field(Some("person:42"), &here, ID_NUMBER)
        .await
        .unwrap();
    vault
        .encrypt_field(Some("person:1"), &here, "x")
        .await
        .unwrap();
    for subject in [Some("person:1"), None, Some("person:never")] {
        assert!(matches!(
            vault.decrypt_field(subject, &here, &ct).await,
            Err(VaultError::Decrypt)
        ));
    }
    // Decrypting never creates a key.
    assert!(db
        .store
        .data_key_of_subject("person:never")
        .await
        .unwrap()
        .is_none());
}

async fn a_second_vault_reads_the_first_ones_data(db: &TestDb) {
    let first = open(db).await;
    let aad = FieldAad::new("person", "phone", "9");
    let sys = first
        .encrypt_field(None, &aad, "13812345678")
        .await
        .unwrap();
    let subj = first
        .encrypt_field(Some("person:9"), &aad, "13812345678")
        .await
        .unwrap();
    let files = key_files(&keys_dir(db));
    assert_eq!(files.len(), 1);
    drop(first);

    let second = open(db).await;
    // No new key was made, and the same one is active.
    assert_eq!(key_files(&keys_dir(db)), files);
    assert_eq!(
        files[0],
        format!("master-{}.key", second.active_master_key_id())
    );
    for (subject, ct) in [(None, &sys), (Some("person:9"), &subj)] {
        assert_eq!(
            second
                .decrypt_field(subject, &aad, ct)
                .await
                .unwrap()
                .as_str(),
            "13812345678"
        );
    }

    // Another data directory (another master key) cannot open this database.
    let other = tempfile::tempdir().unwrap();
    let err = Vault::open(
        &db.store,
        other.path(),
        None,
        Algorithm::Aes256Gcm,
        Arc::new(SystemClock),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, VaultError::UnknownMasterKey { .. }), "{err}");
    assert!(err.to_string().contains("restore that key file"), "{err}");
}

async fn subject_key_creation_races_to_one_key(db: &TestDb) {
    let a = open(db).await;
    let b = open(db).await;
    let aad = FieldAad::new("person", "name", "5");
    for round in 0..5 {
        let subject = format!("person:race{round}");
        let (ca, cb) = tokio::join!(
            a.encrypt_field(Some(&subject), &aad, "张三"),
            b.encrypt_field(Some(&subject), &aad, "李四"),
        );
        let (ca, cb) = (ca.unwrap(), cb.unwrap());
        assert_eq!(
            b.decrypt_field(Some(&subject), &aad, &ca)
                .await
                .unwrap()
                .as_str(),
            "张三"
        );
        assert_eq!(
            a.decrypt_field(Some(&subject), &aad, &cb)
                .await
                .unwrap()
                .as_str(),
            "李四"
        );
    }
}

async fn rotation_rewraps_every_key_and_old_data_still_decrypts(db: &TestDb) {
    let dir = db.dir.path();
    let v1 = open(db).await;
    let v2 = open(db).await;
    let old_id = v1.active_master_key_id();
    let aad = FieldAad::new("person", "id_number", "r");
    let mut written = Vec::new();
    written.push((None, v1.encrypt_field(None, &aad, ID_NUMBER).await.unwrap()));
    for i in 0..5 {
        let s = format!("person:{i}");
        let ct = v1.encrypt_field(Some(&s), &aad, ID_NUMBER).await.unwrap();
        written.push((Some(s), ct));
    }
    // Written by v2 only, so v1 has not cached its key.
    let ct9 = v2
        .encrypt_field(Some("person:9"), &aad, ID_NUMBER)
        .await
        .unwrap();
    written.push((Some("person:9".into()), ct9.clone()));
    // A shredded subject is not brought back by the rotation.
    v1.encrypt_field(Some("person:gone"), &aad, "x")
        .await
        .unwrap();
    assert!(v1.shred_subject("person:gone").await.unwrap());
    let index_before = v1.blind_index(FieldKind::IdNumber, ID_NUMBER);

    let calls = Mutex::new(Vec::new());
    let report = rotate_master(&db.store, dir, None, None, |done, total| {
        calls.lock().unwrap().push((done, total))
    })
    .await
    .unwrap();
    // The system DEK, five subjects and person:9.
    assert_eq!(report.rewrapped, 7, "{report:?}");
    assert_eq!(report.previous_master_key_id, old_id);
    assert_ne!(report.new_master_key_id, old_id);
    assert_eq!(report.remaining_under_retired, 0);
    assert_eq!(report.unknown_master, 0);
    assert!(report.failed.is_empty());
    assert_eq!(report.retired_key_ids, vec![old_id.clone()]);
    assert_eq!(calls.lock().unwrap().last(), Some(&(7, 7)));
    assert!(
        report.summary().contains("7 data key(s) rewrapped"),
        "{}",
        report.summary()
    );
    let new_id = report.new_master_key_id.clone();

    // Keys: the old file is kept, the new one is active, nothing is wrapped under the old.
    let kd = keys_dir(db);
    assert_eq!(key_files(&kd).len(), 2);
    assert_eq!(mode(&kd.join(format!("master-{new_id}.key"))), 0o600);
    assert_eq!(
        fs::read_to_string(kd.join(ACTIVE_FILE)).unwrap().trim(),
        new_id
    );
    assert!(db
        .store
        .data_keys_by_master(&old_id, None, 100)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        db.store
            .data_keys_by_master(&new_id, None, 100)
            .await
            .unwrap()
            .len(),
        7
    );
    assert!(matches!(
        db.store.data_key_of_subject("person:gone").await.unwrap(),
        Some(SubjectDek::Destroyed { .. })
    ));

    // A fresh vault reads everything, with the same blind indexes.
    let v3 = open(db).await;
    assert_eq!(v3.active_master_key_id(), new_id);
    assert_eq!(v3.master_key_ids(), vec![new_id.clone(), old_id.clone()]);
    for (subject, ct) in &written {
        let back = v3
            .decrypt_field(subject.as_deref(), &aad, ct)
            .await
            .unwrap();
        assert_eq!(back.as_str(), ID_NUMBER);
    }
    assert_eq!(v3.blind_index(FieldKind::IdNumber, ID_NUMBER), index_before);

    // The old instance: person:9's key is now wrapped under a key it has never seen,
    // so it reloads the key directory.
    assert_eq!(v1.active_master_key_id(), old_id);
    let back = v1
        .decrypt_field(Some("person:9"), &aad, &ct9)
        .await
        .unwrap();
    assert_eq!(back.as_str(), ID_NUMBER);
    assert_eq!(v1.active_master_key_id(), new_id);
    for (subject, ct) in &written {
        let back = v1
            .decrypt_field(subject.as_deref(), &aad, ct)
            .await
            .unwrap();
        assert_eq!(back.as_str(), ID_NUMBER);
    }
    // v2 has not reloaded yet; a new subject's key goes under the new master anyway.
    assert_eq!(v2.active_master_key_id(), old_id);
    v2.encrypt_field(Some("person:new"), &aad, "y")
        .await
        .unwrap();
    let Some(SubjectDek::Ready(fresh)) = db.store.data_key_of_subject("person:new").await.unwrap()
    else {
        panic!("person:new has a key")
    };
    assert_eq!(fresh.master_key_id, new_id);
    assert_eq!(v2.active_master_key_id(), new_id);

    // A second rotation; then the oldest key file can go and everything still reads.
    let second = rotate_master(&db.store, dir, None, None, |_, _| {})
        .await
        .unwrap();
    assert_eq!(second.rewrapped, 8);
    assert_eq!(second.previous_master_key_id, new_id);
    fs::remove_file(kd.join(format!("master-{old_id}.key"))).unwrap();
    let v4 = open(db).await;
    assert_eq!(v4.master_key_ids().len(), 2);
    for (subject, ct) in &written {
        let back = v4
            .decrypt_field(subject.as_deref(), &aad, ct)
            .await
            .unwrap();
        assert_eq!(back.as_str(), ID_NUMBER);
    }
    assert_eq!(v4.blind_index(FieldKind::IdNumber, ID_NUMBER), index_before);

    // Rotation needs an initialised key directory.
    let empty = tempfile::tempdir().unwrap();
    let err = rotate_master(&db.store, empty.path(), None, None, |_, _| {})
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("nothing") || err.to_string().contains("no key to rotate"),
        "{err}"
    );
}

async fn shredding_a_subject_loses_only_their_data(db: &TestDb) {
    let vault = open(db).await;
    let other = open(db).await;
    let aad = FieldAad::new("person", "id_number", "1");
    let alice = vault
        .encrypt_field(Some("person:alice"), &aad, ID_NUMBER)
        .await
        .unwrap();
    let bob = vault
        .encrypt_field(Some("person:bob"), &aad, "110105194912310037")
        .await
        .unwrap();
    let system = vault.encrypt_field(None, &aad, "system").await.unwrap();

    assert!(vault.shred_subject("person:alice").await.unwrap());
    for v in [&vault, &open(db).await] {
        let err = v
            .decrypt_field(Some("person:alice"), &aad, &alice)
            .await
            .unwrap_err();
        assert!(matches!(err, VaultError::Shredded { ref subject } if subject == "person:alice"));
        assert!(err.to_string().contains("erased"), "{err}");
        // No new data can be written for an erased person either.
        assert!(matches!(
            v.encrypt_field(Some("person:alice"), &aad, "new").await,
            Err(VaultError::Shredded { .. })
        ));
        assert_eq!(
            v.decrypt_field(Some("person:bob"), &aad, &bob)
                .await
                .unwrap()
                .as_str(),
            "110105194912310037"
        );
        assert_eq!(
            v.decrypt_field(None, &aad, &system).await.unwrap().as_str(),
            "system"
        );
    }
    // Idempotent; unknown subjects have nothing to shred.
    assert!(!vault.shred_subject("person:alice").await.unwrap());
    assert!(!other.shred_subject("person:nobody").await.unwrap());
}

async fn blind_indexes_match_normalised_values_and_survive_rotation(db: &TestDb) {
    let vault = open(db).await;
    let a = vault.blind_index(FieldKind::IdNumber, "11010519491231002x");
    assert_eq!(a.len(), 32);
    assert!(a
        .bytes()
        .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
    assert_eq!(
        a,
        vault.blind_index(FieldKind::IdNumber, " 110105 19491231002X ")
    );
    assert_ne!(
        a,
        vault.blind_index(FieldKind::IdNumber, "110105194912310037")
    );
    assert_eq!(
        vault.blind_index(FieldKind::Phone, "+86 138-1234-5678"),
        vault.blind_index(FieldKind::Phone, "13812345678")
    );
    let digits = "6222020200112233";
    let kinds = [
        FieldKind::IdNumber,
        FieldKind::Phone,
        FieldKind::BankCard,
        FieldKind::CreditCode,
        FieldKind::Custom("passport"),
    ];
    let all: std::collections::HashSet<String> = kinds
        .iter()
        .map(|k| vault.blind_index(*k, digits))
        .collect();
    assert_eq!(all.len(), kinds.len());
    // Not a plain hash of the value.
    assert!(!a.contains(&hex_of(b"11010519491231002X")[..16]));

    // Every instance on this database computes the same index, before and after rotation.
    let again = open(db).await;
    assert_eq!(again.blind_index(FieldKind::IdNumber, ID_NUMBER), a);
    assert_eq!(again.blind_index_key_id(), vault.blind_index_key_id());
    rotate_master(&db.store, db.dir.path(), None, None, |_, _| {})
        .await
        .unwrap();
    let after = open(db).await;
    assert_eq!(after.blind_index(FieldKind::IdNumber, ID_NUMBER), a);
    assert_eq!(after.blind_index_key_id(), vault.blind_index_key_id());
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

async fn plaintext_is_never_stored(db: &TestDb) {
    const PROBE: &str = "ZHUDAI-PROBE-110105194912310021-13812345678";
    let vault = open(db).await;
    let blob = match db.store.backend() {
        Backend::Sqlite => "BLOB",
        Backend::Postgres => "BYTEA",
    };
    sqlx::query(&format!(
        "CREATE TABLE vault_probe (id TEXT PRIMARY KEY, ct {blob} NOT NULL, idx TEXT NOT NULL)"
    ))
    .execute(db.store.writer())
    .await
    .unwrap();
    for (i, subject) in [None, Some("person:probe")].into_iter().enumerate() {
        let row = i.to_string();
        let aad = FieldAad::new("vault_probe", "ct", &row);
        let ct = vault.encrypt_field(subject, &aad, PROBE).await.unwrap();
        sqlx::query("INSERT INTO vault_probe (id, ct, idx) VALUES ($1, $2, $3)")
            .bind(row.clone())
            .bind(ct)
            .bind(vault.blind_index(FieldKind::Custom("probe"), PROBE))
            .execute(db.store.writer())
            .await
            .unwrap();
    }
    // The stored values decrypt (the probe is really there, encrypted).
    let rows = sqlx::query("SELECT id, ct FROM vault_probe ORDER BY id")
        .fetch_all(db.store.reader())
        .await
        .unwrap();
    assert_eq!(rows.len(), 2);
    for (row, subject) in rows.iter().zip([None, Some("person:probe")]) {
        let id: String = row.try_get("id").unwrap();
        let ct: Vec<u8> = row.try_get("ct").unwrap();
        let aad = FieldAad::new("vault_probe", "ct", &id);
        assert_eq!(
            vault
                .decrypt_field(subject, &aad, &ct)
                .await
                .unwrap()
                .as_str(),
            PROBE
        );
    }

    // Positive control: the scan must see the probe rows (their blind index is stored in clear).
    let probe_index = vault.blind_index(FieldKind::Custom("probe"), PROBE);
    let master_b64 = fs::read_to_string(keys_dir(db).join(&key_files(&keys_dir(db))[0]))
        .unwrap()
        .trim()
        .to_owned();
    let needles = [
        PROBE.as_bytes().to_vec(),
        hex_of(PROBE.as_bytes()).into_bytes(),
        "110105194912310021".as_bytes().to_vec(),
        master_b64.clone().into_bytes(),
    ];
    match db.store.backend() {
        Backend::Sqlite => {
            let mut scanned = 0;
            let mut control_seen = false;
            for entry in fs::read_dir(db.dir.path()).unwrap() {
                let path = entry.unwrap().path();
                let name = path.file_name().unwrap().to_string_lossy().into_owned();
                if !name.starts_with("zhudai.db") {
                    continue;
                }
                let bytes = fs::read(&path).unwrap();
                scanned += bytes.len();
                control_seen |= bytes
                    .windows(probe_index.len())
                    .any(|w| w == probe_index.as_bytes());
                for needle in &needles {
                    assert!(
                        !bytes.windows(needle.len()).any(|w| w == needle.as_slice()),
                        "{name} holds a secret in clear"
                    );
                }
            }
            assert!(
                scanned > 0 && control_seen,
                "the scan missed the probe rows"
            );
        }
        Backend::Postgres => {
            let tables: Vec<String> = sqlx::query(
                "SELECT tablename::text AS tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename",
            )
            .fetch_all(db.store.reader())
            .await
            .unwrap()
            .iter()
            .map(|r| r.try_get("tablename").unwrap())
            .collect();
            assert!(tables.iter().any(|t| t == "data_keys"), "{tables:?}");
            let mut dumped = 0;
            let mut control_seen = false;
            for table in &tables {
                let dump: String = sqlx::query(&format!(
                    "SELECT COALESCE(string_agg(t::text, E'\\n'), '') AS dump FROM \"{table}\" t"
                ))
                .fetch_one(db.store.reader())
                .await
                .unwrap()
                .try_get("dump")
                .unwrap();
                dumped += dump.len();
                control_seen |= dump.contains(&probe_index);
                for needle in &needles {
                    let needle = std::str::from_utf8(needle).unwrap();
                    assert!(
                        !dump.contains(needle),
                        "table {table} holds a secret in clear"
                    );
                }
            }
            assert!(dumped > 0 && control_seen, "the dump missed the probe rows");
        }
    }
}

async fn env_master_key_creates_no_file_and_cannot_be_rotated(db: &TestDb) {
    let env = SecretString::from("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=".to_owned());
    let open_env = |env: SecretString| {
        let store = db.store.clone();
        let dir = db.dir.path().to_owned();
        async move {
            Vault::open(
                &store,
                &dir,
                Some(&env),
                Algorithm::Aes256Gcm,
                Arc::new(SystemClock),
            )
            .await
        }
    };
    let vault = open_env(env.clone()).await.unwrap();
    assert!(!keys_dir(db).exists(), "no key directory with an env key");
    let aad = FieldAad::new("person", "phone", "1");
    let ct = vault
        .encrypt_field(Some("person:1"), &aad, "13812345678")
        .await
        .unwrap();
    let again = open_env(env.clone()).await.unwrap();
    assert_eq!(again.active_master_key_id(), vault.active_master_key_id());
    assert_eq!(
        again
            .decrypt_field(Some("person:1"), &aad, &ct)
            .await
            .unwrap()
            .as_str(),
        "13812345678"
    );

    let err = rotate_master(&db.store, db.dir.path(), Some(&env), None, |_, _| {})
        .await
        .unwrap_err();
    assert!(matches!(err, VaultError::EnvKeyRotation));
    assert!(err.to_string().contains("ZHUDAI_MASTER_KEY"), "{err}");
    assert!(!keys_dir(db).exists());

    // A malformed env key: a clear error that does not echo the value.
    let bad = "c2VjcmV0LXZhbHVlLXRoYXQtaXMtdG9vLXNob3J0";
    let err = open_env(SecretString::from(bad.to_owned()))
        .await
        .unwrap_err();
    assert!(matches!(err, VaultError::EnvKey));
    assert!(err.to_string().contains("base64"), "{err}");
    assert!(!err.to_string().contains(bad) && !format!("{err:?}").contains(bad));
    // Another valid env key cannot read this database.
    let other = SecretString::from("HxweHRwbGhkYFxYVFBMSERAPDg0MCwoJCAcGBQQDAgE=".to_owned());
    assert!(matches!(
        open_env(other).await.unwrap_err(),
        VaultError::UnknownMasterKey { .. }
    ));
}

async fn sm4_deployment_round_trips(db: &TestDb) {
    let vault = Vault::open(
        &db.store,
        db.dir.path(),
        None,
        Algorithm::Sm4Gcm,
        Arc::new(SystemClock),
    )
    .await
    .unwrap();
    assert_eq!(vault.algorithm(), Algorithm::Sm4Gcm);
    let aad = FieldAad::new("person", "id_number", "1");
    let ct = vault
        .encrypt_field(Some("person:1"), &aad, ID_NUMBER)
        .await
        .unwrap();
    let Some(SubjectDek::Ready(dek)) = db.store.data_key_of_subject("person:1").await.unwrap()
    else {
        panic!("person:1 has a key")
    };
    assert_eq!(dek.algorithm, Algorithm::Sm4Gcm);
    // An AES-configured instance still reads SM4 data, and rotation can change the wrap.
    let aes = open(db).await;
    assert_eq!(
        aes.decrypt_field(Some("person:1"), &aad, &ct)
            .await
            .unwrap()
            .as_str(),
        ID_NUMBER
    );
    rotate_master(
        &db.store,
        db.dir.path(),
        None,
        Some(Algorithm::Aes256Gcm),
        |_, _| {},
    )
    .await
    .unwrap();
    let Some(SubjectDek::Ready(dek)) = db.store.data_key_of_subject("person:1").await.unwrap()
    else {
        panic!("person:1 has a key")
    };
    assert_eq!(dek.algorithm, Algorithm::Aes256Gcm);
    assert_eq!(
        open(db)
            .await
            .decrypt_field(Some("person:1"), &aad, &ct)
            .await
            .unwrap()
            .as_str(),
        ID_NUMBER
    );
}

async fn concurrent_first_starts_agree_on_one_key(db: &TestDb) {
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let store = db.store.clone();
            let dir = db.dir.path().to_owned();
            tokio::spawn(async move { open_at(&store, &dir).await })
        })
        .collect();
    let mut vaults = Vec::new();
    for task in tasks {
        vaults.push(task.await.unwrap());
    }
    let active = vaults[0].active_master_key_id();
    let index = vaults[0].blind_index(FieldKind::Phone, "13812345678");
    let aad = FieldAad::new("person", "phone", "1");
    let ct = vaults[0]
        .encrypt_field(None, &aad, "13812345678")
        .await
        .unwrap();
    for vault in &vaults {
        assert_eq!(vault.active_master_key_id(), active);
        assert_eq!(vault.blind_index(FieldKind::Phone, "13812345678"), index);
        assert_eq!(
            vault.decrypt_field(None, &aad, &ct).await.unwrap().as_str(),
            "13812345678"
        );
    }
    assert_eq!(
        fs::read_to_string(keys_dir(db).join(ACTIVE_FILE))
            .unwrap()
            .trim(),
        active
    );
}

#[tokio::test]
async fn key_files_are_0600_and_refused_when_others_can_read_them() {
    let db = TestDb::sqlite().await.unwrap();
    let vault = open(&db).await;
    let kd = keys_dir(&db);
    assert_eq!(mode(&kd), 0o700);
    let files = key_files(&kd);
    assert_eq!(
        files,
        vec![format!("master-{}.key", vault.active_master_key_id())]
    );
    let key_path = kd.join(&files[0]);
    assert_eq!(mode(&key_path), 0o600);
    assert_eq!(
        fs::read_to_string(kd.join(ACTIVE_FILE)).unwrap().trim(),
        vault.active_master_key_id()
    );
    // No temporary files left behind.
    assert_eq!(fs::read_dir(&kd).unwrap().count(), 2);

    for bad in [0o644, 0o640, 0o604, 0o660] {
        fs::set_permissions(&key_path, fs::Permissions::from_mode(bad)).unwrap();
        let err = Vault::open(
            &db.store,
            db.dir.path(),
            None,
            Algorithm::Aes256Gcm,
            Arc::new(SystemClock),
        )
        .await
        .unwrap_err();
        assert!(matches!(err, VaultError::KeyFile(_)), "{err}");
        assert!(err.to_string().contains("chmod 600"), "{err}");
    }
    fs::set_permissions(&key_path, fs::Permissions::from_mode(0o600)).unwrap();
    open(&db).await;

    // A retired key file is checked as strictly as the active one.
    rotate_master(&db.store, db.dir.path(), None, None, |_, _| {})
        .await
        .unwrap();
    fs::set_permissions(&key_path, fs::Permissions::from_mode(0o644)).unwrap();
    let err = Vault::open(
        &db.store,
        db.dir.path(),
        None,
        Algorithm::Aes256Gcm,
        Arc::new(SystemClock),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("chmod 600"), "{err}");
    fs::set_permissions(&key_path, fs::Permissions::from_mode(0o600)).unwrap();

    // A key file not named after its key id is refused.
    fs::copy(&key_path, kd.join("master-0123456789abcdef.key")).unwrap();
    fs::set_permissions(
        kd.join("master-0123456789abcdef.key"),
        fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    let err = Vault::open(
        &db.store,
        db.dir.path(),
        None,
        Algorithm::Aes256Gcm,
        Arc::new(SystemClock),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("must be named"), "{err}");
    fs::remove_file(kd.join("master-0123456789abcdef.key")).unwrap();

    // An `active` file naming a missing key is a clear error.
    fs::write(kd.join(ACTIVE_FILE), "0123456789abcdef\n").unwrap();
    let err = Vault::open(
        &db.store,
        db.dir.path(),
        None,
        Algorithm::Aes256Gcm,
        Arc::new(SystemClock),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("is missing"), "{err}");
    db.close().await;
}

/// Encrypt + blind index of an 18-character ID number on one core, and the machine's
/// raw AES-256-GCM rate for comparison.
#[test]
#[ignore]
fn throughput() {
    use aes_gcm::aead::{AeadInPlace, KeyInit};
    use std::hint::black_box;
    use std::time::Instant;

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let db = TestDb::sqlite().await.unwrap();
        let vault = open(&db).await;
        let aad = FieldAad::new("person", "id_number", "123456");
        for (label, subject) in [
            ("system key", None),
            ("subject key (cached)", Some("person:1")),
        ] {
            for _ in 0..2_000 {
                let ct = vault.encrypt_field(subject, &aad, ID_NUMBER).await.unwrap();
                black_box(ct);
            }
            let n = 200_000u32;
            let start = Instant::now();
            let mut last = Vec::new();
            for _ in 0..n {
                last = vault.encrypt_field(subject, &aad, ID_NUMBER).await.unwrap();
                black_box(vault.blind_index(FieldKind::IdNumber, ID_NUMBER));
            }
            let secs = start.elapsed().as_secs_f64();
            eprintln!(
                "encrypt + blind index, {label}: {:.0} ops/s ({:.2} µs/op)",
                f64::from(n) / secs,
                secs * 1e6 / f64::from(n)
            );
            let start = Instant::now();
            for _ in 0..n {
                black_box(vault.decrypt_field(subject, &aad, &last).await.unwrap());
            }
            let secs = start.elapsed().as_secs_f64();
            eprintln!(
                "decrypt, {label}: {:.0} ops/s ({:.2} µs/op)",
                f64::from(n) / secs,
                secs * 1e6 / f64::from(n)
            );
        }
        db.close().await;
    });

    // Raw AES-256-GCM over 64 KiB buffers (a fixed nonce is fine for a benchmark only).
    let cipher = aes_gcm::Aes256Gcm::new(&[7u8; 32].into());
    let nonce = aes_gcm::Nonce::from([1u8; 12]);
    let mut buf = vec![0u8; 64 * 1024];
    for _ in 0..64 {
        black_box(
            cipher
                .encrypt_in_place_detached(&nonce, b"", &mut buf)
                .unwrap(),
        );
    }
    let rounds = 8_192u32; // 512 MiB
    let start = Instant::now();
    for _ in 0..rounds {
        black_box(
            cipher
                .encrypt_in_place_detached(&nonce, b"", &mut buf)
                .unwrap(),
        );
    }
    let secs = start.elapsed().as_secs_f64();
    let mib = f64::from(rounds) * 64.0 / 1024.0;
    eprintln!(
        "raw AES-256-GCM, 64 KiB buffers: {:.0} MiB/s ({:.0} MB/s)",
        mib / secs,
        mib * 1.048_576 / secs
    );
    // The same primitive on an ID-number-sized message, for the per-call overhead.
    let mut small = *b"11010519491231002X";
    let n = 1_000_000u32;
    let start = Instant::now();
    for _ in 0..n {
        black_box(
            cipher
                .encrypt_in_place_detached(&nonce, b"aad", &mut small)
                .unwrap(),
        );
    }
    let secs = start.elapsed().as_secs_f64();
    eprintln!(
        "raw AES-256-GCM, 18-byte messages (key schedule reused): {:.0} ops/s",
        f64::from(n) / secs
    );
}
