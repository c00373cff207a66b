//! Who may do what: the permission catalogue, the roles seeded on a new installation,
//! data scopes, sensitive fields, and the separation-of-duties rules (三权分立).
//!
//! Permissions are strings `module.action` so they can be stored, shown and granted
//! without code changes; the catalogue below is the complete list the server knows, and
//! every route names one of them (or is public). Roles are data: the seeds are a starting
//! point an administrator edits.

use std::collections::BTreeSet;

/// One grantable action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PermissionDef {
    pub code: &'static str,
    pub zh: &'static str,
    pub en: &'static str,
}

const fn p(code: &'static str, zh: &'static str, en: &'static str) -> PermissionDef {
    PermissionDef { code, zh, en }
}

/// Every permission, grouped by module (the prefix before the first dot).
pub const PERMISSIONS: &[PermissionDef] = &[
    p(
        "system.read",
        "查看系统信息与后台任务",
        "View system information and jobs",
    ),
    p("org.read", "查看组织架构", "View the organisation"),
    p("org.manage", "维护组织架构", "Manage the organisation"),
    p("user.read", "查看用户", "View users"),
    p("user.manage", "创建与维护用户", "Create and manage users"),
    p(
        "user.reveal",
        "查看用户敏感信息明文",
        "Reveal users' sensitive fields",
    ),
    p("role.read", "查看角色与权限", "View roles and permissions"),
    p(
        "role.manage",
        "维护角色与权限",
        "Manage roles and permissions",
    ),
    p("security.keys", "管理加密密钥", "Manage encryption keys"),
    p(
        "security.sessions",
        "管理他人会话",
        "Manage other users' sessions",
    ),
    p("security.backup", "备份与恢复", "Backups and restores"),
    p("audit.read", "查阅审计日志", "Read the audit trail"),
    p("audit.export", "导出审计日志", "Export the audit trail"),
    p("audit.verify", "校验审计链", "Verify the audit chain"),
    p("customer.read", "查看客户", "View customers"),
    p("customer.create", "创建客户", "Create customers"),
    p("customer.update", "修改客户", "Update customers"),
    p(
        "customer.reveal",
        "查看客户敏感信息明文",
        "Reveal customers' sensitive fields",
    ),
    p("customer.import", "批量导入客户", "Import customers"),
    p("customer.export", "导出客户", "Export customers"),
    // Bulk customer import and export (issue #4 part 5): four-eyes approval of large exports.
    p(
        "customer.export.approve",
        "审批大批量客户导出",
        "Approve large customer exports",
    ),
    p("document.read", "查看客户资料", "View documents"),
    p("document.upload", "上传客户资料", "Upload documents"),
    p("document.verify", "核验客户资料", "Verify documents"),
    p(
        "workflow.read",
        "查看业务流程定义",
        "View workflow definitions",
    ),
    p(
        "workflow.manage",
        "维护业务流程定义",
        "Manage workflow definitions",
    ),
    // Worklists and exception alerts (issue #6 item 3): group-bot webhooks.
    p(
        "notification.manage",
        "配置预警通知（企业微信、钉钉、飞书机器人）",
        "Configure alert notifications (WeCom, DingTalk, Feishu bots)",
    ),
    // PIPL consents and data-subject requests (issue #4)
    p(
        "consent.manage",
        "登记客户授权与个人信息权利请求",
        "Record consents and data-subject requests",
    ),
    p(
        "privacy.request.read",
        "查看个人信息权利请求",
        "View data-subject requests",
    ),
    p(
        "privacy.request.handle",
        "处理个人信息权利请求（导出、删除）",
        "Handle data-subject requests (export, erasure)",
    ),
    p("application.read", "查看贷款申请", "View applications"),
    p(
        "application.create",
        "创建与提交申请",
        "Create and submit applications",
    ),
    p("approval.l1", "一级审批", "Approve at level 1"),
    p("approval.l2", "二级审批", "Approve at level 2"),
    p("approval.l3", "三级审批", "Approve at level 3"),
    p(
        "approval.committee",
        "贷审会审批",
        "Approve as the credit committee",
    ),
    p(
        "risk.read",
        "查看风控决策与预警",
        "View decisions and warnings",
    ),
    p(
        "risk.manage",
        "维护模型、规则与预警",
        "Manage models, rules and warnings",
    ),
    p("risk.limit", "调整授信额度", "Adjust credit limits"),
    // Risk warnings and credit limits (issue #7 items 3 and 4): the checker of a limit
    // change (maker-checker), and systems or staff reporting risk events.
    p(
        "risk.limit.approve",
        "审批授信额度调整",
        "Approve credit limit changes",
    ),
    p("risk.event", "报送风险事件", "Submit risk events"),
    p("product.read", "查看产品", "View products"),
    p("product.manage", "维护产品", "Manage products"),
    // Products and pricing (issue #5): a stored quote is a write, so it is not product.read.
    p(
        "quote.create",
        "生成报价与综合融资成本明示表",
        "Create quotes and cost disclosures",
    ),
    p("funder.read", "查看资金方", "View funders"),
    p(
        "funder.manage",
        "维护资金方与准入",
        "Manage funders and admission",
    ),
    p(
        "funder.portal",
        "资金方门户（仅本机构数据）",
        "Funder portal (own data only)",
    ),
    // Funder network (issue #5): admission approval (four eyes) and routing runs.
    p(
        "funder.admit",
        "审批合作机构准入",
        "Approve partner admission",
    ),
    p("routing.run", "发起资金路由", "Run funder routing"),
    // Contracts and disbursement (issue #6).
    p(
        "contract.read",
        "查看与下载合同（含借款人身份证号）",
        "View and download contracts (with the borrower's ID number)",
    ),
    p(
        "contract.manage",
        "生成合同、登记签署、作废合同",
        "Generate contracts, record signatures, void contracts",
    ),
    p(
        "contract.template.manage",
        "维护合同模板",
        "Manage contract templates",
    ),
    p("loan.read", "查看贷款与账务", "View loans and the ledger"),
    p("loan.disburse", "合同与放款", "Contracts and disbursement"),
    p("loan.repay", "登记还款", "Post repayments"),
    p("loan.reverse", "冲正", "Reverse postings"),
    // Loans and the ledger (issue #8): book-wide balances per account and funder.
    p(
        "ledger.read",
        "查看总账与资金方余额",
        "View ledger balances by account and funder",
    ),
    p("cob.run", "执行日终批处理", "Run the daily close"),
    p("collection.read", "查看催收案件", "View collection cases"),
    p("collection.work", "处理催收案件", "Work collection cases"),
    p(
        "collection.assign",
        "分配催收案件",
        "Assign collection cases",
    ),
    // Daily close, collections, reconciliation (issue #8 items 3–7).
    p(
        "collection.manage",
        "结案与委外佣金管理",
        "Close cases and manage agency commission",
    ),
    p(
        "loan.classify",
        "申请人工分类下限与登记重组",
        "Request manual classification floors and record restructurings",
    ),
    p(
        "loan.classify.approve",
        "审批人工分类下限",
        "Approve manual classification floors",
    ),
    p(
        "funder.reconcile",
        "资金方对账",
        "Reconcile funders' repayment files",
    ),
    p(
        "aml.read",
        "查看反洗钱预警与案件",
        "View AML alerts and cases",
    ),
    p(
        "aml.work",
        "处理反洗钱预警与案件",
        "Work AML alerts and cases",
    ),
    p("aml.report", "监管报送", "Regulatory reporting"),
    p("kpi.read", "查看绩效", "View performance"),
    p("kpi.manage", "维护考核方案", "Manage performance plans"),
    p(
        "report.read",
        "查看报表与看板",
        "View reports and dashboards",
    ),
    p("report.export", "导出报表", "Export reports"),
    p(
        "whistle.handle",
        "处理举报",
        "Handle whistleblowing reports",
    ),
];

