//! Customer documents (客户资料): the typed materials a customer hands in, what each type
//! must carry (expiry dates, declared name and ID number), the content types accepted
//! (detected from the bytes, never from the file name), retention classes, verification
//! by a second person (four eyes), the automatic cross-checks shown to the verifier, and
//! [`materials_complete`], which the application workflow calls before an application
//! may leave document review.

use crate::customer::{check_name, FieldProblem};
use crate::ident::{ResidentId, Uscc};
use chrono::{Months, NaiveDate};
use serde::{Deserialize, Serialize};

/// The kind of a material.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DocumentType {
    /// 身份证人像面.
    IdFront,
    /// 身份证国徽面 (carries the validity period).
    IdBack,
    /// 港澳台居民居住证.
    ResidencePermit,
    /// 收入证明.
    IncomeProof,
    /// 银行流水.
    BankStatement,
    /// 征信报告.
    CreditReport,
    /// 营业执照.
    BusinessLicence,
    /// 合同.
    Contract,
    /// 其他.
    Other,
}

impl DocumentType {
    pub const ALL: [DocumentType; 9] = [
        DocumentType::IdFront,
        DocumentType::IdBack,
        DocumentType::ResidencePermit,
        DocumentType::IncomeProof,
        DocumentType::BankStatement,
        DocumentType::CreditReport,
        DocumentType::BusinessLicence,
        DocumentType::Contract,
        DocumentType::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DocumentType::IdFront => "id_front",
            DocumentType::IdBack => "id_back",
            DocumentType::ResidencePermit => "residence_permit",
            DocumentType::IncomeProof => "income_proof",
            DocumentType::BankStatement => "bank_statement",
            DocumentType::CreditReport => "credit_report",
            DocumentType::BusinessLicence => "business_licence",
            DocumentType::Contract => "contract",
            DocumentType::Other => "other",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim();
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// Identity documents carry the holder's name and ID number (declared at upload).
    pub fn is_identity(self) -> bool {
        matches!(
            self,
            DocumentType::IdFront
                | DocumentType::IdBack
                | DocumentType::ResidencePermit
                | DocumentType::BusinessLicence
        )
    }

    /// The types whose validity ends on a date that must be recorded at upload: the
    /// back of the ID card (有效期限), residence permits and business licences (营业期限).
    pub fn requires_expiry(self) -> bool {
        matches!(
            self,
            DocumentType::IdBack | DocumentType::ResidencePermit | DocumentType::BusinessLicence
        )
    }

    /// The retention class a type gets unless the uploader chooses another.
    /// Identity and account records are customer due-diligence records (AML, 10 years);
    /// contracts are kept 5 years after they end; the rest 3 years.
    pub fn default_retention(self) -> RetentionClass {
        match self {
            DocumentType::IdFront
            | DocumentType::IdBack
            | DocumentType::ResidencePermit
            | DocumentType::BusinessLicence
            | DocumentType::BankStatement => RetentionClass::Aml10y,
            DocumentType::Contract => RetentionClass::Contract5yAfterEnd,
            DocumentType::IncomeProof | DocumentType::CreditReport | DocumentType::Other => {
                RetentionClass::Standard3y
            }
        }
    }
}

/// How long a document is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RetentionClass {
    /// Customer due-diligence record: at least 10 years (revised AML law, 2025). A legal
    /// hold: a deletion request is refused while it runs.
    Aml10y,
    /// Five years after the contract ends. A legal hold; while the end date is unknown
    /// the document is held without a date.
    Contract5yAfterEnd,
    /// Internal policy, 3 years from upload. Not a legal hold: a data subject's deletion
    /// request erases it earlier.
    Standard3y,
}

