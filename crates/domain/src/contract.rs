//! Contract templates (issue #6): a small, line-based template language, checked when a
//! template is saved and filled when a contract is generated; and the amount in Chinese
//! capital numerals (大写金额) that contracts print next to the figures.
//!
//! # The template language
//!
//! One block per line:
//!
//! | Line | Block |
//! |---|---|
//! | `# 借款合同` | the title (centred) |
//! | `## 第一条 借款金额` | a section heading |
//! | `{{table:disclosure}}` alone on a line | the frozen 综合融资成本明示表 |
//! | `{{table:schedule}}` alone on a line | the repayment schedule |
//! | `{{signatures}}` alone on a line | the parties' signature blocks |
//! | an empty line | nothing (blocks are separated anyway) |
//! | any other line | a paragraph, with `{{placeholder}}`s filled in |
//!
//! Placeholders are the names in [`PLACEHOLDERS`]. A template with an unknown placeholder,
//! an unclosed `{{`, or without the disclosure table and the signatures is refused, each
//! problem naming its line.

use crate::money::Fen;
use std::collections::BTreeMap;

/// Every placeholder a template may use, with what it stands for (zh, en).
pub const PLACEHOLDERS: &[(&str, &str, &str)] = &[
    ("contract.no", "合同编号", "Contract number"),
    (
        "contract.date",
        "合同生成日期",
        "Date the contract was generated",
    ),
    ("application.ref", "申请编号", "Application reference"),
    (
        "company.name",
        "贷款服务机构（我司）名称",
        "Our company (the facilitator)",
    ),
    ("funder.name", "贷款人（资金方）名称", "The lender (funder)"),
    ("funder.code", "资金方代码", "Funder code"),
    ("borrower.name", "借款人姓名", "Borrower's full name"),
    (
        "borrower.id_number",
        "借款人身份证号（全文）",
        "Borrower's ID number (in full)",
    ),
    (
        "borrower.phone",
        "借款人手机号（脱敏）",
        "Borrower's mobile (masked)",
    ),
    ("product.name", "产品名称", "Product name"),
    ("product.code", "产品代码", "Product code"),
    ("product.version", "产品版本", "Product version"),
    ("loan.amount", "借款金额（元）", "Principal (yuan)"),
    (
        "loan.amount_upper",
        "借款金额（大写）",
        "Principal in Chinese capitals",
    ),
    ("loan.months", "借款期限（月）", "Term (months)"),
    ("loan.method", "还款方式", "Repayment method"),
    ("loan.annual_rate", "年利率", "Nominal annual rate"),
    (
        "loan.apr",
        "综合年化成本（IRR）",
        "All-in annual cost (IRR)",
    ),
    ("loan.total_interest", "利息总额", "Total interest"),
    ("loan.total_fees", "费用总额", "Total fees"),
    ("loan.total_repayment", "应还总额", "Total to repay"),
    ("loan.first_due_date", "首期还款日", "First due date"),
    ("loan.last_due_date", "到期日", "Last due date"),
    ("loan.purpose", "借款用途", "Purpose"),
    ("loan.penalty_rule", "逾期罚息规则", "Penalty interest rule"),
];

/// Block placeholders (alone on their line).
pub const TABLE_DISCLOSURE: &str = "{{table:disclosure}}";
pub const TABLE_SCHEDULE: &str = "{{table:schedule}}";
pub const SIGNATURES: &str = "{{signatures}}";

pub fn is_placeholder(name: &str) -> bool {
    PLACEHOLDERS.iter().any(|(n, _, _)| *n == name)
}

/// A problem in a template, for the editor to show next to the line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateProblem {
    /// 1-based line, 0 for the template as a whole.
    pub line: usize,
    pub code: &'static str,
    pub message: String,
}

/// A block of a filled-in contract.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Block {
    Title(String),
    Heading(String),
    Paragraph(String),
    DisclosureTable,
    ScheduleTable,
    Signatures,
}

/// A checked template: its blocks with placeholders still in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    blocks: Vec<Block>,
}

fn closest(name: &str) -> Option<&'static str> {
    // Edit distance over chars: placeholder names are short.
    fn distance(a: &str, b: &str) -> usize {
        let b: Vec<char> = b.chars().collect();
        let mut prev: Vec<usize> = (0..=b.len()).collect();
        for (i, ca) in a.chars().enumerate() {
            let mut cur = vec![i + 1; b.len() + 1];
            for (j, cb) in b.iter().enumerate() {
                let cost = usize::from(ca != *cb);
                cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
            }
            prev = cur;
        }
        prev[b.len()]
    }
    PLACEHOLDERS
        .iter()
        .map(|(n, _, _)| (distance(name, n), *n))
        .filter(|(d, _)| *d <= 3)
        .min()
        .map(|(_, n)| n)
}