pub fn is_permission(code: &str) -> bool {
    PERMISSIONS.iter().any(|p| p.code == code)
}

/// Data classification levels driving masking and export rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Sensitivity {
    /// C1 internal: shown to anyone with read access.
    Internal,
    /// C2 personal information: masked unless the role may see it.
    Personal,
    /// C3 sensitive personal information (PIPL art. 28): masked; reveal is audited.
    Sensitive,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldDef {
    pub code: &'static str,
    pub level: Sensitivity,
    pub zh: &'static str,
    pub en: &'static str,
}

/// Fields stored encrypted and masked on display.
pub const SENSITIVE_FIELDS: &[FieldDef] = &[
    FieldDef {
        code: "user.phone",
        level: Sensitivity::Personal,
        zh: "员工手机号",
        en: "Staff mobile",
    },
    FieldDef {
        code: "user.id_number",
        level: Sensitivity::Sensitive,
        zh: "员工身份证号",
        en: "Staff ID number",
    },
    FieldDef {
        code: "customer.id_number",
        level: Sensitivity::Sensitive,
        zh: "客户身份证号",
        en: "Customer ID number",
    },
    FieldDef {
        code: "customer.phone",
        level: Sensitivity::Personal,
        zh: "客户手机号",
        en: "Customer mobile",
    },
    FieldDef {
        code: "customer.bank_card",
        level: Sensitivity::Sensitive,
        zh: "客户银行卡号",
        en: "Customer bank card",
    },
    FieldDef {
        code: "customer.income",
        level: Sensitivity::Personal,
        zh: "客户收入",
        en: "Customer income",
    },
    // Funder network (issue #5): the mobile of a partner's contact person.
    FieldDef {
        code: "partner.contact_phone",
        level: Sensitivity::Personal,
        zh: "合作机构联系人手机号",
        en: "Partner contact mobile",
    },
];

