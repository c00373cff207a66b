//! Errors: compile-time (syntax, type) with a source position and a caret snippet, and
//! evaluation-time (overflow, division by zero, missing data) as values, never panics.

use std::fmt;

/// A byte range in the source text of an expression.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Span {
    /// First byte.
    pub start: u32,
    /// One past the last byte.
    pub end: u32,
}

impl Span {
    pub(crate) fn new(start: usize, end: usize) -> Self {
        Span {
            start: u32::try_from(start).unwrap_or(u32::MAX),
            end: u32::try_from(end).unwrap_or(u32::MAX),
        }
    }

    pub(crate) fn to(self, other: Span) -> Span {
        Span {
            start: self.start.min(other.start),
            end: self.end.max(other.end),
        }
    }

    /// 1-based line and column (in characters) of the start of the span within `source`.
    pub fn line_col(&self, source: &str) -> (usize, usize) {
        let start = (self.start as usize).min(source.len());
        let before = source.get(..start).unwrap_or(source);
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let col = before.get(line_start..).map_or(0, |s| s.chars().count()) + 1;
        (line, col)
    }
}

/// Stable codes for compile errors. The code is part of the public contract (rule editors
/// and stored rule-validation results refer to it); the message wording may change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// E001: a character or token that the language does not have.
    UnexpectedChar,
    /// E002: a string literal without its closing quote.
    UnterminatedString,
    /// E003: a bad escape sequence in a string literal.
    BadEscape,
    /// E004: a number literal that is malformed or out of range.
    BadNumber,
    /// E005: a token where another was expected.
    UnexpectedToken,
    /// E006: the expression ended too early.
    UnexpectedEnd,
    /// E007: nesting deeper than the parser allows.
    TooDeep,
    /// E008: syntax that CEL has but this subset does not (maps, uint, bytes, double, ...).
    Unsupported,
    /// E101: a field the schema does not declare.
    UnknownField,
    /// E102: a function or method the language does not have.
    UnknownFunction,
    /// E103: an operand or argument of the wrong type.
    TypeMismatch,
    /// E104: wrong number of arguments.
    Arity,
    /// E105: the whole expression must be a bool (guards, rules) but is not.
    NotBool,
    /// E106: `null` used where only an optional field may be compared with it.
    NullMisuse,
    /// E107: a regular expression that does not compile.
    BadRegex,
    /// E108: a constant that cannot be converted (`date("2024-13-01")`, decimal scale).
    BadConstant,
    /// E109: a schema declaration error (duplicate field, unsupported type).
    BadSchema,
}

impl ErrorCode {
    /// The stable code, e.g. `E101`.
    pub fn as_str(&self) -> &'static str {
        match self {
            ErrorCode::UnexpectedChar => "E001",
            ErrorCode::UnterminatedString => "E002",
            ErrorCode::BadEscape => "E003",
            ErrorCode::BadNumber => "E004",
            ErrorCode::UnexpectedToken => "E005",
            ErrorCode::UnexpectedEnd => "E006",
            ErrorCode::TooDeep => "E007",
            ErrorCode::Unsupported => "E008",
            ErrorCode::UnknownField => "E101",
            ErrorCode::UnknownFunction => "E102",
            ErrorCode::TypeMismatch => "E103",
            ErrorCode::Arity => "E104",
            ErrorCode::NotBool => "E105",
            ErrorCode::NullMisuse => "E106",
            ErrorCode::BadRegex => "E107",
            ErrorCode::BadConstant => "E108",
            ErrorCode::BadSchema => "E109",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An expression that does not parse or does not type-check.
///
/// `Display` gives a one-line message with line and column; [`CompileError::render`]
/// gives the rustc-style block with a caret under the offending text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompileError {
    /// Stable code.
    pub code: ErrorCode,
    /// English message saying what is wrong.
    pub message: String,
    /// Where in the source.
    pub span: Span,
    /// 1-based line of `span.start`.
    pub line: usize,
    /// 1-based column (characters) of `span.start`.
    pub column: usize,
    snippet: String,
}

impl CompileError {
    pub(crate) fn new(code: ErrorCode, message: impl Into<String>, span: Span) -> Self {
        CompileError {
            code,
            message: message.into(),
            span,
            line: 0,
            column: 0,
            snippet: String::new(),
        }
    }

    /// Fills in line, column and the caret snippet from the source text.
    pub(crate) fn with_source(mut self, source: &str) -> Self {
        let (line, col) = self.span.line_col(source);
        self.line = line;
        self.column = col;
        let text = source.lines().nth(line - 1).unwrap_or("");
        let start = (self.span.start as usize).min(source.len());
        let end = (self.span.end as usize).clamp(start, source.len());
        // Carets cover the span, clipped to the first line of it; at least one.
        let width = source
            .get(start..end)
            .map_or(1, |s| s.split('\n').next().map_or(0, |l| l.chars().count()))
            .max(1);
        let gutter = line.to_string();
        let pad = " ".repeat(gutter.len());
        self.snippet = format!(
            "{pad} |\n{gutter} | {text}\n{pad} | {}{}",
            " ".repeat(col - 1),
            "^".repeat(width)
        );
        self
    }

