//! The row-level error report of an import: for every problem of every rejected row,
//! the row number, the column, the value (masked), what is wrong and how to fix it, in
//! Chinese and English; as an XLSX workbook to download and fix the file in Excel.

use rust_xlsxwriter::{Format, Workbook, XlsxError};
use zhudai_domain::customer::field_class;
use zhudai_store::imports::ImportError;

/// The value of a field as the report shows it: masked like the field is masked on screen
/// (never the clear value of a sensitive field), cut to 60 characters.
pub fn masked_value(field: &str, value: Option<&str>) -> Option<String> {
    let v = value?.trim();
    if v.is_empty() {
        return None;
    }
    let shown = match field_class(field) {
        Some(c) if c.encrypted || c.clear_field.is_some() => c.masking.apply(v),
        Some(c) => c.masking.apply(v),
        None => v.to_owned(),
    };
    Some(shown.chars().take(60).collect())
}

/// What is wrong, in Chinese, for a problem code (the English message comes with the
/// problem itself).
pub fn problem_zh(code: &str) -> &'static str {
    match code {
        "required" => "必填项为空",
        "invalid" => "内容无效",
        "too_long" => "内容过长",
        "length" => "长度不符合要求",
        "not_applicable" => "企业客户不登记月收入",
        "resident_id.length" => "证件号码位数不对（应为18位，或15位旧号）",
        "resident_id.format" => "证件号码含有不允许的字符",
        "resident_id.checksum" => "证件号码校验位（最后一位）不正确",
        "resident_id.birth_date" => "证件号码中的出生日期不存在",
        "resident_id.birth_in_future" => "证件号码中的出生日期晚于今天",
        "resident_id.region" => "证件号码的地区代码不存在",
        "uscc.length" => "统一社会信用代码应为18位",
        "uscc.charset" => "统一社会信用代码含有不允许的字符",
        "uscc.checksum" => "统一社会信用代码校验位不正确",
        "bank_card.length" => "银行卡号位数不对（应为16–19位）",
        "bank_card.format" => "银行卡号只能包含数字",
        "bank_card.checksum" => "银行卡号校验位（Luhn）不正确",
        "mobile.format" => "不是有效的中国大陆手机号",
        "email.format" => "不是有效的电子邮箱地址",
        "money.empty" | "money.invalid" => "金额格式不正确",
        "money.too_many_decimals" => "金额最多两位小数",
        "money.negative" => "金额不能为负数",
        "money.overflow" => "金额过大",
        "duplicate_in_file" => "与文件中前面某行的证件号码重复",
        "outside_scope" => "该证件号码的客户已存在，但不在您的数据范围内",
        "ambiguous" => "系统中有多个客户使用该证件号码",
        "changed_during_import" => "导入期间该客户被他人修改或创建",
        "erased" => "该客户的数据已被删除（不可恢复）",
        "unreadable_row" => "该行无法读取（引号或列数有误）",
        _ => "内容不符合要求",
    }
}

/// How to fix a problem, in Chinese and English.
pub fn fix(field: &str, code: &str) -> (&'static str, &'static str) {
    match code {
        "duplicate_in_file" => (
            "删除重复的行，或把两行合并为一行",
            "delete the repeated row or merge the two rows into one",
        ),
        "outside_scope" => (
            "请有该客户数据权限的同事导入此行，或联系管理员",
            "have a colleague whose data scope includes that customer import this row, or ask an administrator",
        ),
        "ambiguous" => (
            "请先在客户页面合并重复的客户，再导入此行",
            "merge the duplicate customers on the customer page first, then import this row again",
        ),
        "changed_during_import" => (
            "重新导入该文件（已导入的行不会重复）",
            "import the file again (rows already imported are not duplicated)",
        ),
        "erased" => (
            "已删除的客户不能通过导入恢复；如需重新建档请联系合规",
            "an erased customer cannot be restored by import; ask compliance if a new record is needed",
        ),
        "unreadable_row" => (
            "检查该行的引号是否成对、列数是否与表头一致",
            "check that the row's quotes are paired and it has as many columns as the header",
        ),
        _ => match field {
            "kind" => (
                "填写“个人/individual”或“企业/enterprise”；留空视为个人",
                "enter individual (个人) or enterprise (企业); empty means individual",
            ),
            "name" => (
                "填写1–100个字符的姓名或企业名称，不含 < > 等符号",
                "enter the person's or company's name, 1–100 characters, without < or >",
            ),
            "id_number" => (
                "个人填写18位居民身份证号（或15位旧号、港澳台居民居住证号），企业填写18位统一社会信用代码；Excel中请把该列设为“文本”，以免长数字被改写",
                "enter the 18-digit resident ID (or 15-digit legacy number, or residence permit) for a person, the 18-character USCC for a company; format the column as Text in Excel so long numbers are not rounded",
            ),
            "phone" => (
                "填写11位中国大陆手机号，如 13800138000",
                "enter an 11-digit mainland mobile number such as 13800138000",
            ),
            "bank_card" => (
                "填写16–19位银行卡号，核对是否有输错的数字",
                "enter the 16–19 digit card number and check for mistyped digits",
            ),
            "email" => (
                "填写有效的邮箱地址，如 name@example.com，或留空",
                "enter a valid address such as name@example.com, or leave it empty",
            ),
            "address" => (
                "填写4–200个字符的地址，或留空",
                "enter an address of 4–200 characters, or leave it empty",
            ),
            "monthly_income" => (
                "填写以元为单位的金额，最多两位小数，如 12000.00；企业客户留空",
                "enter an amount in yuan with at most two decimals, such as 12000.00; leave it empty for a company",
            ),
            _ => ("修改该单元格后重新导入", "correct the cell and import again"),
        },
    }
}