impl RetentionClass {
    pub const ALL: [RetentionClass; 3] = [
        RetentionClass::Aml10y,
        RetentionClass::Contract5yAfterEnd,
        RetentionClass::Standard3y,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RetentionClass::Aml10y => "aml_10y",
            RetentionClass::Contract5yAfterEnd => "contract_5y_after_end",
            RetentionClass::Standard3y => "standard_3y",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim();
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// Whether the law requires keeping the document (deletion requests must wait).
    pub fn is_legal_hold(self) -> bool {
        matches!(
            self,
            RetentionClass::Aml10y | RetentionClass::Contract5yAfterEnd
        )
    }

    /// The last day the document must be kept: 10 or 3 years after `uploaded`, or 5
    /// years after `contract_end` (`None` while the contract's end is unknown).
    pub fn retain_until(
        self,
        uploaded: NaiveDate,
        contract_end: Option<NaiveDate>,
    ) -> Option<NaiveDate> {
        match self {
            RetentionClass::Aml10y => add_years(uploaded, 10),
            RetentionClass::Standard3y => add_years(uploaded, 3),
            RetentionClass::Contract5yAfterEnd => contract_end.and_then(|d| add_years(d, 5)),
        }
    }
}

/// `date` plus whole years (29 February becomes 28 February in a common year).
pub fn add_years(date: NaiveDate, years: u32) -> Option<NaiveDate> {
    date.checked_add_months(Months::new(years * 12))
}

/// A content type zhudai accepts for documents, detected from the file's magic bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContentType {
    Pdf,
    Jpeg,
    Png,
    Webp,
    Tiff,
    Heic,
}

impl ContentType {
    pub const ALL: [ContentType; 6] = [
        ContentType::Pdf,
        ContentType::Jpeg,
        ContentType::Png,
        ContentType::Webp,
        ContentType::Tiff,
        ContentType::Heic,
    ];

    pub fn mime(self) -> &'static str {
        match self {
            ContentType::Pdf => "application/pdf",
            ContentType::Jpeg => "image/jpeg",
            ContentType::Png => "image/png",
            ContentType::Webp => "image/webp",
            ContentType::Tiff => "image/tiff",
            ContentType::Heic => "image/heic",
        }
    }

    pub fn from_mime(mime: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.mime() == mime)
    }

    /// File-name extensions (lower case) that may carry this type; the first is the
    /// canonical one.
    pub fn extensions(self) -> &'static [&'static str] {
        match self {
            ContentType::Pdf => &["pdf"],
            ContentType::Jpeg => &["jpg", "jpeg", "jpe", "jfif"],
            ContentType::Png => &["png"],
            ContentType::Webp => &["webp"],
            ContentType::Tiff => &["tif", "tiff"],
            ContentType::Heic => &["heic", "heif"],
        }
    }

    /// Detects the type from the first bytes of a file (the `infer` crate's matchers),
    /// `None` for anything else (executables, text, archives, office files…).
    pub fn sniff(bytes: &[u8]) -> Option<Self> {
        use infer::{archive, image};
        if archive::is_pdf(bytes) {
            Some(ContentType::Pdf)
        } else if image::is_jpeg(bytes) {
            Some(ContentType::Jpeg)
        } else if image::is_png(bytes) {
            Some(ContentType::Png)
        } else if image::is_webp(bytes) {
            Some(ContentType::Webp)
        } else if image::is_tiff(bytes) && !image::is_cr2(bytes) {
            Some(ContentType::Tiff)
        } else if image::is_heif(bytes) {
            Some(ContentType::Heic)
        } else {
            None
        }
    }
}

/// The lower-case extension of a file name, if it has one.
pub fn extension_of(file_name: &str) -> Option<String> {
    let base = file_name.rsplit(['/', '\\']).next().unwrap_or(file_name);
    let (stem, ext) = base.rsplit_once('.')?;
    if stem.is_empty() || ext.is_empty() {
        return None;
    }
    Some(ext.to_ascii_lowercase())
}

/// Checks an uploaded file: its bytes must be one of the accepted types, and a file name
/// with an extension must name that type (a renamed `.exe`, or a `.pdf` that is really a
/// PNG, is refused). Problems are reported on the field `file`.
pub fn check_content(file_name: &str, bytes: &[u8]) -> Result<ContentType, FieldProblem> {
    if bytes.is_empty() {
        return Err(FieldProblem::new("file", "empty", "the file is empty"));
    }
    let Some(detected) = ContentType::sniff(bytes) else {
        return Err(FieldProblem::new(
            "file",
            "unsupported_type",
            "the file is not a PDF, JPEG, PNG, WebP, TIFF or HEIC document (detected from its content, not its name)",
        ));
    };
    if let Some(ext) = extension_of(file_name) {
        if !detected.extensions().contains(&ext.as_str()) {
            return Err(FieldProblem::new(
                "file",
                "type_mismatch",
                format!(
                    "the file is named .{ext} but its content is {}; rename it or upload the right file",
                    detected.mime()
                ),
            ));
        }
    }
    Ok(detected)
}

