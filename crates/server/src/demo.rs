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

/// Demo customers (demo mode only): individuals with valid generated identifiers owned by
/// `demo_customer_manager`, two enterprises with their legal representatives, and one
/// pair sharing a mobile number so the duplicate flag has something to show. Does nothing
/// when customers exist. Returns how many were created.
pub async fn seed_customers(
    state: &crate::state::AppState,
) -> Result<usize, crate::error::ApiError> {
    use zhudai_domain::customer::CustomerInput;
    use zhudai_domain::generate;
    if state.store().customer_count().await? > 0 {
        return Ok(0);
    }
    let Some(owner) = state
        .store()
        .user_by_username("demo_customer_manager")
        .await?
    else {
        return Ok(0);
    };
    let caller = crate::auth::Caller {
        user_id: owner.id,
        username: owner.username.clone(),
        display_name: owner.display_name.clone(),
        org_unit_id: owner.org_unit_id,
        roles: vec!["customer_manager".into()],
        permissions: Default::default(),
        clear_fields: Default::default(),
        scope: "all".into(),
        auth: crate::auth::AuthKind::ApiToken { token_id: 0 },
        csrf: None,
        needs_2fa_enrolment: false,
    };
    const SURNAMES: &[&str] = &[
        "王", "李", "张", "刘", "陈", "杨", "赵", "黄", "周", "吴", "徐", "孙",
    ];
    const GIVEN: &[&str] = &[
        "伟", "芳", "娜", "秀英", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "涛",
    ];
    const CITIES: &[&str] = &[
        "上海市浦东新区世纪大道",
        "北京市朝阳区建国路",
        "广州市天河区天河路",
        "杭州市西湖区文三路",
        "成都市武侯区人民南路",
    ];
    let mut created = 0;
    let mut people = Vec::new();
    for i in 0..24_u64 {
        let seed = 1000 + i;
        let name = format!(
            "{}{}",
            SURNAMES[(i as usize) % SURNAMES.len()],
            GIVEN[(i as usize * 7) % GIVEN.len()]
        );
        // Customers 3 and 17 share a mobile number: a visible duplicate flag.
        let phone = generate::mobile(if i == 17 { 1003 } else { seed });
        let input = CustomerInput {
            kind: Some("individual".into()),
            name: Some(name),
            id_number: Some(generate::resident_id(seed).as_str().to_owned()),
            phone: Some(phone.as_str().to_owned()),
            bank_card: Some(generate::unionpay_card(seed).as_str().to_owned()),
            email: (i % 3 == 0).then(|| format!("customer{i}@example.com")),
            address: Some(format!(
                "{}{}号",
                CITIES[(i as usize) % CITIES.len()],
                10 + i
            )),
            monthly_income: Some(format!("{}", 6000 + (i * 1375) % 30000)),
        };
        match crate::customers::create(state, &caller, &input).await {
            Ok(c) => {
                created += 1;
                people.push(c.id);
            }
            // A generated person born "in the future" relative to the demo clock: skip.
            Err(crate::error::ApiError::Validation(_)) => {}
            Err(e) => return Err(e),
        }
    }
    for (i, company) in ["上海示例科技有限公司", "杭州示例贸易有限公司"]
        .iter()
        .enumerate()
    {
        let input = CustomerInput {
            kind: Some("enterprise".into()),
            name: Some((*company).to_owned()),
            id_number: Some(generate::uscc(50 + i as u64).as_str().to_owned()),
            phone: Some(generate::mobile(60 + i as u64).as_str().to_owned()),
            address: Some(format!("{}{}号", CITIES[i], 200 + i)),
            ..Default::default()
        };
        let c = crate::customers::create(state, &caller, &input).await?;
        created += 1;
        if let Some(person) = people.get(i) {
            crate::customers::add_relation(
                state,
                &caller,
                c.id,
                *person,
                "legal_representative",
                None,
            )
            .await?;
            crate::customers::add_relation(
                state,
                &caller,
                c.id,
                *person,
                "beneficial_owner",
                Some(6000),
            )
            .await?;
        }
    }
    Ok(created)
}
