//! Demo data for `zhudai serve --demo`: a small, realistic company so a newcomer can try
//! every page. Seeding runs once per database (guarded by a metadata key, safe when
//! several instances start together). Later capabilities add their own demo data here.

use zhudai_store::meta::{meta_insert_once, org_unit_insert, NewOrgUnit};
use zhudai_store::{Store, StoreError};

const SEEDED_KEY: &str = "demo.seeded";

/// What seeding did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DemoOutcome {
    Seeded {
        org_units: usize,
    },
    AlreadySeeded,
    /// The database already holds real data; demo data is never mixed into it.
    NotEmpty,
}

pub async fn seed(store: &Store, now_ms: i64) -> Result<DemoOutcome, StoreError> {
    if store.meta_get(SEEDED_KEY).await?.is_some() {
        return Ok(DemoOutcome::AlreadySeeded);
    }
    if !store.org_units().await?.is_empty() {
        return Ok(DemoOutcome::NotEmpty);
    }
    // One transaction: a crash mid-seed leaves nothing, and a second instance seeding at
    // the same moment waits on the marker row, then finds it taken.
    let mut tx = store.begin().await?;
    if !meta_insert_once(&mut *tx, SEEDED_KEY, "done", now_ms).await? {
        return Ok(DemoOutcome::AlreadySeeded);
    }
    let unit = |parent_id, kind, code, name_zh, name_en| NewOrgUnit {
        parent_id,
        kind,
        code,
        name_zh,
        name_en,
    };
    let mut count = 0;
    let hq = org_unit_insert(
        &mut *tx,
        &unit(
            None,
            "company",
            "HQ",
            "示例助贷科技有限公司",
            "Demo Loan Facilitation Co., Ltd.",
        ),
        now_ms,
    )
    .await?;
    count += 1;
    type Unit<'a> = (&'a str, &'a str, &'a str);
    let branches: [(&str, &str, &str, &[Unit]); 3] = [
        (
            "SH",
            "上海分公司",
            "Shanghai Branch",
            &[
                ("SH-T1", "个贷一组", "Consumer Team 1"),
                ("SH-T2", "个贷二组", "Consumer Team 2"),
            ],
        ),
        (
            "HZ",
            "杭州分公司",
            "Hangzhou Branch",
            &[("HZ-T1", "小微一组", "Small Business Team 1")],
        ),
        (
            "CD",
            "成都分公司",
            "Chengdu Branch",
            &[
                ("CD-T1", "个贷一组", "Consumer Team 1"),
                ("CD-T2", "贷后催收组", "Collections Team"),
            ],
        ),
    ];
    for (code, zh, en, teams) in branches {
        let branch =
            org_unit_insert(&mut *tx, &unit(Some(hq), "branch", code, zh, en), now_ms).await?;
        count += 1;
        for (tcode, tzh, ten) in teams {
            org_unit_insert(
                &mut *tx,
                &unit(Some(branch), "team", tcode, tzh, ten),
                now_ms,
            )
            .await?;
            count += 1;
        }
    }
    // Funder network (issue #5): partners, admissions, limits, pricing, routing history.
    crate::demo_funders::seed(&mut tx, now_ms).await?;
    tx.commit().await?;
    Ok(DemoOutcome::Seeded { org_units: count })
}

/// One account per standard role (`demo_<role>`, password
/// [`crate::ui::account::DEMO_PASSWORD`]), only ever called in demo mode. Returns how many
/// accounts were created (0 when they exist already).
pub async fn seed_accounts(store: &Store, now_ms: i64) -> Result<usize, StoreError> {
    let units = store.org_units().await?;
    let team = units.iter().find(|u| u.code == "SH-T1").map(|u| u.id);
    let branch = units.iter().find(|u| u.code == "SH").map(|u| u.id);
    // Hash once with a light cost: these are throw-away demo credentials.
    let params = zhudai_crypto::password::Argon2Params {
        m_cost_kib: 8 * 1024,
        t_cost: 1,
        p_cost: 1,
    };
    let password = crate::ui::account::DEMO_PASSWORD.to_owned();
    let hash = tokio::task::spawn_blocking(move || {
        zhudai_crypto::password::hash_password(&password, &params)
    })
    .await
    .map_err(|e| StoreError::Invalid(e.to_string()))?
    .map_err(|e| StoreError::Invalid(e.to_string()))?;
    let mut created = 0;
    for seed in zhudai_domain::access::SEED_ROLES {
        let username = format!("demo_{}", seed.code);
        if store.user_by_username(&username).await?.is_some() {
            continue;
        }
        let Some(role) = store.role_by_code(seed.code).await? else {
            continue;
        };
        let org = match seed.scope {
            "own" | "team" => team,
            "branch" => branch,
            _ => None,
        };
        let display = format!("演示·{}", seed.zh);
        let result = store
            .user_create(
                &zhudai_store::identity::NewUser {
                    username: &username,
                    display_name: &display,
                    org_unit_id: org,
                    password_hash: &hash,
                    must_change_password: false,
                    role_ids: &[role.id],
                },
                now_ms,
            )
            .await;
        match result {
            Ok(_) => created += 1,
            Err(e) if e.is_unique_violation("users_username_key", "users.username") => {}
            Err(e) => return Err(e),
        }
    }
    Ok(created)
}