/// The metadata sent with an upload (form fields), as typed. Empty strings are absent.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct DocumentInput {
    pub doc_type: Option<String>,
    pub retention_class: Option<String>,
    /// `YYYY-MM-DD`: the last day the document is valid.
    pub expiry_date: Option<String>,
    pub issued_date: Option<String>,
    /// When the contract ends (contracts).
    pub contract_end_date: Option<String>,
    /// Name printed on an identity document.
    pub declared_name: Option<String>,
    /// ID number (or USCC on a business licence) printed on an identity document.
    pub declared_id_number: Option<String>,
}

/// Validated upload metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidDocumentMeta {
    pub doc_type: DocumentType,
    pub retention_class: RetentionClass,
    pub expiry_date: Option<NaiveDate>,
    pub issued_date: Option<NaiveDate>,
    pub contract_end_date: Option<NaiveDate>,
    pub declared_name: Option<String>,
    pub declared_id_number: Option<String>,
}

impl ValidDocumentMeta {
    /// The retain-until date of a document uploaded on `uploaded`.
    pub fn retain_until(&self, uploaded: NaiveDate) -> Option<NaiveDate> {
        self.retention_class
            .retain_until(uploaded, self.contract_end_date)
    }
}

fn present(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// Parses a `YYYY-MM-DD` date field.
pub fn parse_date(field: &'static str, raw: &str) -> Result<NaiveDate, FieldProblem> {
    NaiveDate::parse_from_str(raw.trim(), "%Y-%m-%d").map_err(|_| {
        FieldProblem::new(
            field,
            "invalid_date",
            "enter a date as YYYY-MM-DD, e.g. 2030-06-30",
        )
    })
}

impl DocumentInput {
    /// Validates every field at once. `today` refuses an issue date in the future.
    pub fn validate(&self, today: NaiveDate) -> Result<ValidDocumentMeta, Vec<FieldProblem>> {
        let mut problems = Vec::new();
        let doc_type = match present(&self.doc_type) {
            None => {
                problems.push(FieldProblem::new(
                    "doc_type",
                    "required",
                    "choose the document type",
                ));
                None
            }
            Some(raw) => {
                let t = DocumentType::parse(raw);
                if t.is_none() {
                    problems.push(FieldProblem::new(
                        "doc_type",
                        "invalid",
                        format!(
                            "the document type is one of {}",
                            DocumentType::ALL.map(DocumentType::as_str).join(", ")
                        ),
                    ));
                }
                t
            }
        };
        let retention_class = match present(&self.retention_class) {
            None => doc_type.map(DocumentType::default_retention),
            Some(raw) => {
                let c = RetentionClass::parse(raw);
                if c.is_none() {
                    problems.push(FieldProblem::new(
                        "retention_class",
                        "invalid",
                        "the retention class is aml_10y, contract_5y_after_end or standard_3y",
                    ));
                }
                c
            }
        };
        let mut date = |field: &'static str, v: &Option<String>| {
            present(v).and_then(|raw| parse_date(field, raw).map_err(|p| problems.push(p)).ok())
        };
        let expiry_date = date("expiry_date", &self.expiry_date);
        let issued_date = date("issued_date", &self.issued_date);
        let contract_end_date = date("contract_end_date", &self.contract_end_date);
        if let Some(t) = doc_type {
            if t.requires_expiry() && expiry_date.is_none() && present(&self.expiry_date).is_none()
            {
                problems.push(FieldProblem::new(
                    "expiry_date",
                    "required",
                    "this document type has an expiry date: enter it as printed (YYYY-MM-DD)",
                ));
            }
        }
        if issued_date.is_some_and(|d| d > today) {
            problems.push(FieldProblem::new(
                "issued_date",
                "in_future",
                "the issue date cannot be in the future",
            ));
        }
        if let (Some(i), Some(e)) = (issued_date, expiry_date) {
            if e < i {
                problems.push(FieldProblem::new(
                    "expiry_date",
                    "before_issue",
                    "the expiry date is before the issue date",
                ));
            }
        }
        let declared_name = present(&self.declared_name).and_then(|n| {
            check_name(n)
                .map_err(|mut p| {
                    p.field = "declared_name";
                    problems.push(p);
                })
                .ok()
        });
        let declared_id_number = present(&self.declared_id_number).and_then(|raw| {
            let parsed = if doc_type == Some(DocumentType::BusinessLicence) {
                Uscc::parse(raw).map(|u| u.as_str().to_owned())
            } else {
                ResidentId::parse_as_of(raw, today).map(|r| r.as_str().to_owned())
            };
            parsed
                .map_err(|e| {
                    problems.push(FieldProblem::new(
                        "declared_id_number",
                        e.code(),
                        e.to_string(),
                    ))
                })
                .ok()
        });
        if (declared_name.is_some() || declared_id_number.is_some())
            && doc_type.is_some_and(|t| !t.is_identity())
        {
            problems.push(FieldProblem::new(
                "declared_id_number",
                "not_applicable",
                "a declared name and ID number are recorded for identity documents and business licences only",
            ));
        }
        match (doc_type, retention_class) {
            (Some(doc_type), Some(retention_class)) if problems.is_empty() => {
                Ok(ValidDocumentMeta {
                    doc_type,
                    retention_class,
                    expiry_date,
                    issued_date,
                    contract_end_date,
                    declared_name,
                    declared_id_number,
                })
            }
            _ => Err(problems),
        }
    }
}

