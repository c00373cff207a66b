//! Reading a customer file: CSV (UTF-8 with or without BOM, UTF-16 with BOM, or
//! GBK/GB18030 as Chinese Excel saves it; comma, tab or semicolon separated) or XLSX
//! (first worksheet), with a header row in English field names or Chinese column titles.
//! The only place that parses import files: the CLI and the HTTP import both come here.

use calamine::{Data, Reader};
use std::collections::BTreeMap;
use std::io::Cursor;
use zhudai_domain::customer::CustomerInput;

/// The columns an import understands, as API field names.
pub const FIELDS: [&str; 8] = [
    "kind",
    "name",
    "id_number",
    "phone",
    "bank_card",
    "email",
    "address",
    "monthly_income",
];

/// The field a header names: English field names, the Chinese titles of the import
/// template and common variants (case, spaces, `（元）` suffixes ignored).
pub fn field_of_header(header: &str) -> Option<&'static str> {
    let h: String = header
        .trim()
        .trim_start_matches('\u{feff}')
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '*')
        .collect::<String>()
        .to_lowercase();
    let h = h
        .trim_end_matches("(元)")
        .trim_end_matches("（元）")
        .trim_end_matches("(yuan)");
    let f = match h {
        "kind" | "type" | "customer_type" | "客户类型" | "类型" | "客户类别" => "kind",
        "name" | "姓名" | "名称" | "客户名称" | "姓名/名称" | "企业名称" => "name",
        "id_number"
        | "idnumber"
        | "id"
        | "证件号码"
        | "证件号"
        | "身份证号"
        | "身份证号码"
        | "统一社会信用代码" => "id_number",
        "phone" | "mobile" | "手机号" | "手机号码" | "手机" | "联系电话" => "phone",
        "bank_card" | "bankcard" | "银行卡号" | "银行卡" | "银行账号" => "bank_card",
        "email" | "e-mail" | "电子邮箱" | "邮箱" | "电子邮件" => "email",
        "address" | "地址" | "联系地址" | "住址" => "address",
        "monthly_income" | "income" | "月收入" => "monthly_income",
        _ => return None,
    };
    Some(f)
}

/// Why a file cannot be imported at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FileError {
    #[error("the file is empty")]
    Empty,
    #[error("the file is neither UTF-8, UTF-16 nor GBK/GB18030 text, nor an XLSX workbook")]
    Encoding,
    #[error("the workbook cannot be read: {0}")]
    Xlsx(String),
    #[error("the CSV cannot be read: {0}")]
    Csv(String),
    #[error("the header row lacks the required column(s) {0}")]
    MissingColumns(String),
    #[error("the column {0} appears twice in the header row")]
    DuplicateColumn(String),
}

impl FileError {
    /// A stable code for the API.
    pub fn code(&self) -> &'static str {
        match self {
            FileError::Empty => "file.empty",
            FileError::Encoding => "file.encoding",
            FileError::Xlsx(_) => "file.xlsx",
            FileError::Csv(_) => "file.csv",
            FileError::MissingColumns(_) => "file.missing_columns",
            FileError::DuplicateColumn(_) => "file.duplicate_column",
        }
    }
}

/// `csv` or `xlsx`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Xlsx,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Xlsx => "xlsx",
        }
    }
}

/// One data row: its number as a spreadsheet shows it (the header is row 1) and its
/// values.
#[derive(Debug, Clone, Default)]
pub struct RawRow {
    pub row_no: i64,
    pub input: CustomerInput,
}

impl RawRow {
    /// The raw value of a field.
    pub fn value(&self, field: &str) -> Option<&str> {
        let i = &self.input;
        match field {
            "kind" => i.kind.as_deref(),
            "name" => i.name.as_deref(),
            "id_number" => i.id_number.as_deref(),
            "phone" => i.phone.as_deref(),
            "bank_card" => i.bank_card.as_deref(),
            "email" => i.email.as_deref(),
            "address" => i.address.as_deref(),
            "monthly_income" => i.monthly_income.as_deref(),
            _ => None,
        }
    }

    fn set(&mut self, field: &str, value: String) {
        let v = Some(value).filter(|s| !s.trim().is_empty());
        let i = &mut self.input;
        match field {
            "kind" => i.kind = v,
            "name" => i.name = v,
            "id_number" => i.id_number = v,
            "phone" => i.phone = v,
            "bank_card" => i.bank_card = v,
            "email" => i.email = v,
            "address" => i.address = v,
            "monthly_income" => i.monthly_income = v,
            _ => {}
        }
    }