/// The placeholder names of one line, or the problems with them.
fn placeholders_of(line: &str, lineno: usize, problems: &mut Vec<TemplateProblem>) {
    let mut rest = line;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            problems.push(TemplateProblem {
                line: lineno,
                code: "unclosed",
                message: "`{{` is not closed by `}}`".into(),
            });
            return;
        };
        let name = after[..end].trim();
        if name.starts_with("table:") || name == "signatures" {
            problems.push(TemplateProblem {
                line: lineno,
                code: "block_inline",
                message: format!("`{{{{{name}}}}}` must stand alone on its line"),
            });
        } else if !is_placeholder(name) {
            let hint = closest(name)
                .map(|c| format!("; did you mean `{{{{{c}}}}}`?"))
                .unwrap_or_default();
            problems.push(TemplateProblem {
                line: lineno,
                code: "unknown_placeholder",
                message: format!("unknown placeholder `{{{{{name}}}}}`{hint}"),
            });
        }
        rest = &after[end + 2..];
    }
}

impl Template {
    /// Checks a template's source.
    pub fn parse(source: &str) -> Result<Template, Vec<TemplateProblem>> {
        let mut problems = Vec::new();
        let mut blocks = Vec::new();
        if source.chars().count() > 100_000 {
            problems.push(TemplateProblem {
                line: 0,
                code: "too_long",
                message: "a template is at most 100,000 characters".into(),
            });
        }
        for (i, raw) in source.lines().enumerate() {
            let lineno = i + 1;
            let line = raw.trim();
            if line.is_empty() {
                continue;
            }
            let block = match line {
                TABLE_DISCLOSURE => Block::DisclosureTable,
                TABLE_SCHEDULE => Block::ScheduleTable,
                SIGNATURES => Block::Signatures,
                _ => {
                    placeholders_of(line, lineno, &mut problems);
                    if let Some(t) = line.strip_prefix("## ") {
                        Block::Heading(t.trim().to_owned())
                    } else if let Some(t) = line.strip_prefix("# ") {
                        Block::Title(t.trim().to_owned())
                    } else {
                        Block::Paragraph(line.to_owned())
                    }
                }
            };
            blocks.push(block);
        }
        for (block, code, what) in [
            (
                Block::DisclosureTable,
                "no_disclosure",
                "the contract must carry the cost disclosure table: add a line `{{table:disclosure}}`",
            ),
            (
                Block::Signatures,
                "no_signatures",
                "the contract must carry the parties' signatures: add a line `{{signatures}}`",
            ),
        ] {
            if !blocks.contains(&block) {
                problems.push(TemplateProblem {
                    line: 0,
                    code,
                    message: what.into(),
                });
            }
        }
        if problems.is_empty() {
            Ok(Template { blocks })
        } else {
            Err(problems)
        }
    }

    /// The blocks with every placeholder replaced by its value (a missing value becomes
    /// an empty string; [`Template::parse`] made sure every name is known).
    pub fn fill(&self, values: &BTreeMap<&str, String>) -> Vec<Block> {
        let sub = |s: &str| fill_line(s, values);
        self.blocks
            .iter()
            .map(|b| match b {
                Block::Title(t) => Block::Title(sub(t)),
                Block::Heading(t) => Block::Heading(sub(t)),
                Block::Paragraph(t) => Block::Paragraph(sub(t)),
                other => other.clone(),
            })
            .collect()
    }
}