/// Where a document version is in verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VerificationStatus {
    Pending,
    Verified,
    Rejected,
    NeedsMore,
}

impl VerificationStatus {
    pub const ALL: [VerificationStatus; 4] = [
        VerificationStatus::Pending,
        VerificationStatus::Verified,
        VerificationStatus::Rejected,
        VerificationStatus::NeedsMore,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            VerificationStatus::Pending => "pending",
            VerificationStatus::Verified => "verified",
            VerificationStatus::Rejected => "rejected",
            VerificationStatus::NeedsMore => "needs_more",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s.trim())
    }
}

/// A verifier's decision on one document version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Verified,
    Rejected { reason: String },
    NeedsMore { note: String },
}

impl Decision {
    /// Reads `decision` (`verified` / `rejected` / `needs_more`) with its note: a reason
    /// is required to reject, a note to ask for more.
    pub fn parse(decision: &str, note: Option<&str>) -> Result<Decision, FieldProblem> {
        let note = note.map(str::trim).filter(|n| !n.is_empty());
        if let Some(n) = note {
            if n.chars().count() > 1000 {
                return Err(FieldProblem::new(
                    "note",
                    "too_long",
                    "a note is at most 1000 characters",
                ));
            }
        }
        match (decision.trim(), note) {
            ("verified", _) => Ok(Decision::Verified),
            ("rejected", Some(n)) => Ok(Decision::Rejected {
                reason: n.to_owned(),
            }),
            ("rejected", None) => Err(FieldProblem::new(
                "note",
                "required",
                "give the reason for rejecting the document",
            )),
            ("needs_more", Some(n)) => Ok(Decision::NeedsMore { note: n.to_owned() }),
            ("needs_more", None) => Err(FieldProblem::new(
                "note",
                "required",
                "say what more is needed",
            )),
            _ => Err(FieldProblem::new(
                "decision",
                "invalid",
                "the decision is verified, rejected or needs_more",
            )),
        }
    }

    pub fn status(&self) -> VerificationStatus {
        match self {
            Decision::Verified => VerificationStatus::Verified,
            Decision::Rejected { .. } => VerificationStatus::Rejected,
            Decision::NeedsMore { .. } => VerificationStatus::NeedsMore,
        }
    }

    pub fn note(&self) -> Option<&str> {
        match self {
            Decision::Verified => None,
            Decision::Rejected { reason } => Some(reason),
            Decision::NeedsMore { note } => Some(note),
        }
    }
}

/// Why a verification is refused before it is recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifyRefusal {
    /// The verifier uploaded this version themselves (four eyes).
    OwnUpload,
    /// The version was already decided.
    AlreadyDecided(VerificationStatus),
    /// A newer version of the same type exists; decide that one.
    Superseded,
}