    fn is_blank(&self) -> bool {
        FIELDS.iter().all(|f| self.value(f).is_none())
    }
}

/// A parsed file, ready to iterate.
#[derive(Debug)]
pub struct Table {
    pub format: Format,
    /// For CSV: the encoding it was read in (`UTF-8`, `GB18030`, `UTF-16LE`…).
    pub encoding: &'static str,
    /// Field of each column (`None`: ignored column).
    columns: Vec<Option<&'static str>>,
    /// Headers that map to no field (ignored).
    pub ignored_headers: Vec<String>,
    body: Body,
}

enum Body {
    Csv { text: String, delimiter: u8 },
    Xlsx(calamine::Range<Data>),
}

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Body::Csv { text, .. } => write!(f, "Csv({} bytes)", text.len()),
            Body::Xlsx(r) => write!(f, "Xlsx({:?})", r.get_size()),
        }
    }
}

/// Decodes CSV bytes: BOMs first, then strict UTF-8, then GB18030 (a superset of GBK).
pub fn decode_text(bytes: &[u8]) -> Result<(String, &'static str), FileError> {
    if let Some((enc, bom_len)) = encoding_rs::Encoding::for_bom(bytes) {
        let (text, had_errors) = enc.decode_without_bom_handling(&bytes[bom_len..]);
        if had_errors {
            return Err(FileError::Encoding);
        }
        return Ok((text.into_owned(), enc.name()));
    }
    if let Ok(text) = std::str::from_utf8(bytes) {
        return Ok((text.to_owned(), "UTF-8"));
    }
    let (text, had_errors) = encoding_rs::GB18030.decode_without_bom_handling(bytes);
    if had_errors {
        return Err(FileError::Encoding);
    }
    Ok((text.into_owned(), "GB18030"))
}

/// The format of a file from its content (an XLSX is a ZIP archive), not its name.
pub fn sniff(bytes: &[u8]) -> Format {
    if bytes.starts_with(b"PK\x03\x04") {
        Format::Xlsx
    } else {
        Format::Csv
    }
}

fn map_headers(headers: &[String]) -> Result<(Vec<Option<&'static str>>, Vec<String>), FileError> {
    let mut seen = BTreeMap::new();
    let mut columns = Vec::with_capacity(headers.len());
    let mut ignored = Vec::new();
    for h in headers {
        match field_of_header(h) {
            Some(f) => {
                if seen.insert(f, ()).is_some() {
                    return Err(FileError::DuplicateColumn(f.to_owned()));
                }
                columns.push(Some(f));
            }
            None => {
                if !h.trim().is_empty() {
                    ignored.push(h.trim().to_owned());
                }
                columns.push(None);
            }
        }
    }
    let missing: Vec<&str> = ["name", "id_number"]
        .into_iter()
        .filter(|f| !seen.contains_key(f))
        .collect();
    if !missing.is_empty() {
        return Err(FileError::MissingColumns(missing.join(", ")));
    }
    Ok((columns, ignored))
}

fn sniff_delimiter(text: &str) -> u8 {
    let first = text.lines().next().unwrap_or("");
    let count = |c: char| first.matches(c).count();
    let (comma, tab, semi) = (count(','), count('\t'), count(';'));
    if tab > comma && tab >= semi {
        b'\t'
    } else if semi > comma {
        b';'
    } else {
        b','
    }
}

