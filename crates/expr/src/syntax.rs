//! Lexer and recursive-descent parser for the CEL subset. Produces an untyped AST; the
//! compiler type-checks it against a schema.

use crate::error::{CompileError, ErrorCode, Span};

/// Deepest nesting the parser accepts; keeps hostile input from overflowing the stack.
const MAX_DEPTH: usize = 96;
/// Longest run of `&&` or `||` at one level (rules listing many conditions are normal).
const MAX_LOGICAL_CHAIN: usize = 10_000;

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
    Int(u64),
    /// A window length in days, `30d` (only the window of `count()`/`sum()`).
    Days(u64),
    /// Decimal literal: mantissa and number of fractional digits.
    Dec(i128, u32),
    Str(String),
    Ident(String),
    True,
    False,
    Null,
    In,
    LParen,
    RParen,
    LBracket,
    RBracket,
    Dot,
    Comma,
    Question,
    Colon,
    Not,
    Minus,
    Plus,
    Star,
    Slash,
    Percent,
    Lt,
    Le,
    Gt,
    Ge,
    EqEq,
    Ne,
    AndAnd,
    OrOr,
    Eof,
}

impl Tok {
    fn describe(&self) -> String {
        match self {
            Tok::Int(v) => format!("number `{v}`"),
            Tok::Days(v) => format!("window `{v}d`"),
            Tok::Dec(..) => "decimal number".into(),
            Tok::Str(_) => "string".into(),
            Tok::Ident(s) => format!("`{s}`"),
            Tok::True => "`true`".into(),
            Tok::False => "`false`".into(),
            Tok::Null => "`null`".into(),
            Tok::In => "`in`".into(),
            Tok::LParen => "`(`".into(),
            Tok::RParen => "`)`".into(),
            Tok::LBracket => "`[`".into(),
            Tok::RBracket => "`]`".into(),
            Tok::Dot => "`.`".into(),
            Tok::Comma => "`,`".into(),
            Tok::Question => "`?`".into(),
            Tok::Colon => "`:`".into(),
            Tok::Not => "`!`".into(),
            Tok::Minus => "`-`".into(),
            Tok::Plus => "`+`".into(),
            Tok::Star => "`*`".into(),
            Tok::Slash => "`/`".into(),
            Tok::Percent => "`%`".into(),
            Tok::Lt => "`<`".into(),
            Tok::Le => "`<=`".into(),
            Tok::Gt => "`>`".into(),
            Tok::Ge => "`>=`".into(),
            Tok::EqEq => "`==`".into(),
            Tok::Ne => "`!=`".into(),
            Tok::AndAnd => "`&&`".into(),
            Tok::OrOr => "`||`".into(),
            Tok::Eof => "end of expression".into(),
        }
    }
}

/// CEL reserved words that cannot be identifiers.
const RESERVED: &[&str] = &[
    "as",
    "break",
    "const",
    "continue",
    "else",
    "for",
    "function",
    "if",
    "import",
    "let",
    "loop",
    "package",
    "namespace",
    "return",
    "var",
    "void",
    "while",
];