/// Four eyes and state: may `verifier` decide a version uploaded by `uploader` that is
/// in `status`?
pub fn may_verify(
    uploader: Option<i64>,
    verifier: i64,
    status: VerificationStatus,
    is_current: bool,
) -> Result<(), VerifyRefusal> {
    if uploader == Some(verifier) {
        return Err(VerifyRefusal::OwnUpload);
    }
    if status != VerificationStatus::Pending {
        return Err(VerifyRefusal::AlreadyDecided(status));
    }
    if !is_current {
        return Err(VerifyRefusal::Superseded);
    }
    Ok(())
}

/// What the cross-checks and the completeness rule need to know about one document
/// version (decrypted declared values).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DocFacts {
    pub id: i64,
    pub doc_type: DocumentType,
    pub version: i64,
    pub status: VerificationStatus,
    pub expiry_date: Option<NaiveDate>,
    pub declared_name: Option<String>,
    pub declared_id_number: Option<String>,
}

/// What the cross-checks need to know about the customer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomerFacts {
    pub name: String,
    pub id_number: Option<String>,
    pub birth_date: Option<NaiveDate>,
}

/// The age range a product accepts (inclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgeLimits {
    pub min: u32,
    pub max: u32,
}

impl Default for AgeLimits {
    /// 18–65 until products define their own.
    fn default() -> Self {
        AgeLimits { min: 18, max: 65 }
    }
}

/// One automatic cross-check result shown to the verifier.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CrossCheck {
    /// `name_mismatch`, `id_mismatch`, `expired`, `age_out_of_range`, `age_unknown`,
    /// `name_consistent`, `id_consistent`, `age_ok`.
    pub code: &'static str,
    pub ok: bool,
    /// The document concerned, when one is.
    pub document_id: Option<i64>,
    /// Plain-English detail (the UI shows a translated title by `code`).
    pub detail: String,
}

fn norm_name(s: &str) -> String {
    s.split_whitespace().collect::<String>().to_lowercase()
}

/// The current (highest) version of each type among `docs`.
pub fn current_versions(docs: &[DocFacts]) -> Vec<&DocFacts> {
    let mut out: Vec<&DocFacts> = Vec::new();
    for d in docs {
        match out.iter_mut().find(|o| o.doc_type == d.doc_type) {
            Some(o) if o.version < d.version => *o = d,
            Some(_) => {}
            None => out.push(d),
        }
    }
    out.sort_by_key(|d| (d.doc_type, d.version));
    out
}