/// An XLSX cell as text: whole numbers without `.0` (phone numbers typed as numbers),
/// others as Excel shows them.
fn cell_text(d: &Data) -> String {
    match d {
        Data::Empty => String::new(),
        Data::String(s) => s.clone(),
        Data::Int(i) => i.to_string(),
        Data::Float(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", *f as i64),
        Data::Float(f) => f.to_string(),
        Data::Bool(b) => b.to_string(),
        other => other.to_string(),
    }
}

impl Table {
    /// Parses a file: its format from the content, its header row mapped to fields.
    pub fn parse(bytes: &[u8]) -> Result<Table, FileError> {
        if bytes.is_empty() {
            return Err(FileError::Empty);
        }
        match sniff(bytes) {
            Format::Xlsx => Self::parse_xlsx(bytes),
            Format::Csv => Self::parse_csv(bytes),
        }
    }

    fn parse_csv(bytes: &[u8]) -> Result<Table, FileError> {
        let (text, encoding) = decode_text(bytes)?;
        let delimiter = sniff_delimiter(&text);
        let headers: Vec<String> = {
            let mut r = csv::ReaderBuilder::new()
                .delimiter(delimiter)
                .has_headers(false)
                .flexible(true)
                .from_reader(text.as_bytes());
            let mut rec = csv::StringRecord::new();
            let got = r
                .read_record(&mut rec)
                .map_err(|e| FileError::Csv(e.to_string()))?;
            if !got {
                return Err(FileError::Empty);
            }
            rec.iter().map(str::to_owned).collect()
        };
        let (columns, ignored_headers) = map_headers(&headers)?;
        Ok(Table {
            format: Format::Csv,
            encoding,
            columns,
            ignored_headers,
            body: Body::Csv { text, delimiter },
        })
    }

    fn parse_xlsx(bytes: &[u8]) -> Result<Table, FileError> {
        let mut book = calamine::open_workbook_auto_from_rs(Cursor::new(bytes))
            .map_err(|e| FileError::Xlsx(e.to_string()))?;
        let range = book
            .worksheet_range_at(0)
            .ok_or_else(|| FileError::Xlsx("the workbook has no worksheet".into()))?
            .map_err(|e| FileError::Xlsx(e.to_string()))?;
        let headers: Vec<String> = match range.rows().next() {
            Some(r) => r.iter().map(cell_text).collect(),
            None => return Err(FileError::Empty),
        };
        let (columns, ignored_headers) = map_headers(&headers)?;
        Ok(Table {
            format: Format::Xlsx,
            encoding: "XLSX",
            columns,
            ignored_headers,
            body: Body::Xlsx(range),
        })
    }

    /// The fields the header maps (in column order).
    pub fn fields(&self) -> Vec<&'static str> {
        self.columns.iter().flatten().copied().collect()
    }

    /// Every non-blank data row in file order; a CSV record that cannot be read becomes
    /// an `Err` with its row number.
    pub fn rows(&self) -> Box<dyn Iterator<Item = Result<RawRow, (i64, String)>> + '_> {
        let columns = &self.columns;
        let build = move |row_no: i64, values: &mut dyn Iterator<Item = String>| {
            let mut r = RawRow {
                row_no,
                ..Default::default()
            };
            for (col, v) in columns.iter().zip(values) {
                if let Some(f) = col {
                    r.set(f, v);
                }
            }
            r
        };
        match &self.body {
            Body::Csv { text, delimiter } => {
                let reader = csv::ReaderBuilder::new()
                    .delimiter(*delimiter)
                    .has_headers(true)
                    .flexible(true)
                    .from_reader(text.as_bytes());
                Box::new(
                    reader
                        .into_records()
                        .enumerate()
                        .filter_map(move |(i, rec)| {
                            let row_no = i as i64 + 2;
                            match rec {
                                Ok(rec) => {
                                    let r = build(row_no, &mut rec.iter().map(str::to_owned));
                                    (!r.is_blank()).then_some(Ok(r))
                                }
                                Err(e) => Some(Err((row_no, e.to_string()))),
                            }
                        }),
                )
            }
            Body::Xlsx(range) => {
                let start = range.start().map(|(r, _)| r as i64).unwrap_or(0);
                Box::new(
                    range
                        .rows()
                        .enumerate()
                        .skip(1)
                        .filter_map(move |(i, cells)| {
                            let r = build(start + i as i64 + 1, &mut cells.iter().map(cell_text));
                            (!r.is_blank()).then_some(Ok(r))
                        }),
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_in_english_and_chinese_map_to_fields() {
        for (h, f) in [
            ("kind", "kind"),
            ("客户类型", "kind"),
            ("姓名", "name"),
            (" Name ", "name"),
            ("证件号码", "id_number"),
            ("\u{feff}id_number", "id_number"),
            ("手机号", "phone"),
            ("银行卡号", "bank_card"),
            ("电子邮箱", "email"),
            ("地址", "address"),
            ("月收入（元）", "monthly_income"),
            ("monthly_income", "monthly_income"),
        ] {
            assert_eq!(field_of_header(h), Some(f), "{h}");
        }
        assert_eq!(field_of_header("备注"), None);
    }

    #[test]
    fn missing_and_duplicate_columns_are_file_errors() {
        assert_eq!(
            Table::parse(b"name,phone\nx,1\n").map(|_| ()),
            Err(FileError::MissingColumns("id_number".into()))
        );
        assert_eq!(
            Table::parse("姓名,name,证件号码\n".as_bytes()).map(|_| ()),
            Err(FileError::DuplicateColumn("name".into()))
        );
        assert_eq!(Table::parse(b"").map(|_| ()), Err(FileError::Empty));
    }

    fn rows_of(bytes: &[u8]) -> Vec<RawRow> {
        let t = Table::parse(bytes).unwrap();
        t.rows().map(|r| r.unwrap()).collect()
    }

    #[test]
    fn utf8_with_bom_gbk_and_utf16_read_the_same() {
        let text = "姓名,证件号码,手机号,备注\n张三,11010519491231002X,13800138000,老客户\n,,,\n李四,110105491231002,,\n";
        let plain = rows_of(text.as_bytes());
        let mut bom = vec![0xEF, 0xBB, 0xBF];
        bom.extend_from_slice(text.as_bytes());
        let (gbk, _, bad) = encoding_rs::GBK.encode(text);
        assert!(!bad);
        let mut utf16 = vec![0xFF, 0xFE];
        for u in text.encode_utf16() {
            utf16.extend_from_slice(&u.to_le_bytes());
        }
        for (bytes, enc) in [
            (bom.as_slice(), "UTF-8"),
            (&gbk[..], "GB18030"),
            (utf16.as_slice(), "UTF-16LE"),
        ] {
            let t = Table::parse(bytes).unwrap();
            assert_eq!(t.encoding, enc);
            assert_eq!(t.ignored_headers, vec!["备注".to_owned()]);
            let rows: Vec<RawRow> = t.rows().map(|r| r.unwrap()).collect();
            assert_eq!(rows.len(), 2, "{enc}: the blank row is skipped");
            for (a, b) in rows.iter().zip(&plain) {
                assert_eq!(a.row_no, b.row_no);
                assert_eq!(a.input.name, b.input.name);
                assert_eq!(a.input.id_number, b.input.id_number);
            }
        }
        assert_eq!(plain[0].input.name.as_deref(), Some("张三"));
        assert_eq!(plain[0].row_no, 2);
        assert_eq!(plain[1].row_no, 4);
        assert_eq!(plain[1].input.phone, None);
    }

    #[test]
    fn tab_and_semicolon_separated_files_are_recognised() {
        let rows = rows_of("name\tid_number\n王五\t11010519491231002X\n".as_bytes());
        assert_eq!(
            rows[0].input.id_number.as_deref(),
            Some("11010519491231002X")
        );
        let rows = rows_of("name;id_number\n王五;11010519491231002X\n".as_bytes());
        assert_eq!(rows[0].input.name.as_deref(), Some("王五"));
    }

    #[test]
    fn invalid_bytes_are_an_encoding_error() {
        // 0xFF is neither UTF-8 nor a GB18030 lead byte.
        assert_eq!(
            Table::parse(b"name,id_number\n\xff\xff\n").map(|_| ()),
            Err(FileError::Encoding)
        );
    }

    #[test]
    fn xlsx_cells_read_as_text_with_numbers_unmangled() {
        let mut book = rust_xlsxwriter::Workbook::new();
        let sheet = book.add_worksheet();
        for (c, h) in ["姓名", "证件号码", "手机号", "月收入"].iter().enumerate() {
            sheet.write_string(0, c as u16, *h).unwrap();
        }
        sheet.write_string(1, 0, "张三").unwrap();
        sheet.write_string(1, 1, "11010519491231002X").unwrap();
        sheet.write_number(1, 2, 13800138000.0).unwrap();
        sheet.write_number(1, 3, 12000.5).unwrap();
        let bytes = book.save_to_buffer().unwrap();
        let t = Table::parse(&bytes).unwrap();
        assert_eq!(t.format, Format::Xlsx);
        let rows: Vec<RawRow> = t.rows().map(|r| r.unwrap()).collect();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].row_no, 2);
        assert_eq!(rows[0].input.phone.as_deref(), Some("13800138000"));
        assert_eq!(rows[0].input.monthly_income.as_deref(), Some("12000.5"));
        assert_eq!(
            rows[0].input.id_number.as_deref(),
            Some("11010519491231002X")
        );
    }
}
