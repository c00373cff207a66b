//! Compiled programs: [`Condition`] for bool expressions (guards, rules, scenarios,
//! admission criteria) and [`Program`] for expressions of any scalar type.

use std::borrow::Cow;
use std::fmt;

use chrono::NaiveDate;

use crate::compile::{Code, Compiler, Cs, Env, Fx, Local, StrFn, MAX_LOCALS};
use crate::error::{CompileError, ErrorCode, EvalError, EvalErrorKind, Span};
use crate::syntax::parse;
use crate::types::{mantissa_to_decimal, Record, Schema, Type, Value};

/// String constants a program's closures borrow from.
type Consts = Box<[Box<str>]>;

/// Parses and compiles `source` against `schema`; errors carry line, column and snippet.
fn build(source: &str, schema: &Schema) -> Result<(Code, Consts), CompileError> {
    let inner = || -> Result<(Code, Consts), CompileError> {
        let ast = parse(source)?;
        let mut c = Compiler::new(&schema.inner);
        let code = c.expr(&ast)?;
        Ok((code, c.consts.into_boxed_slice()))
    };
    inner().map_err(|e| e.with_source(source))
}

#[inline(always)]
fn env<'a>(rec: &'a Record, consts: &'a [Box<str>]) -> Env<'a> {
    Env {
        rec,
        consts,
        locals: [Local::None; MAX_LOCALS],
    }
}

#[cold]
fn schema_mismatch() -> EvalError {
    EvalError::new(EvalErrorKind::SchemaMismatch, Span::default())
}

/// A compiled bool expression. Evaluate it as often as needed, from any thread.
///
/// ```
/// use zhudai_expr::{Condition, Schema, Type};
///
/// let schema = Schema::builder()
///     .field("app.amount", Type::decimal(2))
///     .field("customer.age", Type::Int)
///     .build()?;
/// let rule = Condition::compile("app.amount > 50000.00 && customer.age >= 18", &schema)?;
///
/// let amount = schema.slot("app.amount").ok_or("no slot")?;
/// let age = schema.slot("customer.age").ok_or("no slot")?;
/// let mut rec = schema.new_record();
/// rec.set_decimal_units(amount, 6_000_000)?; // 60000.00 yuan, in fen
/// rec.set_int(age, 30)?;
/// assert_eq!(rule.eval(&rec), Ok(true));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Condition {
    f: Fx<bool>,
    consts: Consts,
    schema_id: u64,
    source: String,
}

impl fmt::Debug for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Condition")
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl Condition {
    /// Compiles a bool expression; anything else is refused with `E105`.
    pub fn compile(source: &str, schema: &Schema) -> Result<Condition, CompileError> {
        let (code, consts) = build(source, schema)?;
        let f = match code {
            Code::Bool(c) => c.into_fn(),
            other => {
                let ty = match &other {
                    Code::Null => "null".to_string(),
                    Code::Dec(_, s) => format!("decimal({s})"),
                    Code::Int(_) => "int".into(),
                    Code::Str(_) => "string".into(),
                    Code::Date(_) => "date".into(),
                    Code::List(_) => "a list".into(),
                    Code::Bool(_) => "bool".into(),
                };
                let end = source.len();
                return Err(CompileError::new(
                    ErrorCode::NotBool,
                    format!("a condition must be a bool expression, but this one is {ty}"),
                    Span::new(0, end),
                )
                .with_source(source));
            }
        };
        Ok(Condition {
            f,
            consts,
            schema_id: schema.id(),
            source: source.to_string(),
        })
    }

    /// Evaluates over one record. `Err` means the rule has no outcome ("rule error"):
    /// the caller must record it, not treat it as true or false.
    #[inline]
    pub fn eval(&self, rec: &Record) -> Result<bool, EvalError> {
        if rec.schema.id != self.schema_id {
            return Err(schema_mismatch());
        }
        (self.f)(&env(rec, &self.consts))
    }

    /// The source text it was compiled from.
    pub fn source(&self) -> &str {
        &self.source
    }
}

enum Root {
    Bool(Fx<bool>),
    Int(Fx<i64>),
    Dec(Fx<i128>, u32),
    Str(StrFn),
    Date(Fx<NaiveDate>),
    Null,
}

