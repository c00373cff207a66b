//! CSV in and out: reading a file into a [`Dataset`], writing one, and the
//! `score,probability` scoring contract of `zhudai model score`.
//!
//! The reader follows RFC 4180: comma-separated, fields optionally in double quotes, `""`
//! for a quote inside a quoted field, line breaks allowed inside quotes, LF or CRLF line
//! ends, a UTF-8 byte-order mark tolerated. The first record is the header. Empty lines
//! are skipped. This is the only module that touches files; the rest of the crate works on
//! in-memory data.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;

use crate::dataset::{ColumnData, Dataset};
use crate::error::{Result, ScorecardError};
use crate::model::Scorecard;
use crate::score::ScoreResult;

/// Streaming CSV record reader.
#[derive(Debug)]
pub struct CsvReader<R> {
    input: R,
    line: String,
    line_no: usize,
    first: bool,
}

impl<R: BufRead> CsvReader<R> {
    /// Reads from `input`.
    pub fn new(input: R) -> Self {
        Self {
            input,
            line: String::new(),
            line_no: 0,
            first: true,
        }
    }

    /// Reads the next non-empty record into `fields` (cleared first); false at end of input.
    pub fn read_record(&mut self, fields: &mut Vec<String>) -> Result<bool> {
        fields.clear();
        loop {
            self.line.clear();
            if self.input.read_line(&mut self.line)? == 0 {
                return Ok(false);
            }
            self.line_no += 1;
            if self.first {
                self.first = false;
                if let Some(rest) = self.line.strip_prefix('\u{feff}') {
                    self.line = rest.to_owned();
                }
            }
            if !self.line.trim_end_matches(['\r', '\n']).is_empty() {
                break;
            }
        }
        let start_line = self.line_no;
        let mut field = String::new();
        let mut in_quotes = false;
        let mut quoted_field = false;
        loop {
            let mut chars = self.line.chars().peekable();
            while let Some(ch) = chars.next() {
                if in_quotes {
                    if ch == '"' {
                        if chars.peek() == Some(&'"') {
                            chars.next();
                            field.push('"');
                        } else {
                            in_quotes = false;
                        }
                    } else {
                        field.push(ch);
                    }
                    continue;
                }
                match ch {
                    '"' if field.is_empty() && !quoted_field => {
                        in_quotes = true;
                        quoted_field = true;
                    }
                    '"' => {
                        return Err(ScorecardError::Csv {
                            line: start_line,
                            message: "quote inside an unquoted field".into(),
                        })
                    }
                    ',' => {
                        fields.push(std::mem::take(&mut field));
                        quoted_field = false;
                    }
                    '\r' if chars.peek() == Some(&'\n') => {}
                    '\n' => {}
                    c if quoted_field => {
                        return Err(ScorecardError::Csv {
                            line: start_line,
                            message: format!("'{c}' after a closing quote"),
                        })
                    }
                    c => field.push(c),
                }
            }
            if !in_quotes {
                break;
            }
            self.line.clear();
            if self.input.read_line(&mut self.line)? == 0 {
                return Err(ScorecardError::Csv {
                    line: start_line,
                    message: "unterminated quoted field".into(),
                });
            }
            self.line_no += 1;
        }
        fields.push(field);
        Ok(true)
    }
}

/// A whole CSV table as text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsvTable {
    /// Header fields.
    pub header: Vec<String>,
    /// Records; each has as many fields as the header.
    pub records: Vec<Vec<String>>,
}

/// Reads a whole CSV table; every record must have as many fields as the header.
pub fn read_csv<R: BufRead>(input: R) -> Result<CsvTable> {
    let mut reader = CsvReader::new(input);
    let mut header = Vec::new();
    if !reader.read_record(&mut header)? {
        return Err(ScorecardError::Csv {
            line: 1,
            message: "empty input, no header".into(),
        });
    }
    let mut records = Vec::new();
    let mut fields = Vec::new();
    while reader.read_record(&mut fields)? {
        if fields.len() != header.len() {
            return Err(ScorecardError::Csv {
                line: reader.line_no,
                message: format!("{} fields, header has {}", fields.len(), header.len()),
            });
        }
        records.push(fields.clone());
    }
    Ok(CsvTable { header, records })
}