pub(crate) fn lex(src: &str) -> Result<Vec<(Tok, Span)>, CompileError> {
    let bytes = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        let start = i;
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        if c == b'/' && bytes.get(i + 1) == Some(&b'/') {
            while i < bytes.len() && bytes[i] != b'\n' {
                i += 1;
            }
            continue;
        }
        let two = |a: u8, b: u8| c == a && bytes.get(i + 1) == Some(&b);
        let (tok, len) = if two(b'<', b'=') {
            (Tok::Le, 2)
        } else if two(b'>', b'=') {
            (Tok::Ge, 2)
        } else if two(b'=', b'=') {
            (Tok::EqEq, 2)
        } else if two(b'!', b'=') {
            (Tok::Ne, 2)
        } else if two(b'&', b'&') {
            (Tok::AndAnd, 2)
        } else if two(b'|', b'|') {
            (Tok::OrOr, 2)
        } else {
            match c {
                b'(' => (Tok::LParen, 1),
                b')' => (Tok::RParen, 1),
                b'[' => (Tok::LBracket, 1),
                b']' => (Tok::RBracket, 1),
                b'.' if !bytes.get(i + 1).is_some_and(u8::is_ascii_digit) => (Tok::Dot, 1),
                b',' => (Tok::Comma, 1),
                b'?' => (Tok::Question, 1),
                b':' => (Tok::Colon, 1),
                b'!' => (Tok::Not, 1),
                b'-' => (Tok::Minus, 1),
                b'+' => (Tok::Plus, 1),
                b'*' => (Tok::Star, 1),
                b'/' => (Tok::Slash, 1),
                b'%' => (Tok::Percent, 1),
                b'<' => (Tok::Lt, 1),
                b'>' => (Tok::Gt, 1),
                b'=' => {
                    return Err(CompileError::new(
                        ErrorCode::UnexpectedChar,
                        "`=` is not an operator; use `==` to compare",
                        Span::new(i, i + 1),
                    ))
                }
                b'&' | b'|' => {
                    return Err(CompileError::new(
                        ErrorCode::UnexpectedChar,
                        format!(
                            "`{}` alone is not an operator; use `{}{}`",
                            c as char, c as char, c as char
                        ),
                        Span::new(i, i + 1),
                    ))
                }
                b'{' | b'}' => {
                    return Err(CompileError::new(
                        ErrorCode::Unsupported,
                        "map literals are not supported in this CEL subset",
                        Span::new(i, i + 1),
                    ))
                }
                _ => (Tok::Eof, 0),
            }
        };
        if len > 0 {
            out.push((tok, Span::new(i, i + len)));
            i += len;
            continue;
        }
        if c.is_ascii_digit() || c == b'.' {
            let (tok, end) = lex_number(src, i)?;
            out.push((tok, Span::new(start, end)));
            i = end;
            continue;
        }
        if c.is_ascii_alphabetic() || c == b'_' {
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                i += 1;
            }
            let word = &src[start..i];
            let next_quote = matches!(bytes.get(i), Some(b'"') | Some(b'\''));
            if next_quote && matches!(word, "r" | "R") {
                let (s, end) = lex_string(src, i, true)?;
                out.push((Tok::Str(s), Span::new(start, end)));
                i = end;
                continue;
            }
            if next_quote && matches!(word, "b" | "B" | "rb" | "br" | "RB" | "BR" | "Rb" | "bR") {
                return Err(CompileError::new(
                    ErrorCode::Unsupported,
                    "bytes literals are not supported in this CEL subset",
                    Span::new(start, i),
                ));
            }
            let tok = match word {
                "true" => Tok::True,
                "false" => Tok::False,
                "null" => Tok::Null,
                "in" => Tok::In,
                w if RESERVED.contains(&w) => {
                    return Err(CompileError::new(
                        ErrorCode::UnexpectedToken,
                        format!("`{w}` is a reserved word in CEL and cannot be used as a name"),
                        Span::new(start, i),
                    ))
                }
                w => Tok::Ident(w.to_string()),
            };
            out.push((tok, Span::new(start, i)));
            continue;
        }
        if c == b'"' || c == b'\'' {
            let (s, end) = lex_string(src, i, false)?;
            out.push((Tok::Str(s), Span::new(start, end)));
            i = end;
            continue;
        }
        let ch = src[i..].chars().next().unwrap_or('?');
        return Err(CompileError::new(
            ErrorCode::UnexpectedChar,
            format!("unexpected character `{ch}`"),
            Span::new(i, i + ch.len_utf8()),
        ));
    }
    out.push((Tok::Eof, Span::new(src.len(), src.len())));
    Ok(out)
}