/// The automatic cross-checks over the current version of each document: the names and
/// ID numbers declared on identity documents agree with each other and with the
/// customer; no document is expired on `today`; the customer's age (from the customer
/// record, else from a declared ID number) is within `limits`.
pub fn cross_checks(
    customer: &CustomerFacts,
    docs: &[DocFacts],
    today: NaiveDate,
    limits: AgeLimits,
) -> Vec<CrossCheck> {
    let current = current_versions(docs);
    let mut out = Vec::new();
    let mut name_ok = true;
    let mut names_seen = 0;
    let mut id_ok = true;
    let mut ids_seen = 0;
    for d in &current {
        if let Some(n) = &d.declared_name {
            names_seen += 1;
            if norm_name(n) != norm_name(&customer.name) {
                name_ok = false;
                out.push(CrossCheck {
                    code: "name_mismatch",
                    ok: false,
                    document_id: Some(d.id),
                    detail: format!(
                        "{} v{} declares the name {n}, the customer is {}",
                        d.doc_type.as_str(),
                        d.version,
                        customer.name
                    ),
                });
            }
        }
        if let Some(id) = &d.declared_id_number {
            ids_seen += 1;
            // Compared with the customer record, and with every other declared number.
            let differs_from_customer = customer
                .id_number
                .as_deref()
                .is_some_and(|c| !c.eq_ignore_ascii_case(id));
            let differs_from_other = current.iter().any(|o| {
                o.id != d.id
                    && o.declared_id_number
                        .as_deref()
                        .is_some_and(|x| !x.eq_ignore_ascii_case(id))
            });
            if differs_from_customer || differs_from_other {
                id_ok = false;
                out.push(CrossCheck {
                    code: "id_mismatch",
                    ok: false,
                    document_id: Some(d.id),
                    detail: format!(
                        "{} v{} declares an ID number that differs from {}",
                        d.doc_type.as_str(),
                        d.version,
                        if differs_from_customer {
                            "the customer record"
                        } else {
                            "another document"
                        }
                    ),
                });
            }
        }
        if let Some(exp) = d.expiry_date {
            if exp < today {
                out.push(CrossCheck {
                    code: "expired",
                    ok: false,
                    document_id: Some(d.id),
                    detail: format!("{} v{} expired on {exp}", d.doc_type.as_str(), d.version),
                });
            }
        }
    }
    if names_seen > 0 && name_ok {
        out.push(CrossCheck {
            code: "name_consistent",
            ok: true,
            document_id: None,
            detail: format!("{names_seen} document(s) declare the customer's name"),
        });
    }
    if ids_seen > 0 && id_ok {
        out.push(CrossCheck {
            code: "id_consistent",
            ok: true,
            document_id: None,
            detail: format!("{ids_seen} document(s) declare the customer's ID number"),
        });
    }
    let birth = customer.birth_date.or_else(|| {
        current
            .iter()
            .filter_map(|d| d.declared_id_number.as_deref())
            .find_map(|id| ResidentId::parse_as_of(id, today).ok())
            .map(|r| r.birth_date())
    });
    match birth.and_then(|b| today.years_since(b)) {
        Some(age) if age < limits.min || age > limits.max => out.push(CrossCheck {
            code: "age_out_of_range",
            ok: false,
            document_id: None,
            detail: format!(
                "the customer is {age}; the product accepts {}–{}",
                limits.min, limits.max
            ),
        }),
        Some(age) => out.push(CrossCheck {
            code: "age_ok",
            ok: true,
            document_id: None,
            detail: format!("the customer is {age} ({}–{})", limits.min, limits.max),
        }),
        None => out.push(CrossCheck {
            code: "age_unknown",
            ok: false,
            document_id: None,
            detail: "no date of birth is known (enterprise, or no ID number)".into(),
        }),
    }
    out
}

/// Why a required material does not count yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MissingMaterial {
    pub doc_type: DocumentType,
    /// `missing`, `pending`, `rejected`, `needs_more` or `expired`.
    pub reason: &'static str,
    /// The current version concerned, when there is one.
    pub document_id: Option<i64>,
}

/// Whether every `required` type has a current version that is verified and not
/// expired on `today`; otherwise every type that falls short, with why. The application
/// workflow refuses to move past document review until this is `Ok`.
pub fn materials_complete(
    required: &[DocumentType],
    documents: &[DocFacts],
    today: NaiveDate,
) -> Result<(), Vec<MissingMaterial>> {
    let current = current_versions(documents);
    let mut missing = Vec::new();
    let mut seen = Vec::new();
    for t in required {
        if seen.contains(t) {
            continue;
        }
        seen.push(*t);
        let reason = match current.iter().find(|d| d.doc_type == *t) {
            None => Some(("missing", None)),
            Some(d) => match d.status {
                VerificationStatus::Verified if d.expiry_date.is_some_and(|e| e < today) => {
                    Some(("expired", Some(d.id)))
                }
                VerificationStatus::Verified => None,
                other => Some((other.as_str(), Some(d.id))),
            },
        };
        if let Some((reason, document_id)) = reason {
            missing.push(MissingMaterial {
                doc_type: *t,
                reason,
                document_id,
            });
        }
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(missing)
    }
}