pub fn is_sensitive_field(code: &str) -> bool {
    SENSITIVE_FIELDS.iter().any(|f| f.code == code)
}

/// A role installed on a new system.
#[derive(Debug, Clone, Copy)]
pub struct RoleSeed {
    pub code: &'static str,
    pub zh: &'static str,
    pub en: &'static str,
    /// Data scope: `own`, `team`, `branch` or `all`.
    pub scope: &'static str,
    pub requires_2fa: bool,
    pub permissions: &'static [&'static str],
    /// Sensitive fields this role sees in clear.
    pub clear_fields: &'static [&'static str],
}

const READ_ALL: &[&str] = &[
    "system.read",
    "org.read",
    "user.read",
    "role.read",
    "customer.read",
    "document.read",
    "application.read",
    "workflow.read",
    "risk.read",
    "product.read",
    "funder.read",
    "loan.read",
    // Loans and the ledger (issue #8).
    "ledger.read",
    "collection.read",
    "aml.read",
    "kpi.read",
    "report.read",
];

/// The roles of the brief. 三权分立: the system administrator, the security officer and the
/// auditor hold disjoint powers (see [`sod_violations`]).
pub const SEED_ROLES: &[RoleSeed] = &[
    RoleSeed {
        code: "sysadmin",
        zh: "系统管理员",
        en: "System administrator",
        scope: "all",
        requires_2fa: true,
        permissions: &[
            "system.read",
            "org.read",
            "org.manage",
            "user.read",
            "user.manage",
            "role.read",
            "role.manage",
            "product.read",
            "funder.read",
            "workflow.read",
            "workflow.manage",
            // Worklists and exception alerts (issue #6 item 3).
            "notification.manage",
        ],
        clear_fields: &[],
    },
    RoleSeed {
        code: "security_officer",
        zh: "安全管理员",
        en: "Security officer",
        scope: "all",
        requires_2fa: true,
        permissions: &[
            "system.read",
            "org.read",
            "user.read",
            "role.read",
            "security.keys",
            "security.sessions",
            "security.backup",
        ],
        clear_fields: &[],
    },
    RoleSeed {
        code: "auditor",
        zh: "审计管理员",
        en: "Auditor",
        scope: "all",
        requires_2fa: true,
        permissions: &[
            "system.read",
            "org.read",
            "user.read",
            "role.read",
            "customer.read",
            "document.read",
            "application.read",
            "risk.read",
            "product.read",
            "funder.read",
            "loan.read",
            // Loans and the ledger (issue #8).
            "ledger.read",
            "collection.read",
            "aml.read",
            "kpi.read",
            "report.read",
            "audit.read",
            "audit.export",
            "audit.verify",
            "whistle.handle",
            "privacy.request.read",
            "customer.reveal",
            "user.reveal",
            // Contracts (issue #6).
            "contract.read",
        ],
        clear_fields: &[],
    },
    RoleSeed {
        code: "customer_manager",
        zh: "客户经理",
        en: "Customer manager",
        scope: "own",
        requires_2fa: false,
        permissions: &[
            "org.read",
            "customer.read",
            "customer.create",
            "customer.update",
            "customer.reveal",
            "customer.import",
            "customer.export",
            "document.read",
            "document.upload",
            "consent.manage",
            "application.read",
            "application.create",
            "product.read",
            "quote.create",
            "loan.read",
            // Contracts (issue #6): the borrower's manager may hand the contract over.
            "contract.read",
        ],
        clear_fields: &["customer.phone"],
    },
    RoleSeed {
        code: "doc_verifier",
        zh: "资料审核员",
        en: "Document verifier",
        scope: "branch",
        requires_2fa: false,
        permissions: &[
            "org.read",
            "customer.read",
            "customer.reveal",
            "document.read",
            "document.verify",
            "application.read",
        ],
        clear_fields: &["customer.id_number"],
    },
    RoleSeed {
        code: "risk_reviewer",
        zh: "风控审核员",
        en: "Risk reviewer",
        scope: "all",
        requires_2fa: true,
        permissions: &[
            "org.read",
            "customer.read",
            "document.read",
            "application.read",
            "risk.read",
            "risk.manage",
            "risk.limit",
            "product.read",
            "loan.read",
            // Risk warnings (issue #7).
            "risk.event",
            // Daily close (issue #8 items 3–7): manual floors, restructuring, their approval.
            "loan.classify",
            "loan.classify.approve",
            "report.read",
        ],
        clear_fields: &[],
    },
    // Risk warnings and credit limits (issue #7 items 3 and 4): owns warning rules and
    // playbooks, handles warnings, and is the checker of limit changes requested by
    // risk reviewers.
    RoleSeed {
        code: "risk_manager",
        zh: "风控经理",
        en: "Risk manager",
        scope: "all",
        requires_2fa: true,
        permissions: &[
            "org.read",
            "customer.read",
            "document.read",
            "application.read",
            "risk.read",
            "risk.manage",
            "risk.limit",
            "risk.limit.approve",
            "risk.event",
            "product.read",
            "funder.read",
            "loan.read",
            // Daily close (issue #8 items 3–7): manual floors, restructuring, their approval.
            "loan.classify",
            "loan.classify.approve",
            "report.read",
        ],
        clear_fields: &[],
    },
    RoleSeed {
        code: "approver_l1",
        zh: "一级审批人",
        en: "Approver L1",
        scope: "branch",
        requires_2fa: true,
        permissions: &[
            "org.read",
            "customer.read",
            "document.read",
            "application.read",
            "risk.read",
            "approval.l1",
        ],
        clear_fields: &[],
    },
    RoleSeed {
        code: "approver_l2",
        zh: "二级审批人",
        en: "Approver L2",
        scope: "all",
        requires_2fa: true,
        permissions: &[
            "org.read",
            "customer.read",
            "document.read",
            "application.read",
            "risk.read",
            "approval.l2",
        ],
        clear_fields: &[],
    },
    RoleSeed {
        code: "approver_l3",
        zh: "三级审批人",
        en: "Approver L3",
        scope: "all",
        requires_2fa: true,
        permissions: &[
            "org.read",
            "customer.read",
            "document.read",
            "application.read",
            "risk.read",
            "approval.l3",
        ],
        clear_fields: &[],
    },
    RoleSeed {
        code: "committee",
        zh: "贷审会委员",
        en: "Credit committee member",
        scope: "all",
        requires_2fa: true,
        permissions: &[
            "org.read",
            "customer.read",
            "document.read",
            "application.read",
            "risk.read",
            "approval.committee",
        ],
        clear_fields: &[],
    },
    RoleSeed {
        code: "operations",
        zh: "放款专员",
        en: "Operations",
        scope: "all",
        requires_2fa: false,
        permissions: &[
            "org.read",
            "customer.read",
            "customer.import",
            "customer.export",
            "application.read",
            "product.read",
            "funder.read",
            "routing.run",
            "loan.read",
            "loan.disburse",
            "loan.repay",
            // Loans and the ledger (issue #8): operations reverse their own mistakes
            // and read the book's balances.
            "loan.reverse",
            "ledger.read",
            "cob.run",
            // Contracts (issue #6): generate, sign, void at the contract step.
            "contract.read",
            "contract.manage",
            // Risk warnings (issue #7): the daily close reports post-loan events.
            "risk.event",
            // Funder reconciliation (issue #8 items 3–7).
            "funder.reconcile",
        ],
        clear_fields: &["customer.bank_card"],
    },
    RoleSeed {
        code: "collector",
        zh: "催收专员",
        en: "Collector",
        scope: "own",
        requires_2fa: false,
        permissions: &[
            "org.read",
            "customer.read",
            "loan.read",
            "collection.read",
            "collection.work",
        ],
        clear_fields: &["customer.phone"],
    },
    RoleSeed {
        code: "post_loan",
        zh: "贷后主管",
        en: "Post-loan manager",
        scope: "branch",
        requires_2fa: false,
        permissions: &[
            "org.read",
            "customer.read",
            "loan.read",
            "loan.repay",
            "loan.reverse",
            "collection.read",
            "collection.work",
            "collection.assign",
            // Risk warnings (issue #7): sees and works the post-loan warnings and tasks.
            "risk.read",
            "risk.event",
            // Daily close and collections (issue #8 items 3–7).
            "collection.manage",
            "loan.classify",
            "report.read",
            "report.export",
        ],
        clear_fields: &["customer.phone"],
    },
    RoleSeed {
        code: "compliance",
        zh: "合规/反洗钱专员",
        en: "Compliance / AML officer",
        scope: "all",
        requires_2fa: true,
        permissions: &[
            "org.read",
            "customer.read",
            "customer.reveal",
            "document.read",
            "application.read",
            "loan.read",
            "aml.read",
            "aml.work",
            "aml.report",
            "report.read",
            "privacy.request.read",
            "privacy.request.handle",
            // Funder network (issue #5): compliance approves partner admission.
            "funder.read",
            "funder.admit",
            "customer.export.approve",
            // Contracts (issue #6).
            "contract.read",
        ],
        clear_fields: &["customer.id_number"],
    },
    RoleSeed {
        code: "executive",
        zh: "管理层",
        en: "Executive",
        scope: "all",
        requires_2fa: true,
        permissions: READ_ALL,
        clear_fields: &[],
    },
    // Funder network (issue #5): registers partners, prepares admission, sets limits.
    RoleSeed {
        code: "funding_manager",
        zh: "资金合作经理",
        en: "Funding manager",
        scope: "all",
        requires_2fa: true,
        permissions: &[
            "org.read",
            "product.read",
            "funder.read",
            "funder.manage",
            "routing.run",
            "application.read",
            // Loans and the ledger (issue #8): balances per funder.
            "loan.read",
            "ledger.read",
            // Funder reconciliation (issue #8 items 3–7).
            "funder.reconcile",
        ],
        clear_fields: &["partner.contact_phone"],
    },
    // Products and pricing (issue #5): designs products and their versions with the
    // funders; the all-in cost cap is enforced on every save.
    RoleSeed {
        code: "product_manager",
        zh: "产品经理",
        en: "Product manager",
        scope: "all",
        requires_2fa: false,
        permissions: &[
            "org.read",
            "product.read",
            "product.manage",
            "quote.create",
            "funder.read",
            // Contracts (issue #6): the contract templates.
            "contract.template.manage",
        ],
        clear_fields: &[],
    },
    RoleSeed {
        code: "funder_user",
        zh: "合作机构用户",
        en: "Funder user",
        scope: "own",
        requires_2fa: false,
        permissions: &["funder.portal"],
        clear_fields: &[],
    },
];

