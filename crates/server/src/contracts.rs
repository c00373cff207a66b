//! Contracts and disbursement (issue #6, the part after funder routing).
//!
//! * **Templates** are versioned: every save stores a new immutable version (triggers
//!   refuse updates); the language is [`zhudai_domain::contract`]. The default 个人借款合同
//!   is installed on start-up.
//! * **Generating** a contract (operations, at the workflow's `contract` step) fills the
//!   newest template version from the application, the customer (full name and ID number
//!   in the PDF — the clear read is audited — masked in the stored snapshot), the product
//!   version, the funder and the 综合融资成本明示表 computed by `domain::product::quote` at
//!   that moment. The snapshot is stored with the contract; the PDF is rendered with a CJK
//!   font ([`crate::contract_pdf`]), hashed (SHA-256), encrypted under the customer's key
//!   into the blob store.
//! * **Signing** records who signed (borrower, company, funder), when, how
//!   (click-through, e-signature provider reference, wet-ink scan) and an evidence hash;
//!   the third signature makes the contract `signed`. The workflow's `contract` step
//!   cannot be completed before that.
//! * **Disbursement** comes from the funder's signed callback (or the simulated funder's
//!   job): stored once per funder loan reference, and in the same transaction the loan is
//!   opened and the workflow reaches `loan`.

use crate::applications as apps;
use crate::auth::Caller;
use crate::contract_pdf::{self, Doc, PdfBlock, SignatureLine, Table};
use crate::customers::audit_draft;
use crate::error::{ApiError, FieldError};
use crate::state::AppState;
use crate::vault::FieldAad;
use crate::workflow as wf;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use zhudai_domain::contract::{self as dc, Block, Template};
use zhudai_domain::money::Fen;
use zhudai_domain::product::{QuoteError, QuoteRequest};
use zhudai_domain::schedule::RepaymentMethod;
use zhudai_store::applications::ApplicationRow;
use zhudai_store::audit::AuditDraft;
use zhudai_store::contracts::{
    self as sc, ContractRow, DisbursementRow, NewContract, NewDisbursement, NewSignature,
    NewTemplate, SignatureRow, TemplateRow,
};
use zhudai_store::Store;
use zhudai_workflow::Action;

/// Where contract PDFs are kept in the blob store, and their ciphertexts' AAD table.
pub const BLOB_PREFIX: &str = "contracts";
const PDF_TABLE: &str = "contracts";
/// The parties who sign, in order.
pub const PARTIES: [&str; 3] = ["borrower", "funder", "company"];
pub const METHODS: [&str; 3] = ["click_through", "e_signature", "wet_ink"];
/// Job kind: the simulated funder disburses an application waiting for disbursement.
pub const SIM_DISBURSE_JOB: &str = "contracts.simulated_disburse";