/// Parses a comma-separated list of document types (`id_front,id_back`).
pub fn parse_type_list(raw: &str) -> Result<Vec<DocumentType>, FieldProblem> {
    let mut out = Vec::new();
    for part in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match DocumentType::parse(part) {
            Some(t) => out.push(t),
            None => {
                return Err(FieldProblem::new(
                    "required",
                    "invalid",
                    format!("`{part}` is not a document type"),
                ))
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0";
    const PDF: &[u8] = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n";
    const JPEG: &[u8] = b"\xff\xd8\xff\xe0\0\x10JFIF\0\x01\x01\0\0\x01\0\x01\0\0";
    const WEBP: &[u8] = b"RIFF\x24\0\0\0WEBPVP8 \x18\0\0\0";
    const TIFF_LE: &[u8] = b"II*\0\x08\0\0\0\0\0\0\0\0\0\0\0";
    const HEIC: &[u8] = b"\0\0\0\x18ftypheic\0\0\0\0mif1heic\0\0\0\0";
    const EXE: &[u8] = b"MZ\x90\0\x03\0\0\0\x04\0\0\0\xff\xff\0\0\xb8\0\0\0";

    #[test]
    fn content_is_detected_from_magic_bytes() {
        assert_eq!(ContentType::sniff(PNG), Some(ContentType::Png));
        assert_eq!(ContentType::sniff(PDF), Some(ContentType::Pdf));
        assert_eq!(ContentType::sniff(JPEG), Some(ContentType::Jpeg));
        assert_eq!(ContentType::sniff(WEBP), Some(ContentType::Webp));
        assert_eq!(ContentType::sniff(TIFF_LE), Some(ContentType::Tiff));
        assert_eq!(ContentType::sniff(HEIC), Some(ContentType::Heic));
        assert_eq!(ContentType::sniff(EXE), None);
        assert_eq!(ContentType::sniff(b"hello, I am text"), None);
        assert_eq!(ContentType::sniff(b"PK\x03\x04\x14\0\0\0"), None);
    }

    #[test]
    fn names_must_match_content() {
        assert_eq!(check_content("scan.PNG", PNG), Ok(ContentType::Png));
        assert_eq!(check_content("noext", PNG), Ok(ContentType::Png));
        assert_eq!(check_content("a.jpeg", JPEG), Ok(ContentType::Jpeg));
        assert_eq!(
            check_content("x.pdf", PNG).unwrap_err().code,
            "type_mismatch"
        );
        assert_eq!(
            check_content("virus.pdf", EXE).unwrap_err().code,
            "unsupported_type"
        );
        assert_eq!(
            check_content("notes.txt", b"plain words").unwrap_err().code,
            "unsupported_type"
        );
        assert_eq!(check_content("a.png", b"").unwrap_err().code, "empty");
        assert_eq!(extension_of("dir.v1/file"), None);
        assert_eq!(extension_of(".hidden"), None);
    }

    #[test]
    fn retention_dates() {
        let up = d(2026, 11, 29);
        assert_eq!(
            RetentionClass::Aml10y.retain_until(up, None),
            Some(d(2036, 11, 29))
        );
        assert_eq!(
            RetentionClass::Standard3y.retain_until(up, None),
            Some(d(2029, 11, 29))
        );
        assert_eq!(
            RetentionClass::Contract5yAfterEnd.retain_until(up, None),
            None
        );
        assert_eq!(
            RetentionClass::Contract5yAfterEnd.retain_until(up, Some(d(2028, 2, 29))),
            Some(d(2033, 2, 28))
        );
        assert!(RetentionClass::Aml10y.is_legal_hold());
        assert!(!RetentionClass::Standard3y.is_legal_hold());
    }

    #[test]
    fn upload_metadata_is_validated() {
        let today = d(2026, 11, 29);
        let ok = DocumentInput {
            doc_type: Some("id_back".into()),
            expiry_date: Some("2036-01-01".into()),
            declared_id_number: Some("11010519491231002x".into()),
            declared_name: Some("张三".into()),
            ..Default::default()
        }
        .validate(today)
        .unwrap();
        assert_eq!(ok.retention_class, RetentionClass::Aml10y);
        assert_eq!(ok.declared_id_number.as_deref(), Some("11010519491231002X"));
        let bad = DocumentInput {
            doc_type: Some("id_back".into()),
            declared_id_number: Some("110105194912310021".into()),
            retention_class: Some("forever".into()),
            issued_date: Some("2027-01-01".into()),
            ..Default::default()
        }
        .validate(today)
        .unwrap_err();
        let fields: Vec<_> = bad.iter().map(|p| p.field).collect();
        for f in [
            "expiry_date",
            "declared_id_number",
            "retention_class",
            "issued_date",
        ] {
            assert!(fields.contains(&f), "{f} in {fields:?}");
        }
        let none = DocumentInput::default().validate(today).unwrap_err();
        assert_eq!(none[0].field, "doc_type");
        let not_identity = DocumentInput {
            doc_type: Some("income_proof".into()),
            declared_name: Some("张三".into()),
            ..Default::default()
        }
        .validate(today)
        .unwrap_err();
        assert_eq!(not_identity[0].code, "not_applicable");
    }

    #[test]
    fn four_eyes_and_decisions() {
        use VerificationStatus::*;
        assert_eq!(
            may_verify(Some(1), 1, Pending, true),
            Err(VerifyRefusal::OwnUpload)
        );
        assert_eq!(may_verify(Some(1), 2, Pending, true), Ok(()));
        assert_eq!(may_verify(None, 2, Pending, true), Ok(()));
        assert_eq!(
            may_verify(Some(1), 2, Verified, true),
            Err(VerifyRefusal::AlreadyDecided(Verified))
        );
        assert_eq!(
            may_verify(Some(1), 2, Pending, false),
            Err(VerifyRefusal::Superseded)
        );
        assert_eq!(Decision::parse("verified", None), Ok(Decision::Verified));
        assert_eq!(
            Decision::parse("rejected", Some(" ")).unwrap_err().field,
            "note"
        );
        assert_eq!(
            Decision::parse("needs_more", Some("clearer photo"))
                .unwrap()
                .status(),
            NeedsMore
        );
        assert_eq!(
            Decision::parse("maybe", None).unwrap_err().field,
            "decision"
        );
    }

    fn fact(id: i64, t: DocumentType, v: i64, s: VerificationStatus) -> DocFacts {
        DocFacts {
            id,
            doc_type: t,
            version: v,
            status: s,
            expiry_date: None,
            declared_name: None,
            declared_id_number: None,
        }
    }

    #[test]
    fn cross_checks_flag_mismatches_expiry_and_age() {
        let today = d(2026, 11, 29);
        let customer = CustomerFacts {
            name: "张三".into(),
            id_number: Some("11010519491231002X".into()),
            birth_date: Some(d(1949, 12, 31)),
        };
        let mut front = fact(1, DocumentType::IdFront, 1, VerificationStatus::Pending);
        front.declared_name = Some("张 三".into());
        front.declared_id_number = Some("11010519491231002x".into());
        let mut back = fact(2, DocumentType::IdBack, 1, VerificationStatus::Pending);
        back.expiry_date = Some(d(2026, 11, 28));
        back.declared_name = Some("李四".into());
        let checks = cross_checks(
            &customer,
            &[front.clone(), back],
            today,
            AgeLimits::default(),
        );
        let codes: Vec<_> = checks.iter().map(|c| c.code).collect();
        assert!(codes.contains(&"name_mismatch"), "{codes:?}");
        assert!(codes.contains(&"expired"));
        assert!(codes.contains(&"id_consistent"));
        assert!(codes.contains(&"age_out_of_range"), "76 is over 65");
        let young = CustomerFacts {
            birth_date: Some(d(1990, 1, 1)),
            ..customer.clone()
        };
        let checks = cross_checks(&young, &[front], today, AgeLimits::default());
        assert!(checks.iter().all(|c| c.ok), "{checks:?}");
    }

    #[test]
    fn completeness_uses_the_current_version() {
        use DocumentType::*;
        use VerificationStatus::*;
        let today = d(2026, 11, 29);
        let mut docs = vec![
            fact(1, IdFront, 1, Verified),
            fact(2, IdBack, 1, Verified),
            fact(3, IdBack, 2, Pending),
        ];
        let err = materials_complete(&[IdFront, IdBack, IncomeProof], &docs, today).unwrap_err();
        assert_eq!(
            err,
            vec![
                MissingMaterial {
                    doc_type: IdBack,
                    reason: "pending",
                    document_id: Some(3)
                },
                MissingMaterial {
                    doc_type: IncomeProof,
                    reason: "missing",
                    document_id: None
                },
            ]
        );
        docs[2].status = Verified;
        assert_eq!(materials_complete(&[IdFront, IdBack], &docs, today), Ok(()));
        docs[2].expiry_date = Some(d(2026, 1, 1));
        assert_eq!(
            materials_complete(&[IdBack], &docs, today).unwrap_err()[0].reason,
            "expired"
        );
        assert_eq!(
            parse_type_list("id_front, id_back").unwrap(),
            vec![IdFront, IdBack]
        );
        assert!(parse_type_list("id_front,passport").is_err());
    }
}