fn fill_line(line: &str, values: &BTreeMap<&str, String>) -> String {
    let mut out = String::with_capacity(line.len() + 32);
    let mut rest = line;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find("}}") {
            Some(end) => {
                let name = after[..end].trim();
                if let Some(v) = values.get(name) {
                    out.push_str(v);
                }
                rest = &after[end + 2..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// An amount in Chinese capital numerals as written on contracts and cheques:
/// 30,000.00 → `人民币叁万元整`, 1,234.56 → `人民币壹仟贰佰叁拾肆元伍角陆分`.
pub fn amount_in_words(amount: Fen) -> String {
    const DIGITS: [&str; 10] = ["零", "壹", "贰", "叁", "肆", "伍", "陆", "柒", "捌", "玖"];
    const SMALL: [&str; 4] = ["", "拾", "佰", "仟"];
    const BIG: [&str; 4] = ["", "万", "亿", "万亿"];
    let fen = amount.as_fen();
    let mut out = String::from("人民币");
    if fen < 0 {
        out.push('负');
    }
    let abs = fen.unsigned_abs();
    let yuan = abs / 100;
    let jiao = (abs / 10) % 10;
    let cents = abs % 10;
    if yuan == 0 && jiao == 0 && cents == 0 {
        out.push_str("零元整");
        return out;
    }
    if yuan > 0 {
        let digits: Vec<usize> = yuan
            .to_string()
            .bytes()
            .map(|b| usize::from(b - b'0'))
            .collect();
        let n = digits.len();
        let group_has_digits = |group: usize| {
            (group * 4..group * 4 + 4)
                .filter(|&pos| pos < n)
                .any(|pos| digits[n - 1 - pos] != 0)
        };
        let mut zero_pending = false;
        for (i, &d) in digits.iter().enumerate() {
            let pos = n - 1 - i;
            let (small, group) = (pos % 4, pos / 4);
            if d == 0 {
                zero_pending = true;
            } else {
                if zero_pending {
                    out.push_str(DIGITS[0]);
                    zero_pending = false;
                }
                out.push_str(DIGITS[d]);
                out.push_str(SMALL[small]);
            }
            // The end of a group of four: its unit, and trailing zeros need no 零.
            if small == 0 && group > 0 && group_has_digits(group) {
                out.push_str(BIG[group.min(3)]);
                zero_pending = false;
            }
        }
        out.push('元');
    }
    if jiao == 0 && cents == 0 {
        out.push('整');
        return out;
    }
    if jiao > 0 {
        out.push_str(DIGITS[jiao as usize]);
        out.push('角');
    } else if yuan > 0 {
        out.push_str(DIGITS[0]);
    }
    if cents > 0 {
        out.push_str(DIGITS[cents as usize]);
        out.push('分');
    }
    out
}

/// The default personal loan contract (借款合同), seeded on start-up.
pub const DEFAULT_TEMPLATE_CODE: &str = "personal_loan";
pub const DEFAULT_TEMPLATE_NAME: &str = "个人借款合同";
pub const DEFAULT_TEMPLATE: &str = include_str!("contract_personal_loan.txt");

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn capitals() {
        let w = |y: &str| amount_in_words(Fen::parse(y).unwrap());
        assert_eq!(w("30000"), "人民币叁万元整");
        assert_eq!(w("1234.56"), "人民币壹仟贰佰叁拾肆元伍角陆分");
        assert_eq!(w("1005"), "人民币壹仟零伍元整");
        assert_eq!(w("100000"), "人民币壹拾万元整");
        assert_eq!(w("10050"), "人民币壹万零伍拾元整");
        assert_eq!(w("200000.5"), "人民币贰拾万元伍角");
        assert_eq!(w("0.05"), "人民币伍分");
        assert_eq!(w("12.05"), "人民币壹拾贰元零伍分");
        assert_eq!(w("100001"), "人民币壹拾万零壹元整");
        assert_eq!(w("1000000"), "人民币壹佰万元整");
        assert_eq!(w("105000"), "人民币壹拾万伍仟元整");
        assert_eq!(w("0"), "人民币零元整");
        assert_eq!(w("1000500"), "人民币壹佰万零伍佰元整");
        assert_eq!(w("100000001"), "人民币壹亿零壹元整");
    }

    #[test]
    fn the_default_template_is_valid_and_fills() {
        let t = Template::parse(DEFAULT_TEMPLATE).unwrap();
        let mut v = BTreeMap::new();
        v.insert("borrower.name", "张三".to_owned());
        let blocks = t.fill(&v);
        assert!(matches!(&blocks[0], Block::Title(s) if s.contains("借款合同")));
        assert!(blocks.contains(&Block::DisclosureTable));
        assert!(blocks
            .iter()
            .any(|b| matches!(b, Block::Paragraph(p) if p.contains("张三"))));
    }

    #[test]
    fn problems_name_their_line() {
        let e =
            Template::parse("# 合同\n甲方：{{borrower.nam}}\n乙方 {{funder.name\n").unwrap_err();
        assert_eq!(e[0].line, 2);
        assert!(
            e[0].message.contains("did you mean `{{borrower.name}}`"),
            "{e:?}"
        );
        assert_eq!((e[1].line, e[1].code), (3, "unclosed"));
        let codes: Vec<_> = e.iter().map(|p| p.code).collect();
        assert!(codes.contains(&"no_disclosure") && codes.contains(&"no_signatures"));
        let e = Template::parse("见 {{table:disclosure}}\n{{signatures}}").unwrap_err();
        assert_eq!(e[0].code, "block_inline");
    }
}