fn lex_number(src: &str, start: usize) -> Result<(Tok, usize), CompileError> {
    let bytes = src.as_bytes();
    let mut i = start;
    let bad = |msg: String, end: usize| {
        Err(CompileError::new(
            ErrorCode::BadNumber,
            msg,
            Span::new(start, end),
        ))
    };
    if bytes[i] == b'0' && matches!(bytes.get(i + 1), Some(b'x') | Some(b'X')) {
        i += 2;
        let ds = i;
        while i < bytes.len() && bytes[i].is_ascii_hexdigit() {
            i += 1;
        }
        if matches!(bytes.get(i), Some(b'u') | Some(b'U')) {
            return Err(CompileError::new(
                ErrorCode::Unsupported,
                "unsigned integers (`u` suffix) are not supported; use a plain int",
                Span::new(start, i + 1),
            ));
        }
        return match u64::from_str_radix(&src[ds..i], 16) {
            Ok(v) => Ok((Tok::Int(v), i)),
            Err(_) => bad(format!("invalid hex literal `{}`", &src[start..i]), i),
        };
    }
    while i < bytes.len() && bytes[i].is_ascii_digit() {
        i += 1;
    }
    let int_end = i;
    let mut frac_digits = None;
    if bytes.get(i) == Some(&b'.') && bytes.get(i + 1).is_some_and(u8::is_ascii_digit) {
        i += 1;
        let fs = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        frac_digits = Some(&src[fs..i]);
    }
    if matches!(bytes.get(i), Some(b'e') | Some(b'E')) {
        return Err(CompileError::new(
            ErrorCode::Unsupported,
            "exponent notation is not supported: numbers with a fraction are exact decimals; \
             write the digits out (e.g. 1000 or 0.001)",
            Span::new(start, i + 1),
        ));
    }
    if matches!(bytes.get(i), Some(b'u') | Some(b'U')) {
        return Err(CompileError::new(
            ErrorCode::Unsupported,
            "unsigned integers (`u` suffix) are not supported; use a plain int",
            Span::new(start, i + 1),
        ));
    }
    // A window length in days: digits, `d`, then no identifier character (`30d`).
    if frac_digits.is_none()
        && bytes.get(i) == Some(&b'd')
        && !bytes
            .get(i + 1)
            .is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_')
    {
        return match src[start..int_end].parse::<u64>() {
            Ok(v) => Ok((Tok::Days(v), i + 1)),
            Err(_) => bad(format!("window `{}` is too large", &src[start..=i]), i + 1),
        };
    }
    if bytes
        .get(i)
        .is_some_and(|b| b.is_ascii_alphabetic() || *b == b'_')
    {
        return bad(
            format!("invalid number literal `{}`", &src[start..=i]),
            i + 1,
        );
    }
    match frac_digits {
        None => match src[start..int_end].parse::<u64>() {
            Ok(v) => Ok((Tok::Int(v), i)),
            Err(_) => bad(
                format!("integer literal `{}` is too large", &src[start..i]),
                i,
            ),
        },
        Some(frac) => {
            let scale = u32::try_from(frac.len()).unwrap_or(u32::MAX);
            if scale > crate::types::MAX_SCALE {
                return bad(
                    format!(
                        "decimal literal has {scale} fractional digits; at most {} are allowed",
                        crate::types::MAX_SCALE
                    ),
                    i,
                );
            }
            let digits: String = format!("{}{}", &src[start..int_end], frac);
            match digits.parse::<i128>() {
                Ok(m) if m <= crate::types::MAX_MANTISSA => Ok((Tok::Dec(m, scale), i)),
                _ => bad(
                    format!("decimal literal `{}` is too large", &src[start..i]),
                    i,
                ),
            }
        }
    }
}

fn lex_string(src: &str, quote_at: usize, raw: bool) -> Result<(String, usize), CompileError> {
    let bytes = src.as_bytes();
    let q = bytes[quote_at];
    let triple = bytes.get(quote_at + 1) == Some(&q) && bytes.get(quote_at + 2) == Some(&q);
    let mut i = quote_at + if triple { 3 } else { 1 };
    let mut out = String::new();
    loop {
        let Some(ch) = src[i..].chars().next() else {
            return Err(CompileError::new(
                ErrorCode::UnterminatedString,
                "string literal is not closed",
                Span::new(quote_at, src.len()),
            ));
        };
        if ch as u32 == q as u32 {
            if !triple {
                return Ok((out, i + 1));
            }
            if bytes.get(i + 1) == Some(&q) && bytes.get(i + 2) == Some(&q) {
                return Ok((out, i + 3));
            }
        }
        if ch == '\n' && !triple {
            return Err(CompileError::new(
                ErrorCode::UnterminatedString,
                "string literal is not closed before the end of the line",
                Span::new(quote_at, i),
            ));
        }
        if ch == '\\' && !raw {
            let (c, len) = unescape(src, i)?;
            out.push(c);
            i += len;
            continue;
        }
        out.push(ch);
        i += ch.len_utf8();
    }
}