/// Reads a CSV file into a dataset (types inferred; see [`Dataset::from_text_records`]).
pub fn read_dataset(path: &Path, force_categorical: &[&str]) -> Result<Dataset> {
    let file = std::fs::File::open(path)?;
    let table = read_csv(BufReader::new(file))?;
    Dataset::from_text_records(&table.header, &table.records, force_categorical)
}

/// Quotes a field when it holds a comma, quote or line break.
pub fn csv_field(s: &str) -> std::borrow::Cow<'_, str> {
    if s.contains([',', '"', '\n', '\r']) {
        std::borrow::Cow::Owned(format!("\"{}\"", s.replace('"', "\"\"")))
    } else {
        std::borrow::Cow::Borrowed(s)
    }
}

/// Writes `data` as CSV (missing values as empty fields, numbers in shortest form).
pub fn write_dataset<W: Write>(data: &Dataset, mut out: W) -> Result<()> {
    let header: Vec<_> = data.columns().iter().map(|c| csv_field(&c.name)).collect();
    writeln!(out, "{}", header.join(","))?;
    let mut line = String::new();
    for r in 0..data.rows() {
        line.clear();
        for (j, c) in data.columns().iter().enumerate() {
            if j > 0 {
                line.push(',');
            }
            match &c.data {
                ColumnData::Numeric(v) => {
                    if let Some(x) = v.get(r).copied().flatten() {
                        line.push_str(&x.to_string());
                    }
                }
                ColumnData::Categorical { levels, codes } => {
                    if let Some(s) = codes
                        .get(r)
                        .copied()
                        .flatten()
                        .and_then(|c| levels.get(c as usize))
                    {
                        line.push_str(&csv_field(s));
                    }
                }
            }
        }
        writeln!(out, "{line}")?;
    }
    Ok(())
}

/// The `zhudai model score` contract: reads CSV with a header, writes `score,probability`
/// and one line per input record, in order. Columns are matched by name; extra columns
/// are ignored. Returns the number of rows scored.
pub fn score_csv<R: BufRead, W: Write>(model: &Scorecard, input: R, mut out: W) -> Result<usize> {
    let mut reader = CsvReader::new(input);
    let mut header = Vec::new();
    if !reader.read_record(&mut header)? {
        return Err(ScorecardError::Csv {
            line: 1,
            message: "empty input, no header".into(),
        });
    }
    let bound = model.bind(&header)?;
    writeln!(out, "score,probability")?;
    let mut fields = Vec::new();
    let mut result = ScoreResult::default();
    let mut rows = 0;
    while reader.read_record(&mut fields)? {
        bound
            .score_text_into(&fields, &mut result)
            .map_err(|e| match e {
                ScorecardError::RowLength { expected, found } => ScorecardError::Csv {
                    line: reader.line_no,
                    message: format!("{found} fields, header has {expected}"),
                },
                ScorecardError::NotNumeric { feature, value } => ScorecardError::Csv {
                    line: reader.line_no,
                    message: format!("column '{feature}' is numeric, '{value}' is not a number"),
                },
                other => other,
            })?;
        writeln!(out, "{},{}", result.score, result.probability)?;
        rows += 1;
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn parses_quotes_and_crlf() {
        let text = "\u{feff}a,b,c\r\n1,\"x, y\",\"he said \"\"hi\"\"\"\r\n\r\n2,,\"multi\nline\"\n";
        let t = read_csv(text.as_bytes()).unwrap();
        assert_eq!(t.header, ["a", "b", "c"]);
        assert_eq!(t.records[0], ["1", "x, y", "he said \"hi\""]);
        assert_eq!(t.records[1], ["2", "", "multi\nline"]);
        assert_eq!(t.records.len(), 2);
    }

    #[test]
    fn rejects_malformed() {
        assert!(read_csv("a,b\n1,\"open\n".as_bytes()).is_err());
        assert!(read_csv("a,b\n1,2,3\n".as_bytes()).is_err());
        assert!(read_csv("a\nx\"y\n".as_bytes()).is_err());
    }

    #[test]
    fn field_quoting_round_trips() {
        let s = "a \"b\", c";
        let line = format!("h\n{}\n", csv_field(s));
        let t = read_csv(line.as_bytes()).unwrap();
        assert_eq!(t.records[0][0], s);
    }
}