/// A compiled expression of any scalar type (a computed limit, a score adjustment, a
/// label). For bool expressions prefer [`Condition`], which returns `bool` directly.
pub struct Program {
    root: Root,
    ty: Type,
    consts: Consts,
    schema_id: u64,
    source: String,
}

impl fmt::Debug for Program {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Program")
            .field("source", &self.source)
            .field("type", &self.ty)
            .finish_non_exhaustive()
    }
}

impl Program {
    /// Compiles an expression whose result is a scalar (lists are refused).
    pub fn compile(source: &str, schema: &Schema) -> Result<Program, CompileError> {
        let (code, mut consts) = build(source, schema)?;
        let (root, ty) = match code {
            Code::Bool(c) => (Root::Bool(c.into_fn()), Type::Bool),
            Code::Int(c) => (Root::Int(c.into_fn()), Type::Int),
            Code::Dec(c, s) => (Root::Dec(c.into_fn(), s), Type::Decimal { scale: s }),
            Code::Date(c) => (Root::Date(c.into_fn()), Type::Date),
            Code::Str(c) => {
                // Compile the constant into the pool like the compiler would.
                let f: StrFn = match c {
                    Cs::K(k) => {
                        let mut v = consts.into_vec();
                        let i = v.len();
                        v.push(k);
                        consts = v.into_boxed_slice();
                        Box::new(move |e: &Env<'_>| {
                            e.consts
                                .get(i)
                                .map(|s| Cow::Borrowed(&**s))
                                .ok_or_else(schema_mismatch)
                        })
                    }
                    Cs::Field(f, sp) => {
                        Box::new(move |e: &Env<'_>| e.rec.read_str(f, sp).map(Cow::Borrowed))
                    }
                    Cs::F(f) => f,
                };
                (Root::Str(f), Type::String)
            }
            Code::Null => (Root::Null, Type::Optional(Box::new(Type::Bool))),
            Code::List(_) => {
                return Err(CompileError::new(
                    ErrorCode::Unsupported,
                    "an expression's result cannot be a list",
                    Span::new(0, source.len()),
                )
                .with_source(source))
            }
        };
        Ok(Program {
            root,
            ty,
            consts,
            schema_id: schema.id(),
            source: source.to_string(),
        })
    }

    /// The static result type.
    pub fn result_type(&self) -> &Type {
        &self.ty
    }

    /// The source text it was compiled from.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Evaluates to a [`Value`] (allocates for strings; use typed accessors in hot loops).
    pub fn eval(&self, rec: &Record) -> Result<Value, EvalError> {
        if rec.schema.id != self.schema_id {
            return Err(schema_mismatch());
        }
        let e = env(rec, &self.consts);
        Ok(match &self.root {
            Root::Bool(f) => Value::Bool(f(&e)?),
            Root::Int(f) => Value::Int(f(&e)?),
            Root::Dec(f, s) => {
                let m = f(&e)?;
                Value::Decimal(
                    mantissa_to_decimal(m, *s)
                        .ok_or_else(|| EvalError::new(EvalErrorKind::Overflow, Span::default()))?,
                )
            }
            Root::Str(f) => Value::String(f(&e)?.into_owned()),
            Root::Date(f) => Value::Date(f(&e)?),
            Root::Null => Value::Null,
        })
    }

    /// Evaluates an int program without building a [`Value`].
    #[inline]
    pub fn eval_int(&self, rec: &Record) -> Option<Result<i64, EvalError>> {
        match &self.root {
            Root::Int(f) if rec.schema.id == self.schema_id => Some(f(&env(rec, &self.consts))),
            _ => None,
        }
    }

    /// Evaluates a decimal program to its mantissa at the static scale, without a
    /// [`Value`] (e.g. fen for scale 2).
    #[inline]
    pub fn eval_decimal_units(&self, rec: &Record) -> Option<Result<i128, EvalError>> {
        match &self.root {
            Root::Dec(f, _) if rec.schema.id == self.schema_id => Some(f(&env(rec, &self.consts))),
            _ => None,
        }
    }
}