/// Decodes one escape starting at the backslash at `i`; returns the char and the bytes used.
fn unescape(src: &str, i: usize) -> Result<(char, usize), CompileError> {
    let bytes = src.as_bytes();
    let err = |len: usize, msg: &str| {
        CompileError::new(
            ErrorCode::BadEscape,
            msg.to_string(),
            Span::new(i, (i + len).min(src.len())),
        )
    };
    let Some(&e) = bytes.get(i + 1) else {
        return Err(err(1, "string ends inside an escape sequence"));
    };
    let simple = match e {
        b'n' => Some('\n'),
        b't' => Some('\t'),
        b'r' => Some('\r'),
        b'a' => Some('\u{7}'),
        b'b' => Some('\u{8}'),
        b'f' => Some('\u{c}'),
        b'v' => Some('\u{b}'),
        b'\\' => Some('\\'),
        b'\'' => Some('\''),
        b'"' => Some('"'),
        b'`' => Some('`'),
        b'?' => Some('?'),
        _ => None,
    };
    if let Some(c) = simple {
        return Ok((c, 2));
    }
    let (digits, radix, skip) = match e {
        b'x' | b'X' => (2, 16, 2),
        b'u' => (4, 16, 2),
        b'U' => (8, 16, 2),
        b'0'..=b'3' => (3, 8, 1),
        _ => {
            return Err(err(
                2,
                "unknown escape sequence; use \\n \\t \\r \\\\ \\\" \\' \\xHH \\uHHHH \\UHHHHHHHH or \\ooo",
            ))
        }
    };
    let start = i + skip;
    let text = src
        .get(start..start + digits)
        .ok_or_else(|| err(skip + digits, "escape sequence is too short"))?;
    let code =
        u32::from_str_radix(text, radix).map_err(|_| err(skip + digits, "bad escape digits"))?;
    let c = char::from_u32(code)
        .ok_or_else(|| err(skip + digits, "escape is not a valid Unicode scalar value"))?;
    Ok((c, skip + digits))
}

/// Binary operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BinOp {
    Or,
    And,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    In,
    Add,
    Sub,
    Mul,
    Div,
    Rem,
}