    /// Multi-line report: code, message, position and the source line with carets.
    pub fn render(&self) -> String {
        format!(
            "error[{}]: {}\n --> line {}, column {}\n{}",
            self.code, self.message, self.line, self.column, self.snippet
        )
    }
}

impl fmt::Display for CompileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} at line {}, column {}: {}",
            self.code, self.line, self.column, self.message
        )
    }
}

impl std::error::Error for CompileError {}

/// Stable codes for evaluation errors. A rule whose evaluation fails has no outcome: the
/// caller records a "rule error" with this code, it never silently passes or fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EvalErrorKind {
    /// R001: integer or decimal arithmetic overflowed.
    Overflow,
    /// R002: division or remainder by zero.
    DivisionByZero,
    /// R003: a required field was not set in the record.
    MissingField,
    /// R004: an optional field was read while absent (guard it with `has(...)`).
    AbsentOptional,
    /// R005: a conversion failed at run time (`int("abc")`).
    Conversion,
    /// R006: the record was built for another schema than the program.
    SchemaMismatch,
    /// R007: a list index outside the list.
    IndexOutOfRange,
}

impl EvalErrorKind {
    /// The stable code, e.g. `R001`.
    pub fn as_str(&self) -> &'static str {
        match self {
            EvalErrorKind::Overflow => "R001",
            EvalErrorKind::DivisionByZero => "R002",
            EvalErrorKind::MissingField => "R003",
            EvalErrorKind::AbsentOptional => "R004",
            EvalErrorKind::Conversion => "R005",
            EvalErrorKind::SchemaMismatch => "R006",
            EvalErrorKind::IndexOutOfRange => "R007",
        }
    }
}

/// Why an evaluation has no result.
///
/// One pointer wide, so that `Result<bool, EvalError>` comes back in registers on the hot
/// path; the details are boxed because errors are rare.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvalError {
    inner: Box<EvalErrorInner>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct EvalErrorInner {
    kind: EvalErrorKind,
    span: Span,
    detail: Option<String>,
}

impl EvalError {
    pub(crate) fn new(kind: EvalErrorKind, span: Span) -> Self {
        EvalError {
            inner: Box::new(EvalErrorInner {
                kind,
                span,
                detail: None,
            }),
        }
    }

    pub(crate) fn with_detail(kind: EvalErrorKind, span: Span, detail: impl Into<String>) -> Self {
        EvalError {
            inner: Box::new(EvalErrorInner {
                kind,
                span,
                detail: Some(detail.into()),
            }),
        }
    }

    /// Stable kind/code.
    pub fn kind(&self) -> EvalErrorKind {
        self.inner.kind
    }

    /// Where in the expression source the failing operation is.
    pub fn span(&self) -> Span {
        self.inner.span
    }

    /// Field name for missing-field errors, offending text for conversion errors.
    pub fn detail(&self) -> Option<&str> {
        self.inner.detail.as_deref()
    }
}

impl fmt::Display for EvalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.inner.kind {
            EvalErrorKind::Overflow => "arithmetic overflow",
            EvalErrorKind::DivisionByZero => "division by zero",
            EvalErrorKind::MissingField => "required field not set",
            EvalErrorKind::AbsentOptional => "optional field is absent (guard it with has())",
            EvalErrorKind::Conversion => "conversion failed",
            EvalErrorKind::SchemaMismatch => "record was built for another schema",
            EvalErrorKind::IndexOutOfRange => "list index out of range",
        };
        write!(
            f,
            "{}: {what} at bytes {}..{}",
            self.inner.kind.as_str(),
            self.inner.span.start,
            self.inner.span.end
        )?;
        if let Some(d) = &self.inner.detail {
            write!(f, " ({d})")?;
        }
        Ok(())
    }
}

impl std::error::Error for EvalError {}

/// Errors from filling a [`crate::Record`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// The field is not in the schema.
    #[error("unknown field `{0}`")]
    UnknownField(String),
    /// The value's type is not the field's type.
    #[error("field `{field}` is {expected}, not {got}")]
    TypeMismatch {
        /// Field name.
        field: String,
        /// Declared type.
        expected: String,
        /// What was given.
        got: &'static str,
    },
    /// A decimal with more fractional digits than the field's scale, or too large.
    #[error("field `{field}` holds decimals with scale {scale}; {value} does not fit exactly")]
    Precision {
        /// Field name.
        field: String,
        /// Declared scale.
        scale: u32,
        /// The value given.
        value: String,
    },
    /// A slot from another schema.
    #[error("slot belongs to another schema")]
    ForeignSlot,
    /// `null` for a field that is not optional.
    #[error("field `{0}` is not optional; it cannot be set to null")]
    NotOptional(String),
}