/// The Chinese and English title of a column.
pub fn column_title(field: &str) -> String {
    match field_class(field) {
        Some(c) => format!("{} {}", c.zh, c.field),
        None if field == "row" => "整行 row".to_owned(),
        None => field.to_owned(),
    }
}

/// The column titles of the report, in order.
pub const HEADERS: [&str; 7] = [
    "行号 Row",
    "列 Column",
    "值（已脱敏） Value (masked)",
    "问题",
    "修改建议",
    "Problem",
    "How to fix",
];

/// The report as an XLSX workbook (one worksheet, one line per problem).
pub fn errors_xlsx(errors: &[ImportError]) -> Result<Vec<u8>, XlsxError> {
    let mut book = Workbook::new();
    let sheet = book.add_worksheet();
    sheet.set_name("错误 Errors")?;
    let bold = Format::new().set_bold();
    for (c, h) in HEADERS.iter().enumerate() {
        sheet.write_string_with_format(0, c as u16, *h, &bold)?;
    }
    for (i, e) in errors.iter().enumerate() {
        let r = i as u32 + 1;
        let (fix_zh, fix_en) = fix(&e.field, &e.code);
        sheet.write_number(r, 0, e.row_no as f64)?;
        sheet.write_string(r, 1, column_title(&e.field))?;
        sheet.write_string(r, 2, e.value_masked.as_deref().unwrap_or(""))?;
        sheet.write_string(r, 3, problem_zh(&e.code))?;
        sheet.write_string(r, 4, fix_zh)?;
        sheet.write_string(r, 5, &e.message)?;
        sheet.write_string(r, 6, fix_en)?;
    }
    for (c, w) in [8.0, 18.0, 24.0, 36.0, 50.0, 50.0, 60.0].iter().enumerate() {
        sheet.set_column_width(c as u16, *w)?;
    }
    sheet.set_freeze_panes(1, 0)?;
    book.save_to_buffer()
}

#[cfg(test)]
mod tests {
    use super::*;
    use calamine::{Data, Reader};

    #[test]
    fn the_report_reads_back_with_masked_values_and_both_languages() {
        let errors = vec![
            ImportError {
                row_no: 7,
                field: "id_number".into(),
                code: "resident_id.checksum".into(),
                message: "the check digit is wrong".into(),
                value_masked: masked_value("id_number", Some("110105194912310021")),
            },
            ImportError {
                row_no: 9,
                field: "phone".into(),
                code: "mobile.format".into(),
                message: "not a mobile number".into(),
                value_masked: masked_value("phone", Some("12345678901")),
            },
        ];
        let bytes = errors_xlsx(&errors).unwrap();
        let mut book = calamine::open_workbook_auto_from_rs(std::io::Cursor::new(bytes)).unwrap();
        assert_eq!(book.sheet_names(), vec!["错误 Errors".to_owned()]);
        let range = book.worksheet_range_at(0).unwrap().unwrap();
        let rows: Vec<Vec<String>> = range
            .rows()
            .map(|r| r.iter().map(|c: &Data| c.to_string()).collect())
            .collect();
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0], HEADERS.map(str::to_owned).to_vec());
        assert_eq!(rows[1][0], "7");
        assert_eq!(rows[1][1], "证件号码 id_number");
        // Masked: the clear number never reaches the report.
        assert_ne!(rows[1][2], "110105194912310021");
        assert!(rows[1][2].contains('*'), "{}", rows[1][2]);
        assert_eq!(rows[1][3], "证件号码校验位（最后一位）不正确");
        assert!(rows[1][4].contains("18位"));
        assert_eq!(rows[1][5], "the check digit is wrong");
        assert!(rows[1][6].contains("resident ID"));
        assert_eq!(rows[2][0], "9");
        assert!(rows[2][2].contains('*'));
        assert_eq!(rows[2][3], "不是有效的中国大陆手机号");
    }

    #[test]
    fn every_field_has_a_fix() {
        for f in super::super::read::FIELDS {
            let (zh, en) = fix(f, "invalid");
            assert_ne!(zh, "修改该单元格后重新导入", "{f}");
            assert!(!en.is_empty());
        }
    }
}