impl BinOp {
    pub(crate) fn symbol(self) -> &'static str {
        match self {
            BinOp::Or => "||",
            BinOp::And => "&&",
            BinOp::Eq => "==",
            BinOp::Ne => "!=",
            BinOp::Lt => "<",
            BinOp::Le => "<=",
            BinOp::Gt => ">",
            BinOp::Ge => ">=",
            BinOp::In => "in",
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::Rem => "%",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ExprKind {
    Int(i64),
    /// A window length in days (`30d`); only valid as the window of `count()`/`sum()`.
    Days(i64),
    Dec(i128, u32),
    Str(String),
    Bool(bool),
    Null,
    Ident(String),
    Select(Box<Expr>, String),
    Call {
        target: Option<Box<Expr>>,
        name: String,
        name_span: Span,
        args: Vec<Expr>,
    },
    List(Vec<Expr>),
    Index(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    Neg(Box<Expr>),
    Binary(BinOp, Box<Expr>, Box<Expr>),
    Cond(Box<Expr>, Box<Expr>, Box<Expr>),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Expr {
    pub kind: ExprKind,
    pub span: Span,
}

pub(crate) fn parse(src: &str) -> Result<Expr, CompileError> {
    let toks = lex(src)?;
    let mut p = Parser {
        toks,
        pos: 0,
        depth: 0,
    };
    let e = p.expr()?;
    let (t, span) = p.peek();
    if *t != Tok::Eof {
        return Err(CompileError::new(
            ErrorCode::UnexpectedToken,
            format!("unexpected {} after a complete expression", t.describe()),
            span,
        ));
    }
    Ok(e)
}

struct Parser {
    toks: Vec<(Tok, Span)>,
    pos: usize,
    depth: usize,
}

impl Parser {
    fn peek(&self) -> (&Tok, Span) {
        match self.toks.get(self.pos).or_else(|| self.toks.last()) {
            Some((t, s)) => (t, *s),
            None => (&Tok::Eof, Span::default()),
        }
    }

    fn bump(&mut self) -> (Tok, Span) {
        let (t, s) = self.peek();
        let out = (t.clone(), s);
        if self.pos < self.toks.len() {
            self.pos += 1;
        }
        out
    }

    fn eat(&mut self, t: &Tok) -> bool {
        if self.peek().0 == t {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, t: &Tok, context: &str) -> Result<Span, CompileError> {
        let (got, span) = self.peek();
        if got == t {
            self.pos += 1;
            return Ok(span);
        }
        let code = if *got == Tok::Eof {
            ErrorCode::UnexpectedEnd
        } else {
            ErrorCode::UnexpectedToken
        };
        Err(CompileError::new(
            code,
            format!(
                "expected {} {context}, found {}",
                t.describe(),
                got.describe()
            ),
            span,
        ))
    }

    fn enter(&mut self, span: Span) -> Result<(), CompileError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(CompileError::new(
                ErrorCode::TooDeep,
                format!("expression nests deeper than {MAX_DEPTH} levels"),
                span,
            ));
        }
        Ok(())
    }

    // expr := or ('?' or ':' expr)?
    fn expr(&mut self) -> Result<Expr, CompileError> {
        let span = self.peek().1;
        self.enter(span)?;
        let cond = self.binary(0)?;
        let out = if self.eat(&Tok::Question) {
            let a = self.binary(0)?;
            self.expect(&Tok::Colon, "in conditional `c ? a : b`")?;
            let b = self.expr()?;
            let span = cond.span.to(b.span);
            Expr {
                kind: ExprKind::Cond(Box::new(cond), Box::new(a), Box::new(b)),
                span,
            }
        } else {
            cond
        };
        self.depth -= 1;
        Ok(out)
    }

    /// The binary operator at the cursor and its precedence level: 0 `||`, 1 `&&`,
    /// 2 relations, 3 additive, 4 multiplicative.
    fn binop(&self) -> Option<(BinOp, usize)> {
        Some(match self.peek().0 {
            Tok::OrOr => (BinOp::Or, 0),
            Tok::AndAnd => (BinOp::And, 1),
            Tok::EqEq => (BinOp::Eq, 2),
            Tok::Ne => (BinOp::Ne, 2),
            Tok::Lt => (BinOp::Lt, 2),
            Tok::Le => (BinOp::Le, 2),
            Tok::Gt => (BinOp::Gt, 2),
            Tok::Ge => (BinOp::Ge, 2),
            Tok::In => (BinOp::In, 2),
            Tok::Plus => (BinOp::Add, 3),
            Tok::Minus => (BinOp::Sub, 3),
            Tok::Star => (BinOp::Mul, 4),
            Tok::Slash => (BinOp::Div, 4),
            Tok::Percent => (BinOp::Rem, 4),
            _ => return None,
        })
    }

    /// Precedence climbing over left-associative binary operators of level ≥ `min`.
    fn binary(&mut self, min: usize) -> Result<Expr, CompileError> {
        let mut lhs = self.unary()?;
        // A chain `a + b + c` builds a left-deep tree that the compiler walks recursively,
        // so each link counts as nesting. `&&`/`||` chains are flattened by the compiler
        // and only bounded in length.
        let saved = self.depth;
        let mut links = 0usize;
        while let Some((op, level)) = self.binop() {
            if level < min {
                break;
            }
            let (_, span) = self.bump();
            links += 1;
            if level >= 2 {
                self.enter(span)?;
            } else if links > MAX_LOGICAL_CHAIN {
                return Err(CompileError::new(
                    ErrorCode::TooDeep,
                    format!("more than {MAX_LOGICAL_CHAIN} `{}` in a row", op.symbol()),
                    span,
                ));
            }
            let rhs = self.binary(level + 1)?;
            let span = lhs.span.to(rhs.span);
            lhs = Expr {
                kind: ExprKind::Binary(op, Box::new(lhs), Box::new(rhs)),
                span,
            };
        }
        self.depth = saved;
        Ok(lhs)
    }

    fn unary(&mut self) -> Result<Expr, CompileError> {
        let (t, span) = self.peek();
        match t {
            Tok::Not => {
                self.bump();
                self.enter(span)?;
                let e = self.unary()?;
                self.depth -= 1;
                let s = span.to(e.span);
                Ok(Expr {
                    kind: ExprKind::Not(Box::new(e)),
                    span: s,
                })
            }
            Tok::Minus => {
                self.bump();
                // `-9223372036854775808` is only representable as a negated literal.
                if let (Tok::Int(v), ls) = self.peek() {
                    let v = *v;
                    if v == 1u64 << 63 {
                        self.bump();
                        let e = Expr {
                            kind: ExprKind::Int(i64::MIN),
                            span: span.to(ls),
                        };
                        return self.member_suffix(e);
                    }
                }
                self.enter(span)?;
                let e = self.unary()?;
                self.depth -= 1;
                let s = span.to(e.span);
                Ok(Expr {
                    kind: ExprKind::Neg(Box::new(e)),
                    span: s,
                })
            }
            _ => {
                let e = self.primary()?;
                self.member_suffix(e)
            }
        }
    }

    fn member_suffix(&mut self, mut e: Expr) -> Result<Expr, CompileError> {
        loop {
            let (t, _) = self.peek();
            match t {
                Tok::Dot => {
                    self.bump();
                    let (t, nspan) = self.bump();
                    let Tok::Ident(name) = t else {
                        return Err(CompileError::new(
                            ErrorCode::UnexpectedToken,
                            format!(
                                "expected a field or method name after `.`, found {}",
                                t.describe()
                            ),
                            nspan,
                        ));
                    };
                    if self.eat(&Tok::LParen) {
                        let (args, end) = self.args(Tok::RParen)?;
                        let span = e.span.to(end);
                        e = Expr {
                            kind: ExprKind::Call {
                                target: Some(Box::new(e)),
                                name,
                                name_span: nspan,
                                args,
                            },
                            span,
                        };
                    } else {
                        let span = e.span.to(nspan);
                        e = Expr {
                            kind: ExprKind::Select(Box::new(e), name),
                            span,
                        };
                    }
                }
                Tok::LBracket => {
                    self.bump();
                    let idx = self.expr()?;
                    let end = self.expect(&Tok::RBracket, "to close the index")?;
                    let span = e.span.to(end);
                    e = Expr {
                        kind: ExprKind::Index(Box::new(e), Box::new(idx)),
                        span,
                    };
                }
                _ => return Ok(e),
            }
        }
    }

    /// Comma-separated expressions up to `close` (already past the opener); allows a
    /// trailing comma as CEL does for lists.
    fn args(&mut self, close: Tok) -> Result<(Vec<Expr>, Span), CompileError> {
        let mut args = Vec::new();
        loop {
            let (t, span) = self.peek();
            if *t == close {
                self.bump();
                return Ok((args, span));
            }
            args.push(self.expr()?);
            if !self.eat(&Tok::Comma) {
                let end = self.expect(&close, "or `,` in the argument list")?;
                return Ok((args, end));
            }
        }
    }

    fn primary(&mut self) -> Result<Expr, CompileError> {
        let (t, span) = self.bump();
        let kind = match t {
            Tok::Int(v) => match i64::try_from(v) {
                Ok(v) => ExprKind::Int(v),
                Err(_) => {
                    return Err(CompileError::new(
                        ErrorCode::BadNumber,
                        "integer literal is larger than the int range (64-bit signed)",
                        span,
                    ))
                }
            },
            Tok::Days(v) => match i64::try_from(v) {
                Ok(v) => ExprKind::Days(v),
                Err(_) => {
                    return Err(CompileError::new(
                        ErrorCode::BadNumber,
                        "window is larger than the int range",
                        span,
                    ))
                }
            },
            Tok::Dec(m, s) => ExprKind::Dec(m, s),
            Tok::Str(s) => ExprKind::Str(s),
            Tok::True => ExprKind::Bool(true),
            Tok::False => ExprKind::Bool(false),
            Tok::Null => ExprKind::Null,
            Tok::Ident(name) => {
                if self.eat(&Tok::LParen) {
                    let (args, end) = self.args(Tok::RParen)?;
                    return Ok(Expr {
                        kind: ExprKind::Call {
                            target: None,
                            name,
                            name_span: span,
                            args,
                        },
                        span: span.to(end),
                    });
                }
                ExprKind::Ident(name)
            }
            Tok::LParen => {
                let e = self.expr()?;
                let end = self.expect(&Tok::RParen, "to close `(`")?;
                return Ok(Expr {
                    kind: e.kind,
                    span: span.to(end),
                });
            }
            Tok::LBracket => {
                let (items, end) = self.args(Tok::RBracket)?;
                return Ok(Expr {
                    kind: ExprKind::List(items),
                    span: span.to(end),
                });
            }
            Tok::Eof => {
                return Err(CompileError::new(
                    ErrorCode::UnexpectedEnd,
                    "expression ends where a value was expected",
                    span,
                ))
            }
            other => {
                return Err(CompileError::new(
                    ErrorCode::UnexpectedToken,
                    format!("expected a value, found {}", other.describe()),
                    span,
                ))
            }
        };
        Ok(Expr { kind, span })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precedence() {
        let e = parse("a || b && c == 1 + 2 * 3").unwrap();
        let ExprKind::Binary(BinOp::Or, _, rhs) = e.kind else {
            panic!("top is not ||")
        };
        let ExprKind::Binary(BinOp::And, _, rhs) = rhs.kind else {
            panic!()
        };
        let ExprKind::Binary(BinOp::Eq, _, rhs) = rhs.kind else {
            panic!()
        };
        let ExprKind::Binary(BinOp::Add, _, rhs) = rhs.kind else {
            panic!()
        };
        assert!(matches!(rhs.kind, ExprKind::Binary(BinOp::Mul, _, _)));
    }

    #[test]
    fn literals() {
        assert_eq!(parse("50000.00").unwrap().kind, ExprKind::Dec(5000000, 2));
        assert_eq!(parse("0x1F").unwrap().kind, ExprKind::Int(31));
        assert_eq!(
            parse("-9223372036854775808").unwrap().kind,
            ExprKind::Int(i64::MIN)
        );
        assert_eq!(
            parse(r#""a\n\x41\u00e9\101""#).unwrap().kind,
            ExprKind::Str("a\nAéA".into())
        );
        assert_eq!(
            parse(r#"r"a\n""#).unwrap().kind,
            ExprKind::Str("a\\n".into())
        );
        assert_eq!(
            parse("'''x'y'''").unwrap().kind,
            ExprKind::Str("x'y".into())
        );
        assert_eq!(parse(".5").unwrap().kind, ExprKind::Dec(5, 1));
        assert_eq!(parse("30d").unwrap().kind, ExprKind::Days(30));
        assert_eq!(parse("30days").unwrap_err().code, ErrorCode::BadNumber);
        assert_eq!(parse("3.5d").unwrap_err().code, ErrorCode::BadNumber);
    }

    #[test]
    fn depth_limit() {
        let src = format!("{}1{}", "(".repeat(500), ")".repeat(500));
        assert_eq!(parse(&src).unwrap_err().code, ErrorCode::TooDeep);
        let src = "!".repeat(500) + "true";
        assert_eq!(parse(&src).unwrap_err().code, ErrorCode::TooDeep);
        let src = vec!["1"; 500].join(" + ");
        assert_eq!(parse(&src).unwrap_err().code, ErrorCode::TooDeep);
        let src = vec!["true"; 2000].join(" && ");
        assert!(parse(&src).is_ok());
    }
}