fn party_zh(p: &str) -> &'static str {
    match p {
        "borrower" => "借款人（甲方）",
        "funder" => "贷款人（乙方）",
        _ => "贷款服务机构（丙方）",
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

// ---------------------------------------------------------------------------------------
// Templates

/// Template problems as field errors on `body` (line numbers in the message).
fn template_errors(problems: Vec<dc::TemplateProblem>) -> ApiError {
    ApiError::Validation(
        problems
            .into_iter()
            .map(|p| {
                let msg = if p.line > 0 {
                    format!("line {}: {}", p.line, p.message)
                } else {
                    p.message
                };
                FieldError::new("body", p.code, msg)
            })
            .collect(),
    )
}

/// Installs the default personal loan template as version 1 when it does not exist.
pub async fn ensure_default_template(store: &Store, now_ms: i64) -> Result<(), ApiError> {
    if store
        .contract_template(dc::DEFAULT_TEMPLATE_CODE, None)
        .await?
        .is_some()
    {
        return Ok(());
    }
    let mut tx = store.begin().await?;
    let r = sc::template_insert(
        &mut *tx,
        &NewTemplate {
            code: dc::DEFAULT_TEMPLATE_CODE,
            name: dc::DEFAULT_TEMPLATE_NAME,
            language: "zh-CN",
            body: dc::DEFAULT_TEMPLATE,
            digest: &sha256_hex(dc::DEFAULT_TEMPLATE.as_bytes()),
            created_by: Some("system"),
        },
        now_ms,
    )
    .await;
    match r {
        Ok(_) => {
            tx.commit().await?;
            Ok(())
        }
        // Another instance installed it at the same moment.
        Err(e)
            if e.is_unique_violation(
                "contract_templates_code_version_key",
                "contract_templates",
            ) =>
        {
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

/// Saves a template as the next version of `code` (a new code starts at version 1).
pub async fn save_template(
    state: &AppState,
    caller: &Caller,
    code: &str,
    name: &str,
    body: &str,
) -> Result<TemplateRow, ApiError> {
    let code = code.trim();
    let name = name.trim();
    let mut errors = Vec::new();
    if !zhudai_domain::product::is_code(code) || code == "new" {
        errors.push(FieldError::new(
            "code",
            "invalid",
            "2–32 lower-case letters, digits and `_`, starting with a letter",
        ));
    }
    if name.is_empty() || name.chars().count() > 100 {
        errors.push(FieldError::new("name", "required", "1–100 characters"));
    }
    if let Err(ApiError::Validation(e)) = Template::parse(body).map_err(template_errors) {
        errors.extend(e);
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let digest = sha256_hex(body.as_bytes());
    let now = state.now_ms();
    let mut tx = state.store().begin().await?;
    let (id, version) = sc::template_insert(
        &mut *tx,
        &NewTemplate {
            code,
            name,
            language: "zh-CN",
            body,
            digest: &digest,
            created_by: Some(&caller.username),
        },
        now,
    )
    .await
    .map_err(|e| {
        if e.is_unique_violation("contract_templates_code_version_key", "contract_templates") {
            ApiError::Conflict("someone saved this template at the same moment; reload it".into())
        } else {
            e.into()
        }
    })?;
    zhudai_store::audit::append(
        &mut tx,
        &audit_draft(
            caller,
            now,
            "contract.template.save",
            format!("contract_template:{code}"),
        )
        .change_digest(digest)
        .reason(format!("{code} v{version}")),
    )
    .await?;
    tx.commit().await?;
    state
        .store()
        .contract_template_by_id(id)
        .await?
        .map(std::sync::Arc::unwrap_or_clone)
        .ok_or_else(|| ApiError::Internal("the saved template vanished".into()))
}

// ---------------------------------------------------------------------------------------
// Filling and rendering

/// Everything a contract is filled from.
#[derive(Debug, Clone)]
pub struct ContractFacts {
    pub values: BTreeMap<&'static str, String>,
    /// The quote snapshot (product, request, schedule, disclosure, APR).
    pub quote: serde_json::Value,
    pub disclosure: zhudai_domain::product::Disclosure,
    pub schedule: zhudai_domain::schedule::RepaymentSchedule,
    pub parties: Vec<SignatureLine>,
}

fn yuan(f: Fen) -> String {
    // Thousands separators for people: 30,000.00.
    let s = f.to_string();
    let (int, dec) = s.split_once('.').unwrap_or((&s, "00"));
    let (sign, digits) = int.strip_prefix('-').map_or(("", int), |d| ("-", d));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    format!("{sign}{out}.{dec}")
}

fn percent(rate: &str) -> String {
    rate.parse::<rust_decimal::Decimal>()
        .map(|d| {
            format!(
                "{}%",
                (d * rust_decimal::Decimal::from(100))
                    .round_dp(4)
                    .normalize()
            )
        })
        .unwrap_or_else(|_| rate.to_owned())
}

/// The blocks of a filled template as PDF blocks, with the tables from the facts.
pub fn doc_of(title: &str, contract_no: &str, blocks: &[Block], f: &ContractFacts) -> Doc {
    let d = &f.disclosure;
    let disclosure = Table {
        caption: Some("综合融资成本明示表".into()),
        widths: vec![1.3, 2.6, 1.4, 1.3, 1.4],
        header: vec![
            "项目".into(),
            "收取方式".into(),
            "费率/金额".into(),
            "收取主体".into(),
            "合计（元）".into(),
        ],
        rows: d
            .items
            .iter()
            .map(|i| {
                vec![
                    i.item_zh.clone(),
                    i.charged_zh.clone(),
                    i.rate.clone(),
                    i.collector_zh.clone(),
                    yuan(i.total),
                ]
            })
            .chain([
                vec![
                    "借款本金".into(),
                    format!("实际到账 {} 元", yuan(d.disbursed)),
                    String::new(),
                    String::new(),
                    yuan(d.principal),
                ],
                vec![
                    "利息及费用合计".into(),
                    format!(
                        "利息 {} 元，费用 {} 元",
                        yuan(d.total_interest),
                        yuan(d.total_fees)
                    ),
                    String::new(),
                    String::new(),
                    yuan(d.total_cost),
                ],
                vec![
                    "应还总额".into(),
                    "本金＋利息＋全部费用".into(),
                    String::new(),
                    String::new(),
                    yuan(d.total_repayment),
                ],
                vec![
                    "综合年化成本".into(),
                    "按内部收益率（IRR）法计算，含利息及全部费用".into(),
                    percent(&d.apr),
                    String::new(),
                    d.apr.clone(),
                ],
                vec![
                    "逾期成本".into(),
                    d.default_cost.rule_zh.clone(),
                    format!("日利率 {}", d.default_cost.penalty_daily_rate),
                    "贷款人".into(),
                    format!("逾期30天示例 {}", yuan(d.default_cost.example_30_days)),
                ],
            ])
            .collect(),
        right: vec![false, false, false, false, true],
    };
    let schedule = Table {
        caption: Some("还款计划表".into()),
        widths: vec![0.7, 1.4, 1.3, 1.3, 1.1, 1.4, 1.4],
        header: vec![
            "期数".into(),
            "还款日".into(),
            "本金".into(),
            "利息".into(),
            "费用".into(),
            "应还金额".into(),
            "剩余本金".into(),
        ],
        rows: f
            .schedule
            .periods
            .iter()
            .map(|p| {
                vec![
                    p.number.to_string(),
                    p.due_date.to_string(),
                    yuan(p.principal),
                    yuan(p.interest),
                    yuan(p.fee),
                    yuan(p.payment),
                    yuan(p.remaining),
                ]
            })
            .collect(),
        right: vec![true, false, true, true, true, true, true],
    };
    Doc {
        title: title.to_owned(),
        footer: format!("合同编号 {contract_no}"),
        blocks: blocks
            .iter()
            .map(|b| match b {
                Block::Title(t) => PdfBlock::Title(t.clone()),
                Block::Heading(t) => PdfBlock::Heading(t.clone()),
                Block::Paragraph(t) => PdfBlock::Paragraph(t.clone()),
                Block::DisclosureTable => PdfBlock::Table(disclosure.clone()),
                Block::ScheduleTable => PdfBlock::Table(schedule.clone()),
                Block::Signatures => PdfBlock::Signatures(f.parties.clone()),
            })
            .collect(),
    }
}

/// Prices the loan now (the disclosure that will be frozen) and fills the values.
#[allow(clippy::too_many_arguments)] // the facts of a contract come from six places
pub fn facts_for(
    cap: rust_decimal::Decimal,
    today: chrono::NaiveDate,
    contract_no: &str,
    app: &ApplicationRow,
    product: &zhudai_store::products::Product,
    version: &zhudai_store::products::ProductVersion,
    borrower: (&str, &str, &str),
    funder: (&str, &str),
    company: &str,
) -> Result<ContractFacts, ApiError> {
    let method = RepaymentMethod::parse(&app.method)
        .map_err(|_| ApiError::Internal(format!("application method `{}`", app.method)))?;
    let req = QuoteRequest {
        amount: Fen::new(app.amount_fen),
        months: u32::try_from(app.months).unwrap_or(0),
        method,
        start_date: today,
    };
    let (schedule, disclosure) = match zhudai_domain::product::quote(&version.spec, &req, cap) {
        Ok(v) => v,
        Err(QuoteError::Field(p)) => {
            return Err(ApiError::Conflict(format!(
                "the loan can no longer be priced on this product version: {}",
                p.message
            )))
        }
        Err(QuoteError::Pricing(m)) => {
            return Err(ApiError::Conflict(format!(
                "the loan cannot be priced: {m}"
            )))
        }
    };
    let quote =
        crate::api::products::quote_snapshot(product, version, &req, &schedule, &disclosure, cap);
    let (name, id_number, phone) = borrower;
    let mut v = BTreeMap::new();
    let mut put = |k: &'static str, s: String| {
        v.insert(k, s);
    };
    put("contract.no", contract_no.to_owned());
    put("contract.date", today.format("%Y年%m月%d日").to_string());
    put("application.ref", app.ref_.clone());
    put("company.name", company.to_owned());
    put("funder.name", funder.1.to_owned());
    put("funder.code", funder.0.to_owned());
    put("borrower.name", name.to_owned());
    put("borrower.id_number", id_number.to_owned());
    put("borrower.phone", phone.to_owned());
    put("product.name", product.name.clone());
    put("product.code", product.code.clone());
    put("product.version", version.version.to_string());
    put("loan.amount", yuan(Fen::new(app.amount_fen)));
    put(
        "loan.amount_upper",
        dc::amount_in_words(Fen::new(app.amount_fen)),
    );
    put("loan.months", app.months.to_string());
    put("loan.method", method.zh_name().to_owned());
    put("loan.annual_rate", percent(&disclosure.annual_rate));
    put(
        "loan.apr",
        format!("{}（{}）", percent(&disclosure.apr), disclosure.apr),
    );
    put("loan.total_interest", yuan(disclosure.total_interest));
    put("loan.total_fees", yuan(disclosure.total_fees));
    put("loan.total_repayment", yuan(disclosure.total_repayment));
    put(
        "loan.first_due_date",
        schedule
            .periods
            .first()
            .map(|p| p.due_date.format("%Y年%m月%d日").to_string())
            .unwrap_or_default(),
    );
    put(
        "loan.last_due_date",
        schedule
            .periods
            .last()
            .map(|p| p.due_date.format("%Y年%m月%d日").to_string())
            .unwrap_or_default(),
    );
    put(
        "loan.purpose",
        app.purpose.clone().unwrap_or_else(|| "个人消费".into()),
    );
    put("loan.penalty_rule", disclosure.default_cost.rule_zh.clone());
    let parties = vec![
        SignatureLine {
            role: party_zh("borrower").into(),
            name: name.to_owned(),
        },
        SignatureLine {
            role: party_zh("funder").into(),
            name: funder.1.to_owned(),
        },
        SignatureLine {
            role: party_zh("company").into(),
            name: company.to_owned(),
        },
    ];
    Ok(ContractFacts {
        values: v,
        quote,
        disclosure,
        schedule,
        parties,
    })
}

/// Renders a PDF off the async runtime.
pub async fn render_pdf(state: &AppState, doc: Doc) -> Result<Vec<u8>, ApiError> {
    let font = contract_pdf::font(state.settings().contract_font_path.as_deref())
        .map_err(ApiError::Unavailable)?;
    tokio::task::spawn_blocking(move || contract_pdf::render(&font, &doc))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::Internal)
}

/// Sample facts for previews: a fictitious borrower on a typical loan.
pub fn sample_facts(
    cap: rust_decimal::Decimal,
    today: chrono::NaiveDate,
) -> Result<ContractFacts, ApiError> {
    use zhudai_domain::money::Rate;
    let spec = zhudai_domain::product::ProductSpec {
        methods: vec![RepaymentMethod::EqualInstallment],
        min_months: 3,
        max_months: 36,
        min_amount: Fen::new(100_000),
        max_amount: Fen::new(20_000_000),
        annual_rate: Rate::parse("0.108").map_err(ApiError::internal)?,
        day_count: Default::default(),
        fees: vec![],
        penalty_markup: rust_decimal::Decimal::new(5, 1),
        eligibility: Default::default(),
        funder_codes: vec![],
    };
    let product = zhudai_store::products::Product {
        id: 0,
        code: "sample".into(),
        name: "示例消费贷".into(),
        status: zhudai_domain::product::ProductStatus::Active,
        current_version: 1,
        created_by: String::new(),
        created_at_ms: 0,
        updated_at_ms: 0,
    };
    let version = zhudai_store::products::ProductVersion {
        id: 0,
        product_id: 0,
        version: 1,
        spec,
        worst_apr: String::new(),
        apr_cap: cap.to_string(),
        cap_check: serde_json::Value::Null,
        note: None,
        created_by: String::new(),
        created_at_ms: 0,
    };
    let app = ApplicationRow {
        id: 0,
        ref_: "SAMPLE-0000".into(),
        customer_id: 0,
        product_code: "sample".into(),
        product_version: 1,
        amount_fen: 3_000_000,
        months: 12,
        method: "equal_installment".into(),
        purpose: Some("装修".into()),
        status: "approved".into(),
        node: "contract".into(),
        routing_run_id: None,
        funder_code: Some("sample_bank".into()),
        owner_user_id: 0,
        org_unit_id: None,
        created_at_ms: 0,
        updated_at_ms: 0,
    };
    facts_for(
        cap,
        today,
        "HT-SAMPLE",
        &app,
        &product,
        &version,
        ("张三（示例）", "110105198501010021", "138****5678"),
        ("sample_bank", "示例城市商业银行股份有限公司"),
        "示例助贷科技有限公司",
    )
}

/// Renders a template version with the sample facts (for the editor's preview).
pub async fn preview_pdf(state: &AppState, t: &TemplateRow) -> Result<Vec<u8>, ApiError> {
    let parsed = Template::parse(&t.body).map_err(template_errors)?;
    let facts = sample_facts(state.settings().apr_cap, state.clock().today())?;
    let blocks = parsed.fill(&facts.values);
    render_pdf(state, doc_of(&t.name, "HT-SAMPLE", &blocks, &facts)).await
}

/// The filled blocks of a template with the sample facts (HTML preview).
pub fn preview_blocks(
    state: &AppState,
    t: &TemplateRow,
) -> Result<(Vec<Block>, ContractFacts), ApiError> {
    let parsed = Template::parse(&t.body).map_err(template_errors)?;
    let facts = sample_facts(state.settings().apr_cap, state.clock().today())?;
    Ok((parsed.fill(&facts.values), facts))
}

// ---------------------------------------------------------------------------------------
// Generating

async fn company_name(store: &Store) -> Result<String, ApiError> {
    Ok(store
        .org_units()
        .await?
        .into_iter()
        .find(|u| u.parent_id.is_none() && u.kind == "company")
        .map(|u| u.name_zh)
        .unwrap_or_else(|| "贷款服务机构".into()))
}

/// Generates the contract of an application waiting at the `contract` step (a draft
/// without signatures is replaced; a signed or partly signed one must be voided first).
pub async fn generate(
    state: &AppState,
    caller: &Caller,
    app_id: i64,
    template_code: Option<&str>,
) -> Result<ContractRow, ApiError> {
    let (app, inst) = apps::load_at(state, caller, app_id).await?;
    if inst.node != "contract" || inst.status != "running" {
        return Err(ApiError::Conflict(format!(
            "a contract is generated at the contract step; this application is at `{}`",
            inst.node
        )));
    }
    let store = state.store();
    let replaced = match store.contract_live(app.id).await? {
        Some(c) if c.status != "draft" => {
            return Err(ApiError::Conflict(format!(
                "contract {} is {}; void it before generating another",
                c.contract_no, c.status
            )))
        }
        Some(c) if !store.contract_signatures(c.id).await?.is_empty() => {
            return Err(ApiError::Conflict(format!(
                "contract {} has signatures; void it before generating another",
                c.contract_no
            )))
        }
        other => other,
    };
    let code = template_code
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .unwrap_or(dc::DEFAULT_TEMPLATE_CODE);
    let template = store
        .contract_template(code, None)
        .await?
        .ok_or_else(|| ApiError::field("template", "unknown", format!("no template `{code}`")))?;
    let parsed = Template::parse(&template.body).map_err(template_errors)?;
    let funder_code = app
        .funder_code
        .clone()
        .ok_or_else(|| ApiError::Conflict("no funder has taken this application".into()))?;
    let funder = store
        .partner_by_code(&funder_code)
        .await?
        .ok_or_else(|| ApiError::Internal(format!("funder {funder_code} vanished")))?;
    let customer = store
        .customer_get(app.customer_id)
        .await?
        .ok_or_else(|| ApiError::Internal("customer vanished".into()))?;
    let clear = crate::customers::decrypt(state.vault(), &customer)
        .await
        .map_err(ApiError::internal)?;
    let id_number = clear.id_number.clone().ok_or_else(|| {
        ApiError::Conflict("the customer's ID number is not readable (erased?)".into())
    })?;
    let phone = clear
        .phone
        .as_deref()
        .map(zhudai_domain::mask::mobile)
        .unwrap_or_default();
    let product = store
        .product_by_code(&app.product_code)
        .await?
        .ok_or_else(|| ApiError::Internal("product vanished".into()))?;
    let version = store
        .product_version_of(&app.product_code, app.product_version)
        .await?
        .ok_or_else(|| ApiError::Internal("product version vanished".into()))?;
    let company = company_name(store).await?;
    let today = state.clock().today();
    let n = store.contracts_of(app.id).await?.len() + 1;
    let contract_no = format!("HT{}{:08}{:02}", today.format("%Y%m%d"), app.id, n);
    let facts = facts_for(
        state.settings().apr_cap,
        today,
        &contract_no,
        &app,
        &product,
        &version,
        (&customer.name, &id_number, &phone),
        (&funder.code, &funder.name_zh),
        &company,
    )?;
    let blocks = parsed.fill(&facts.values);
    let pdf = render_pdf(state, doc_of(&template.name, &contract_no, &blocks, &facts)).await?;
    let pdf_sha256 = sha256_hex(&pdf);
    // What is stored in the database: the ID number masked.
    let mut stored_values = facts.values.clone();
    stored_values.insert(
        "borrower.id_number",
        zhudai_domain::mask::resident_id(&id_number),
    );
    let snapshot = serde_json::json!({
        "template": {"code": template.code, "version": template.version, "digest": template.digest},
        "values": stored_values,
        "quote": facts.quote,
    })
    .to_string();
    let snapshot_digest = sha256_hex(snapshot.as_bytes());
    let subject = crate::customer_docs::subject_of(&customer);
    let sealed = state
        .vault()
        .encrypt_bytes(
            Some(&subject),
            &FieldAad::new(PDF_TABLE, "pdf", &contract_no),
            &pdf,
        )
        .await
        .map_err(ApiError::internal)?;
    let blob_key = format!("{BLOB_PREFIX}/{}", uuid::Uuid::now_v7());
    state
        .blobs()
        .put(&blob_key, sealed)
        .await
        .map_err(ApiError::internal)?;
    let now = state.now_ms();
    let written: Result<i64, ApiError> = async {
        let mut tx = store.begin().await?;
        if let Some(old) = &replaced {
            sc::contract_void(&mut *tx, old.id, "regenerated", &caller.username, now).await?;
        }
        let id = sc::contract_insert(
            &mut *tx,
            &NewContract {
                contract_no: &contract_no,
                application_id: app.id,
                template_id: template.id,
                funder_code: &funder_code,
                amount_fen: app.amount_fen,
                months: app.months,
                method: &app.method,
                snapshot: &snapshot,
                snapshot_digest: &snapshot_digest,
                apr: &facts.disclosure.apr,
                pdf_blob_key: &blob_key,
                pdf_sha256: &pdf_sha256,
                pdf_bytes: pdf.len() as i64,
                generated_by: &caller.username,
            },
            now,
        )
        .await
        .map_err(|e| {
            if e.is_unique_violation("contracts_live_key", "contracts.application_id")
                || e.is_unique_violation("contracts_no_key", "contracts.contract_no")
            {
                ApiError::Conflict(
                    "another contract was generated for this application at the same moment".into(),
                )
            } else {
                e.into()
            }
        })?;
        // The borrower's ID number was read in clear to print it in the contract. Both
        // records and the commit go in one round trip.
        zhudai_store::audit::commit_with_records(
            tx,
            &[
                audit_draft(
                    caller,
                    now,
                    "field.read_clear",
                    format!("customer:{}", customer.id),
                )
                .reason(format!(
                    "customer:{}.id_number printed in contract {contract_no}",
                    customer.id
                )),
                audit_draft(
                    caller,
                    now,
                    "contract.generate",
                    format!("application:{}", app.id),
                )
                .change_digest(pdf_sha256.clone())
                .reason(format!(
                    "{contract_no} from {} v{} · APR {}{}",
                    template.code,
                    template.version,
                    facts.disclosure.apr,
                    replaced
                        .as_ref()
                        .map(|o| format!(" · replaces {}", o.contract_no))
                        .unwrap_or_default()
                )),
            ],
            zhudai_store::batch::Batch::new(),
        )
        .await?;
        Ok(id)
    }
    .await;
    let id = match written {
        Ok(id) => id,
        Err(e) => {
            if let Err(del) = state.blobs().delete(&blob_key).await {
                tracing::warn!(error = %del, key = %blob_key, "could not delete the PDF of a failed contract");
            }
            return Err(e);
        }
    };
    store
        .contract(id)
        .await?
        .ok_or_else(|| ApiError::Internal("the new contract vanished".into()))
}

/// A contract inside the caller's scope (through its application).
pub async fn load(
    state: &AppState,
    caller: &Caller,
    id: i64,
) -> Result<(ContractRow, ApplicationRow), ApiError> {
    let c = state
        .store()
        .contract(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no contract has id {id}")))?;
    let app = apps::load(state, caller, c.application_id).await?;
    Ok((c, app))
}

/// The decrypted PDF of a contract, checked against its stored hash.
pub async fn pdf(
    state: &AppState,
    c: &ContractRow,
    app: &ApplicationRow,
) -> Result<Vec<u8>, ApiError> {
    let customer = state
        .store()
        .customer_get(app.customer_id)
        .await?
        .ok_or_else(|| ApiError::Internal("customer vanished".into()))?;
    let sealed = state
        .blobs()
        .get(&c.pdf_blob_key)
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::NotFound("the contract's PDF is missing".into()))?;
    let plain = state
        .vault()
        .decrypt_bytes(
            Some(&crate::customer_docs::subject_of(&customer)),
            &FieldAad::new(PDF_TABLE, "pdf", &c.contract_no),
            &sealed,
        )
        .await
        .map_err(|e| match e {
            crate::vault::VaultError::Shredded { .. } => {
                ApiError::NotFound("the customer's data was erased".into())
            }
            other => ApiError::internal(other),
        })?;
    if sha256_hex(&plain) != c.pdf_sha256 {
        return Err(ApiError::Internal(format!(
            "contract {} does not match its stored hash",
            c.contract_no
        )));
    }
    Ok(plain.to_vec())
}

// ---------------------------------------------------------------------------------------
// Signing

/// A signature to record.
#[derive(Debug, Clone, Default)]
pub struct SignInput {
    pub party: String,
    pub method: String,
    /// Defaults to the party's name in the contract.
    pub signer_name: Option<String>,
    pub provider_ref: Option<String>,
    pub evidence_sha256: Option<String>,
    /// Defaults to now.
    pub signed_at_ms: Option<i64>,
}

fn values_of(c: &ContractRow) -> serde_json::Value {
    serde_json::from_str::<serde_json::Value>(&c.snapshot)
        .ok()
        .and_then(|v| v.get("values").cloned())
        .unwrap_or(serde_json::Value::Null)
}

/// Records one party's signature; the last one makes the contract `signed`.
pub async fn sign(
    state: &AppState,
    caller: &Caller,
    contract_id: i64,
    input: &SignInput,
) -> Result<Signed, ApiError> {
    let (c, app) = load(state, caller, contract_id).await?;
    let now = state.now_ms();
    let mut errors = Vec::new();
    let party = input.party.trim();
    let method = input.method.trim();
    if !PARTIES.contains(&party) {
        errors.push(FieldError::new(
            "party",
            "invalid",
            "borrower, funder or company",
        ));
    }
    if !METHODS.contains(&method) {
        errors.push(FieldError::new(
            "method",
            "invalid",
            "click_through, e_signature or wet_ink",
        ));
    }
    let values = values_of(&c);
    let default_name = match party {
        "borrower" => values.get("borrower.name"),
        "funder" => values.get("funder.name"),
        _ => values.get("company.name"),
    }
    .and_then(|v| v.as_str())
    .unwrap_or_default()
    .to_owned();
    let signer = input
        .signer_name
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .unwrap_or(default_name);
    if signer.is_empty() || signer.chars().count() > 100 {
        errors.push(FieldError::new(
            "signer_name",
            "required",
            "1–100 characters",
        ));
    }
    let provider_ref = input
        .provider_ref
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty());
    if method == "e_signature" && provider_ref.is_none() {
        errors.push(FieldError::new(
            "provider_ref",
            "required",
            "an e-signature needs the provider's reference",
        ));
    }
    let evidence = input
        .evidence_sha256
        .as_deref()
        .map(|s| s.trim().to_ascii_lowercase())
        .filter(|s| !s.is_empty());
    if let Some(e) = &evidence {
        if e.len() != 64 || !e.bytes().all(|b| b.is_ascii_hexdigit()) {
            errors.push(FieldError::new(
                "evidence_sha256",
                "invalid",
                "the SHA-256 of the evidence, 64 hex digits",
            ));
        }
    } else if matches!(method, "e_signature" | "wet_ink") {
        errors.push(FieldError::new(
            "evidence_sha256",
            "required",
            "give the SHA-256 of the signed file or of the scan",
        ));
    }
    let signed_at = input.signed_at_ms.unwrap_or(now);
    if signed_at > now + 60_000 || signed_at < c.generated_at_ms {
        errors.push(FieldError::new(
            "signed_at_ms",
            "out_of_range",
            "between the contract's generation and now",
        ));
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    if c.status != "draft" {
        return Err(ApiError::Conflict(format!(
            "contract {} is {}; nothing more can be signed",
            c.contract_no, c.status
        )));
    }
    let evidence = evidence.unwrap_or_else(|| {
        // Click-through: the record itself, bound to the exact PDF.
        sha256_hex(
            format!(
                "zhudai/contract-signature/v1|{}|{}|{party}|{signer}|{signed_at}|{}",
                c.contract_no, c.pdf_sha256, caller.username
            )
            .as_bytes(),
        )
    });
    let mut tx = state.store().begin().await?;
    let sig_id = sc::signature_insert(
        &mut *tx,
        &NewSignature {
            contract_id: c.id,
            party,
            method,
            signer_name: &signer,
            provider_ref,
            evidence_sha256: &evidence,
            signed_at_ms: signed_at,
            recorded_by: &caller.username,
        },
        now,
    )
    .await
    .map_err(|e| {
        if e.is_unique_violation("contract_signatures_party_key", "contract_signatures") {
            ApiError::Conflict(format!("the {party} has signed this contract already"))
        } else {
            e.into()
        }
    })?;
    let signatures = sc::signatures_in(&mut tx, c.id).await?;
    let complete = PARTIES
        .iter()
        .all(|p| signatures.iter().any(|s| s.party == *p));
    if complete && !sc::contract_set_signed(&mut *tx, c.id, now).await? {
        return Err(ApiError::Conflict(
            "the contract changed meanwhile (voided?); reload it".into(),
        ));
    }
    // The audit record and the commit in one round trip.
    zhudai_store::audit::commit_with_records(
        tx,
        &[audit_draft(
            caller,
            now,
            "contract.sign",
            format!("application:{}", app.id),
        )
        .change_digest(evidence.clone())
        .reason(format!(
            "{} · {party} by {method}{}: {signer}{}",
            c.contract_no,
            provider_ref.map(|r| format!(" ({r})")).unwrap_or_default(),
            if complete { " · fully signed" } else { "" }
        ))],
        zhudai_store::batch::Batch::new(),
    )
    .await?;
    // The contract as it was read before this transaction, with what the transaction
    // changed in it (the signed status when the last party signed).
    let mut c = c;
    if complete {
        c.status = "signed".into();
        c.signed_at_ms = Some(now);
    }
    let s = signatures
        .iter()
        .find(|s| s.id == sig_id)
        .cloned()
        .ok_or_else(|| ApiError::Internal("the signature vanished".into()))?;
    Ok(Signed {
        contract: c,
        signature: s,
        signatures,
    })
}

/// What [`sign`] recorded: the contract and its signatures as the transaction left them.
#[derive(Debug)]
pub struct Signed {
    pub contract: ContractRow,
    pub signature: SignatureRow,
    pub signatures: Vec<SignatureRow>,
}

/// Voids a contract while its application is still at the contract step.
pub async fn void(
    state: &AppState,
    caller: &Caller,
    contract_id: i64,
    reason: &str,
) -> Result<ContractRow, ApiError> {
    let (c, app) = load(state, caller, contract_id).await?;
    if reason.trim().chars().count() < 4 {
        return Err(ApiError::field(
            "reason",
            "required",
            "say why the contract is void (at least 4 characters)",
        ));
    }
    let inst = apps::instance(state, &app).await?;
    if inst.node != "contract" || inst.status != "running" {
        return Err(ApiError::Conflict(format!(
            "the application has moved on to `{}`; its contract can no longer be voided",
            inst.node
        )));
    }
    let now = state.now_ms();
    let mut tx = state.store().begin().await?;
    if !sc::contract_void(&mut *tx, c.id, reason.trim(), &caller.username, now).await? {
        return Err(ApiError::Conflict(format!(
            "contract {} is void already",
            c.contract_no
        )));
    }
    zhudai_store::audit::append(
        &mut tx,
        &audit_draft(
            caller,
            now,
            "contract.void",
            format!("application:{}", app.id),
        )
        .reason(format!("{}: {}", c.contract_no, reason.trim())),
    )
    .await?;
    tx.commit().await?;
    state
        .store()
        .contract(c.id)
        .await?
        .ok_or_else(|| ApiError::Internal("the contract vanished".into()))
}

// ---------------------------------------------------------------------------------------
// The workflow's contract step

/// Called inside the transaction of an action on an application: completing the
/// `contract` step needs a fully signed contract; withdrawing there voids the contract.
/// Returns what to do after the action (see [`after_action`]).
pub async fn before_action(
    conn: &mut zhudai_store::sqlx::AnyConnection,
    app: &ApplicationRow,
    node: &str,
    action: &Action,
) -> Result<(), ApiError> {
    if node != "contract" {
        return Ok(());
    }
    if matches!(action, Action::Complete) {
        let live = sc::contract_live_in(conn, app.id).await?;
        match live {
            Some(c) if c.status == "signed" => {}
            Some(c) => {
                let signed = sc::signed_parties_in(conn, c.id).await?;
                let missing: Vec<&str> = PARTIES
                    .iter()
                    .copied()
                    .filter(|p| !signed.iter().any(|s| s == p))
                    .collect();
                return Err(ApiError::Conflict(format!(
                    "contract {} is not fully signed yet (missing: {})",
                    c.contract_no,
                    missing.join(", ")
                )));
            }
            None => {
                return Err(ApiError::Conflict(
                    "generate and sign the contract before completing this step".into(),
                ))
            }
        }
    }
    Ok(())
}

/// After an action moved an application (same transaction): a withdrawal at the contract
/// step voids the contract; reaching `disbursement` with a simulated funder schedules its
/// disbursement.
pub async fn after_action(
    conn: &mut zhudai_store::sqlx::AnyConnection,
    state: &AppState,
    app: &ApplicationRow,
    from_node: &str,
    to_node: &str,
    actor: &str,
    now_ms: i64,
) -> Result<(), ApiError> {
    if from_node == "contract" && to_node == "withdrawn" {
        if let Some(c) = sc::contract_live_in(conn, app.id).await? {
            sc::contract_void(&mut *conn, c.id, "application withdrawn", actor, now_ms).await?;
        }
    }
    if from_node == "contract" && to_node == "disbursement" {
        let Some(code) = &app.funder_code else {
            return Ok(());
        };
        if let Some(p) = state.store().partner_by_code(code).await? {
            if p.adapter == "simulated" {
                zhudai_store::jobs::enqueue(
                    &mut *conn,
                    &zhudai_store::jobs::NewJob::new(
                        SIM_DISBURSE_JOB,
                        serde_json::json!({"application_id": app.id}),
                        now_ms + p.sim_latency_ms.max(0),
                    )
                    .dedupe(&format!("{SIM_DISBURSE_JOB}:{}", app.id)),
                    now_ms,
                )
                .await?;
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Disbursement

/// A disbursement reported by the funder.
#[derive(Debug, Clone)]
pub struct DisbursedInput {
    pub application_ref: String,
    pub funder_code: String,
    pub funder_loan_ref: String,
    pub amount_fen: i64,
    pub disbursed_on: chrono::NaiveDate,
    /// `callback` or `simulated`.
    pub source: &'static str,
}

/// What recording a disbursement did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct DisbursedResult {
    pub application_id: i64,
    pub disbursement_id: i64,
    /// The loan opened for it.
    pub loan_id: Option<i64>,
    /// True when this repeats an earlier report of the same funder loan reference.
    pub duplicate: bool,
}

/// Opens the loan of a disbursement inside its transaction (the loan ledger, issue #8).
async fn open_loan(
    tx: &mut zhudai_store::writer::WriteTx,
    state: &AppState,
    d: &DisbursedInput,
    app: &ApplicationRow,
    now_ms: i64,
) -> Result<i64, ApiError> {
    crate::loans::open_from_application(
        tx,
        state,
        &crate::loans::Disbursement {
            application_id: app.id,
            amount_fen: d.amount_fen,
            disbursed_on: d.disbursed_on,
            funder_code: d.funder_code.clone(),
            funder_loan_ref: Some(d.funder_loan_ref.clone()),
        },
        now_ms,
    )
    .await
}

/// Records a disbursement once per funder loan reference: stores it, opens the loan and
/// moves the workflow to `loan` (status `disbursed`), with the audit record, in one
/// transaction. A repeat of the same reference answers the first result.
pub async fn record_disbursement(
    state: &AppState,
    d: &DisbursedInput,
) -> Result<DisbursedResult, ApiError> {
    let store = state.store();
    let (app, inst) = store
        .application_with_instance_by_ref(&d.application_ref)
        .await?
        .ok_or_else(|| {
            ApiError::field(
                "application_ref",
                "unknown",
                format!("no application has the reference `{}`", d.application_ref),
            )
        })?;
    if app.funder_code.as_deref() != Some(d.funder_code.as_str()) {
        return Err(ApiError::Conflict(format!(
            "application {} was not placed with {}",
            d.application_ref, d.funder_code
        )));
    }
    let inst =
        inst.ok_or_else(|| ApiError::Internal(format!("application {} has no workflow", app.id)))?;
    let now = state.now_ms();
    let mut tx = store.begin().await?;
    let duplicate = |row: DisbursementRow| -> Result<DisbursedResult, ApiError> {
        if row.application_id == app.id
            && row.funder_code == d.funder_code
            && row.funder_loan_ref == d.funder_loan_ref
        {
            Ok(DisbursedResult {
                application_id: app.id,
                disbursement_id: row.id,
                loan_id: row.loan_id,
                duplicate: true,
            })
        } else if row.application_id == app.id {
            Err(ApiError::Conflict(format!(
                "application {} was disbursed already under the funder reference {}",
                d.application_ref, row.funder_loan_ref
            )))
        } else {
            Err(ApiError::Conflict(format!(
                "the funder reference {} belongs to another application",
                d.funder_loan_ref
            )))
        }
    };
    if let Some(row) =
        sc::disbursement_existing_in(&mut tx, app.id, &d.funder_code, &d.funder_loan_ref).await?
    {
        tx.rollback().await?;
        return duplicate(row);
    }
    if inst.node != "disbursement" || inst.status != "running" {
        return Err(ApiError::Conflict(format!(
            "application {} is not waiting for disbursement (it is at `{}`)",
            d.application_ref, inst.node
        )));
    }
    let contract = sc::contract_live_in(&mut tx, app.id)
        .await?
        .filter(|c| c.status == "signed")
        .ok_or_else(|| ApiError::Conflict("the application has no signed contract".into()))?;
    if d.amount_fen != contract.amount_fen {
        return Err(ApiError::field(
            "amount",
            "mismatch",
            format!(
                "the contract lends {}; the funder reports {}",
                Fen::new(contract.amount_fen),
                Fen::new(d.amount_fen)
            ),
        ));
    }
    let on = d.disbursed_on.to_string();
    let Some(id) = sc::disbursement_insert(
        &mut *tx,
        &NewDisbursement {
            application_id: app.id,
            contract_id: contract.id,
            funder_code: &d.funder_code,
            funder_loan_ref: &d.funder_loan_ref,
            amount_fen: d.amount_fen,
            disbursed_on: &on,
            source: d.source,
        },
        now,
    )
    .await?
    else {
        // A concurrent report committed first.
        let row = sc::disbursement_existing_in(&mut tx, app.id, &d.funder_code, &d.funder_loan_ref)
            .await?
            .ok_or_else(|| ApiError::Conflict("the disbursement conflicts; retry".into()))?;
        tx.rollback().await?;
        return duplicate(row);
    };
    let loan = open_loan(&mut tx, state, d, &app, now).await?;
    sc::disbursement_set_loan(&mut *tx, id, loan).await?;
    let loan_id = Some(loan);
    let def = wf::definition(store, &inst.definition_code, inst.definition_version).await?;
    let acted = wf::act_on(
        &mut tx,
        store,
        None,
        &inst,
        Some(inst.version),
        &Action::Event {
            name: "disbursed".into(),
        },
        &def.new_facts(),
        now,
    )
    .await?;
    zhudai_store::applications::application_set_progress(
        &mut *tx,
        app.id,
        if acted.finished.as_deref() == Some("disbursed") {
            "disbursed"
        } else {
            "approved"
        },
        &acted.node,
        now,
    )
    .await?;
    let mut draft = AuditDraft::new(now, "loan.disburse", "success")
        .actor(format!("funder:{}", d.funder_code))
        .target(format!("application:{}", app.id))
        .reason(format!(
            "{} · {} yuan on {on} · funder ref {} · {}{}",
            contract.contract_no,
            Fen::new(d.amount_fen),
            d.funder_loan_ref,
            d.source,
            loan_id.map(|l| format!(" · loan {l}")).unwrap_or_default()
        ));
    if let Some(r) = crate::http::request_id::current_request_id() {
        draft = draft.request_id(r);
    }
    zhudai_store::audit::append(&mut tx, &draft).await?;
    tx.commit().await?;
    Ok(DisbursedResult {
        application_id: app.id,
        disbursement_id: id,
        loan_id,
        duplicate: false,
    })
}

/// The handler of [`SIM_DISBURSE_JOB`]: the simulated funder disburses the full amount
/// today under its own reference (idempotent: a repeat finds the first disbursement).
pub async fn run_sim_disburse_job(
    state: AppState,
    job: zhudai_store::jobs::Job,
) -> Result<(), String> {
    let app_id = job
        .payload
        .get("application_id")
        .and_then(serde_json::Value::as_i64)
        .ok_or("the job has no application_id")?;
    let store = state.store();
    let Some(app) = store.application(app_id).await.map_err(|e| e.to_string())? else {
        return Ok(());
    };
    let Some(code) = app.funder_code.clone() else {
        return Ok(());
    };
    let Some(c) = store
        .contract_live(app.id)
        .await
        .map_err(|e| e.to_string())?
    else {
        return Ok(());
    };
    let r = record_disbursement(
        &state,
        &DisbursedInput {
            application_ref: app.ref_.clone(),
            funder_loan_ref: format!("SIM-{code}-{}", app.ref_),
            funder_code: code,
            amount_fen: c.amount_fen,
            disbursed_on: state.clock().today(),
            source: "simulated",
        },
    )
    .await;
    match r {
        Ok(_) => Ok(()),
        // Withdrawn or disbursed by another way meanwhile: nothing to do.
        Err(ApiError::Conflict(m)) => {
            tracing::info!(application = app.id, "simulated disbursement skipped: {m}");
            Ok(())
        }
        Err(e) => Err(e.to_string()),
    }
}
