//! Demo data for `zhudai serve --demo`: a small, realistic company so a newcomer can try
//! every page. Seeding runs once per database (guarded by a metadata key, safe when
//! several instances start together). Later capabilities add their own demo data here.

use zhudai_domain::product::{ProductSpec, ProductStatus};
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
    seed_products(&mut tx, now_ms).await?;
    tx.commit().await?;
    Ok(DemoOutcome::Seeded { org_units: count })
}

// --- Products and pricing (issue #5) ---

/// The demo loan products (all within the default APR cap, checked here as on any save),
/// taken by the demo funders `bank_a` and `cfc_b` of the funder registry.
pub fn demo_products() -> Vec<(&'static str, &'static str, ProductStatus, ProductSpec)> {
    use zhudai_domain::money::{FeeRate, Fen, Rate};
    use zhudai_domain::product::{monthly_fee, upfront_fee, Eligibility};
    use zhudai_domain::schedule::{Collector, DayCount, FeeKind, RepaymentMethod as M};
    let yuan = |y: i64| Fen::new(y * 100);
    let rate = |s: &str| Rate::parse(s).unwrap_or(Rate::ZERO);
    // A monthly fee item (the literals below always parse; a bad one would drop the fee
    // and the demo test would notice).
    let monthly = |kind, collector, r: &str| {
        FeeRate::parse(r)
            .ok()
            .map(|rate| monthly_fee(kind, collector, rate))
            .into_iter()
            .collect::<Vec<_>>()
    };
    let materials = |m: &[&str]| m.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    vec![
        (
            "consumer_std",
            "消费贷（标准）",
            ProductStatus::Active,
            ProductSpec {
                methods: vec![M::EqualInstallment, M::EqualPrincipal],
                min_months: 12,
                max_months: 36,
                min_amount: yuan(5_000),
                max_amount: yuan(200_000),
                annual_rate: rate("0.15"),
                day_count: DayCount::Monthly,
                fees: monthly(FeeKind::Guarantee, Collector::Guarantor, "0.001"),
                penalty_markup: rust_decimal::Decimal::new(5, 1),
                eligibility: Eligibility {
                    min_age: 22,
                    max_age: 55,
                    required_materials: materials(&[
                        "id_front",
                        "id_back",
                        "income_proof",
                        "credit_report",
                    ]),
                },
                funder_codes: vec!["bank_a".into(), "cfc_b".into()],
            },
        ),
        (
            "biz_interest_first",
            "经营贷（先息后本）",
            ProductStatus::Active,
            ProductSpec {
                methods: vec![M::InterestFirst],
                min_months: 6,
                max_months: 24,
                min_amount: yuan(50_000),
                max_amount: yuan(1_000_000),
                annual_rate: rate("0.12"),
                day_count: DayCount::Monthly,
                fees: vec![upfront_fee(FeeKind::Service, Collector::Funder, yuan(500))],
                penalty_markup: rust_decimal::Decimal::new(5, 1),
                eligibility: Eligibility {
                    min_age: 22,
                    max_age: 60,
                    required_materials: materials(&[
                        "id_front",
                        "id_back",
                        "business_licence",
                        "bank_statement",
                        "credit_report",
                    ]),
                },
                funder_codes: vec!["bank_a".into()],
            },
        ),
        (
            "bridge_bullet",
            "短期周转贷（到期还本付息）",
            ProductStatus::Active,
            ProductSpec {
                methods: vec![M::Bullet],
                min_months: 1,
                max_months: 6,
                min_amount: yuan(10_000),
                max_amount: yuan(300_000),
                annual_rate: rate("0.10"),
                day_count: DayCount::Actual365,
                fees: monthly(FeeKind::Guarantee, Collector::Guarantor, "0.0015"),
                penalty_markup: rust_decimal::Decimal::new(5, 1),
                eligibility: Eligibility {
                    min_age: 25,
                    max_age: 60,
                    required_materials: materials(&[
                        "id_front",
                        "id_back",
                        "business_licence",
                        "bank_statement",
                    ]),
                },
                funder_codes: vec!["cfc_b".into()],
            },
        ),
        (
            "consumer_pilot",
            "消费贷（新客试点）",
            ProductStatus::Draft,
            ProductSpec {
                methods: vec![M::EqualInstallment],
                min_months: 3,
                max_months: 12,
                min_amount: yuan(1_000),
                max_amount: yuan(50_000),
                annual_rate: rate("0.20"),
                day_count: DayCount::Monthly,
                fees: vec![],
                penalty_markup: rust_decimal::Decimal::new(2, 1),
                eligibility: Eligibility::default(),
                funder_codes: vec!["cfc_b".into()],
            },
        ),
    ]
}