pub fn seed_role(code: &str) -> Option<&'static RoleSeed> {
    SEED_ROLES.iter().find(|r| r.code == code)
}

/// A combination of powers no single account may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SodRule {
    pub code: &'static str,
    pub left: &'static [&'static str],
    pub right: &'static [&'static str],
    pub en: &'static str,
    pub zh: &'static str,
}

const PERMISSION_ADMIN: &[&str] = &["user.manage", "role.manage"];
const AUDIT_ACCESS: &[&str] = &["audit.read", "audit.export", "audit.verify"];
const SECURITY_ADMIN: &[&str] = &["security.keys", "security.sessions", "security.backup"];

/// 三权分立 (等保 2.0 level 3): system, security and audit administration are separate.
pub const SOD_RULES: &[SodRule] = &[
    SodRule { code: "sod.admin_audit", left: PERMISSION_ADMIN, right: AUDIT_ACCESS,
        en: "whoever manages users or permissions may not read the audit trail",
        zh: "管理用户或权限者不得查阅审计日志" },
    SodRule { code: "sod.admin_security", left: PERMISSION_ADMIN, right: SECURITY_ADMIN,
        en: "whoever manages users or permissions may not administer security (keys, sessions, backups)",
        zh: "管理用户或权限者不得进行安全管理（密钥、会话、备份）" },
    SodRule { code: "sod.security_audit", left: SECURITY_ADMIN, right: AUDIT_ACCESS,
        en: "the security officer may not also be the auditor",
        zh: "安全管理员不得兼任审计管理员" },
];

/// The separation-of-duties rules a set of permissions breaks (empty when none).
pub fn sod_violations<'a, I>(permissions: I) -> Vec<&'static SodRule>
where
    I: IntoIterator<Item = &'a str>,
{
    let held: BTreeSet<&str> = permissions.into_iter().collect();
    SOD_RULES
        .iter()
        .filter(|r| {
            r.left.iter().any(|p| held.contains(p)) && r.right.iter().any(|p| held.contains(p))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_use_only_catalogued_permissions_and_fields() {
        for r in SEED_ROLES {
            for p in r.permissions {
                assert!(is_permission(p), "{}: unknown permission {p}", r.code);
            }
            for f in r.clear_fields {
                assert!(is_sensitive_field(f), "{}: unknown field {f}", r.code);
            }
        }
        let mut codes: Vec<_> = PERMISSIONS.iter().map(|p| p.code).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), PERMISSIONS.len(), "duplicate permission codes");
    }

    #[test]
    fn no_seed_role_breaks_separation_of_duties() {
        for r in SEED_ROLES {
            assert!(
                sod_violations(r.permissions.iter().copied()).is_empty(),
                "{}",
                r.code
            );
        }
    }

    #[test]
    fn the_three_administrators_cannot_be_combined() {
        let admin = seed_role("sysadmin").unwrap().permissions;
        let security = seed_role("security_officer").unwrap().permissions;
        let auditor = seed_role("auditor").unwrap().permissions;
        let v = sod_violations(admin.iter().chain(auditor).copied());
        assert_eq!(
            v.iter().map(|r| r.code).collect::<Vec<_>>(),
            ["sod.admin_audit"]
        );
        let v = sod_violations(admin.iter().chain(security).copied());
        assert_eq!(
            v.iter().map(|r| r.code).collect::<Vec<_>>(),
            ["sod.admin_security"]
        );
        let v = sod_violations(security.iter().chain(auditor).copied());
        assert_eq!(
            v.iter().map(|r| r.code).collect::<Vec<_>>(),
            ["sod.security_audit"]
        );
        assert!(sod_violations(["customer.read", "audit.read"]).is_empty());
    }
}