async fn seed_products(
    conn: &mut zhudai_store::sqlx::AnyConnection,
    now_ms: i64,
) -> Result<(), StoreError> {
    let cap = zhudai_domain::product::DEFAULT_APR_CAP;
    for (code, name, status, spec) in demo_products() {
        let problems = spec.problems(cap);
        let check = spec
            .cap_check(cap)
            .filter(|c| c.within_cap() && problems.is_empty())
            .ok_or_else(|| {
                StoreError::Invalid(format!(
                    "demo product {code} breaks the product rules: {problems:?}"
                ))
            })?;
        let check_json =
            serde_json::to_value(&check).map_err(|e| StoreError::Invalid(e.to_string()))?;
        let worst = format!("{:.6}", check.worst.apr);
        let cap_text = cap.to_string();
        zhudai_store::products::product_insert(
            conn,
            code,
            name,
            status,
            &zhudai_store::products::NewVersion {
                spec: &spec,
                worst_apr: &worst,
                apr_cap: &cap_text,
                cap_check: &check_json,
                note: Some("演示数据"),
                created_by: "demo",
            },
            now_ms,
        )
        .await?;
    }
    Ok(())
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
    seed_managers(store).await?;
    Ok(created)
}

/// Worklists and exception alerts (issue #6 item 3): the demo's unit managers, who
/// receive the exception alerts of their units — the Shanghai branch's level-1 approver
/// heads the branch, the executive heads the company. Units that have a manager keep it.
async fn seed_managers(store: &Store) -> Result<(), StoreError> {
    let tree = store.org_tree().await?;
    for (unit, username) in [("SH", "demo_approver_l1"), ("HQ", "demo_executive")] {
        let Some(u) = tree.iter().find(|u| u.code == unit) else {
            continue;
        };
        if u.manager_user_id.is_some() {
            continue;
        }
        if let Some(user) = store.user_by_username(username).await? {
            zhudai_store::notify::org_unit_set_manager(store.writer(), u.id, Some(user.id)).await?;
        }
    }
    Ok(())
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
    let caller = demo_customer_manager(&owner);
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

/// Demo applications (demo mode only): a few of the demo customers apply for the demo
/// consumer product; most are submitted, so the document verifier's to-do list has work.
/// Customers outside the product's age range are skipped. Returns how many were created.
pub async fn seed_applications(
    state: &crate::state::AppState,
) -> Result<usize, crate::error::ApiError> {
    use zhudai_store::customers::{CustomerQuery, ScopeFilter};
    if !state
        .store()
        .applications(&ScopeFilter::All, None, 1)
        .await?
        .is_empty()
    {
        return Ok(0);
    }
    let Some(owner) = state
        .store()
        .user_by_username("demo_customer_manager")
        .await?
    else {
        return Ok(0);
    };
    let caller = demo_customer_manager(&owner);
    let customers = state
        .store()
        .customer_list(&CustomerQuery {
            scope: &ScopeFilter::All,
            name: None,
            exact: None,
            kind: Some("individual"),
            status: Some("active"),
            offset: 0,
            limit: 12,
        })
        .await?;
    let mut created = 0;
    for (i, c) in customers.rows.iter().enumerate() {
        let input = crate::applications::ApplicationInput {
            customer_id: c.id,
            product_code: "consumer_std".into(),
            amount: format!("{}", 20_000 + (i as i64 % 5) * 15_000),
            months: [12, 24, 36][i % 3],
            method: String::new(),
            purpose: Some("消费".into()),
        };
        let id = match crate::applications::create(state, &caller, &input).await {
            Ok(id) => id,
            // Outside the product's age range, or the product is not in this database.
            Err(crate::error::ApiError::Validation(_)) => continue,
            Err(e) => return Err(e),
        };
        created += 1;
        if i % 4 != 0 {
            crate::applications::act(state, &caller, id, None, &zhudai_workflow::Action::Submit)
                .await?;
        }
    }
    Ok(created)
}

/// The demo customer manager acting in the demo seeding (not a request: no session).
fn demo_customer_manager(owner: &zhudai_store::identity::User) -> crate::auth::Caller {
    crate::auth::Caller {
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
        scope_filter: None,
    }
}

// --- Loans and the ledger (issue #8) ---

/// One demo loan: product, amount (yuan), months, method, months since disbursement,
/// and what the borrower did since.
struct DemoLoan {
    product: &'static str,
    amount: i64,
    months: i64,
    method: &'static str,
    age_months: i32,
    history: DemoHistory,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum DemoHistory {
    /// Every installment paid on its due date.
    OnTime,
    /// Paid on time, then a partial payment; the rest is overdue.
    Overdue,
    /// Paid on time, then an early partial repayment by a relative (third party).
    EarlyPartialThirdParty,
    /// Paid on time, then settled early.
    PaidOff,
    /// Nothing paid since disbursement.
    Missed,
}

/// Demo loans (demo mode only): a few demo customers' applications taken straight to
/// disbursement (the workflow instance is marked disbursed with a demo step), their loans
/// opened with [`crate::loans::open_from_application`] months ago, and repayments posted
/// through the same service as the API, so the loan pages, the ledger and
/// `zhudai ledger verify` have content. Returns how many loans were opened.
pub async fn seed_loans(state: &crate::state::AppState) -> Result<usize, crate::error::ApiError> {
    use crate::error::ApiError;
    use crate::loans::{self, Disbursement};
    use zhudai_domain::schedule::add_months_clamped;
    use zhudai_store::customers::{CustomerQuery, ScopeFilter};
    let store = state.store();
    let (_, existing) = store
        .loans(&ScopeFilter::All, &Default::default(), 0, 1)
        .await?;
    if existing > 0 {
        return Ok(0);
    }
    let (Some(cm), Some(ops)) = (
        store.user_by_username("demo_customer_manager").await?,
        store.user_by_username("demo_operations").await?,
    ) else {
        return Ok(0);
    };
    let cm = demo_customer_manager(&cm);
    let mut ops_caller = demo_customer_manager(&ops);
    ops_caller.roles = vec!["operations".into()];
    let customers = store
        .customer_list(&CustomerQuery {
            scope: &ScopeFilter::All,
            name: None,
            exact: None,
            kind: Some("individual"),
            status: Some("active"),
            offset: 0,
            limit: 40,
        })
        .await?;
    let plan = [
        DemoLoan {
            product: "consumer_std",
            amount: 60_000,
            months: 12,
            method: "equal_installment",
            age_months: 7,
            history: DemoHistory::OnTime,
        },
        DemoLoan {
            product: "consumer_std",
            amount: 30_000,
            months: 24,
            method: "equal_principal",
            age_months: 6,
            history: DemoHistory::Overdue,
        },
        DemoLoan {
            product: "consumer_std",
            amount: 120_000,
            months: 36,
            method: "equal_installment",
            age_months: 5,
            history: DemoHistory::EarlyPartialThirdParty,
        },
        DemoLoan {
            product: "consumer_std",
            amount: 20_000,
            months: 12,
            method: "equal_installment",
            age_months: 4,
            history: DemoHistory::PaidOff,
        },
        DemoLoan {
            product: "consumer_std",
            amount: 45_000,
            months: 24,
            method: "equal_installment",
            age_months: 4,
            history: DemoHistory::Missed,
        },
        DemoLoan {
            product: "biz_interest_first",
            amount: 200_000,
            months: 12,
            method: "interest_first",
            age_months: 3,
            history: DemoHistory::OnTime,
        },
        DemoLoan {
            product: "bridge_bullet",
            amount: 80_000,
            months: 6,
            method: "bullet",
            age_months: 2,
            history: DemoHistory::OnTime,
        },
    ];
    let today = state.clock().today();
    let mut opened = 0;
    let mut next_customer = customers.rows.iter();
    for (n, d) in plan.iter().enumerate() {
        // The next customer the product accepts (age range).
        let mut app_id = None;
        for c in next_customer.by_ref() {
            let input = crate::applications::ApplicationInput {
                customer_id: c.id,
                product_code: d.product.into(),
                amount: d.amount.to_string(),
                months: d.months,
                method: d.method.into(),
                purpose: Some("演示".into()),
            };
            match crate::applications::create(state, &cm, &input).await {
                Ok(id) => {
                    app_id = Some(id);
                    break;
                }
                Err(ApiError::Validation(_)) => continue,
                Err(e) => return Err(e),
            }
        }
        let Some(app_id) = app_id else { break };
        let Some(disbursed_on) = add_months_clamped(today, -d.age_months) else {
            continue;
        };
        let funder = if d.product == "bridge_bullet" {
            "cfc_b"
        } else {
            "bank_a"
        };
        let now = state.now_ms();
        let inst = store
            .instance_of("application", app_id)
            .await?
            .ok_or_else(|| ApiError::Internal("demo application has no workflow".into()))?;
        let mut tx = store.begin().await?;
        zhudai_store::workflow::instance_update(
            &mut tx,
            inst.id,
            inst.version,
            &zhudai_store::workflow::InstanceUpdate {
                node: "loan",
                finished: true,
                outcome: Some("disbursed"),
                state: &inst.state,
                assignee_role: None,
                assignee_user: None,
                submitter: inst.submitter,
                node_changed: true,
            },
            now,
        )
        .await?;
        zhudai_store::workflow::step_append(
            &mut tx,
            inst.id,
            now,
            None,
            "demo",
            &inst.node,
            "loan",
            Some("演示数据：直接放款 (demo data: disbursed directly)"),
        )
        .await?;
        zhudai_store::applications::application_set_progress(
            &mut *tx,
            app_id,
            "disbursed",
            "loan",
            now,
        )
        .await?;
        let loan_id = loans::open_from_application(
            &mut tx,
            state,
            &Disbursement {
                application_id: app_id,
                amount_fen: d.amount * 100,
                disbursed_on,
                funder_code: funder.into(),
                funder_loan_ref: Some(format!("{}-DEMO-{:04}", funder.to_uppercase(), n + 1)),
            },
            now,
        )
        .await?;
        tx.commit().await?;
        opened += 1;
        seed_repayments(state, &ops_caller, loan_id, d.history, today).await?;
    }
    Ok(opened)
}

/// Posts a demo loan's repayment history through the repayment service.
async fn seed_repayments(
    state: &crate::state::AppState,
    ops: &crate::auth::Caller,
    loan_id: i64,
    history: DemoHistory,
    today: chrono::NaiveDate,
) -> Result<(), crate::error::ApiError> {
    use crate::loans::{self, RepaymentInput};
    use zhudai_domain::money::Fen;
    if history == DemoHistory::Missed {
        return Ok(());
    }
    let rows = state.store().loan_installments(loan_id).await?;
    let due: Vec<_> = rows
        .iter()
        .filter(|r| r.due_date.as_str() <= today.format("%Y-%m-%d").to_string().as_str())
        .collect();
    let on_time = match history {
        DemoHistory::Overdue => due.len().saturating_sub(2),
        _ => due.len(),
    };
    let payer = "借款人本人";
    let post = |key: String, input: RepaymentInput| async move {
        loans::repay(state, ops, loan_id, &key, &input)
            .await
            .map(|_| ())
    };
    for r in due.iter().take(on_time) {
        let amount =
            r.principal_due_fen + r.interest_due_fen + r.fee_due_fen + r.penalty_accrued_fen
                - r.principal_paid_fen
                - r.interest_paid_fen
                - r.fee_paid_fen
                - r.penalty_paid_fen;
        if amount <= 0 {
            continue;
        }
        post(
            format!("demo-{loan_id}-{}", r.number),
            RepaymentInput {
                kind: "scheduled".into(),
                amount: Fen::new(amount).to_string(),
                value_date: Some(r.due_date.clone()),
                payer_name: payer.into(),
                channel: Some("withhold".into()),
                ..Default::default()
            },
        )
        .await?;
    }
    let date = today.format("%Y-%m-%d").to_string();
    match history {
        DemoHistory::Overdue => {
            if let Some(r) = due.get(on_time) {
                let owed = r.principal_due_fen + r.interest_due_fen + r.fee_due_fen;
                post(
                    format!("demo-{loan_id}-partial"),
                    RepaymentInput {
                        kind: "partial".into(),
                        amount: Fen::new(owed / 3).to_string(),
                        value_date: Some(r.due_date.clone()),
                        payer_name: payer.into(),
                        channel: Some("transfer".into()),
                        ..Default::default()
                    },
                )
                .await?;
            }
        }
        DemoHistory::EarlyPartialThirdParty => {
            post(
                format!("demo-{loan_id}-early"),
                RepaymentInput {
                    kind: "early_partial".into(),
                    amount: "20000.00".into(),
                    value_date: Some(date),
                    payer_name: "王秀英".into(),
                    third_party: true,
                    payer_relation: Some("母亲".into()),
                    channel: Some("counter".into()),
                    ..Default::default()
                },
            )
            .await?;
        }
        DemoHistory::PaidOff => {
            let loan = state
                .store()
                .loan(loan_id)
                .await?
                .ok_or_else(|| crate::error::ApiError::Internal("demo loan vanished".into()))?;
            let rows = state.store().loan_installments(loan_id).await?;
            let quote = loans::due_view(&loan, &rows, today)?;
            if let Some(payoff) = quote.payoff {
                post(
                    format!("demo-{loan_id}-payoff"),
                    RepaymentInput {
                        kind: "early_full".into(),
                        amount: payoff,
                        value_date: Some(date),
                        payer_name: payer.into(),
                        channel: Some("transfer".into()),
                        ..Default::default()
                    },
                )
                .await?;
            }
        }
        DemoHistory::OnTime | DemoHistory::Missed => {}
    }
    Ok(())
}
// --- end loans ---
