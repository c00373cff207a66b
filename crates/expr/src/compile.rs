//! Type checker and code generator: walks the AST once with the schema, resolves every
//! field to a slot, checks types, folds constants and emits closures specialised per type
//! and per operand shape (field-vs-constant comparisons read the slot and compare inline).

use std::borrow::Cow;
use std::cmp::Ordering;
use std::collections::HashSet;

use chrono::{Days, NaiveDate};

use crate::error::{CompileError, ErrorCode, EvalError, EvalErrorKind, Span};
use crate::syntax::{BinOp, Expr, ExprKind};
use crate::types::{internal, FieldRef, Record, Scalar, SchemaInner, Shape, Type, MAX_SCALE};

/// Deepest nesting of `exists`/`all` macros (each binds one variable).
pub(crate) const MAX_LOCALS: usize = 4;

/// A macro variable's current value.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Local<'a> {
    None,
    Bool(bool),
    Int(i64),
    Dec(i128),
    Str(&'a str),
    Date(NaiveDate),
}

/// What compiled code sees: the record, the program's string constants, macro variables.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Env<'a> {
    pub rec: &'a Record,
    pub consts: &'a [Box<str>],
    pub locals: [Local<'a>; MAX_LOCALS],
}

impl<'a> Env<'a> {
    fn with<'b>(&self, k: usize, v: Local<'b>) -> Env<'b>
    where
        'a: 'b,
    {
        let mut e: Env<'b> = *self;
        if let Some(slot) = e.locals.get_mut(k) {
            *slot = v;
        }
        e
    }
}

pub(crate) type R<T> = Result<T, EvalError>;
/// A compiled expression producing a `T`.
pub(crate) type Fx<T> = Box<dyn for<'a> Fn(&Env<'a>) -> R<T> + Send + Sync>;
/// A compiled string expression; borrows from the record or the constants when it can.
pub(crate) type StrFn = Box<dyn for<'a> Fn(&Env<'a>) -> R<Cow<'a, str>> + Send + Sync>;

fn fx<T, F>(f: F) -> Fx<T>
where
    F: for<'a> Fn(&Env<'a>) -> R<T> + Send + Sync + 'static,
{
    Box::new(f)
}

fn fs<F>(f: F) -> StrFn
where
    F: for<'a> Fn(&Env<'a>) -> R<Cow<'a, str>> + Send + Sync + 'static,
{
    Box::new(f)
}

#[cold]
#[inline(never)]
fn overflow(span: Span) -> EvalError {
    EvalError::new(EvalErrorKind::Overflow, span)
}

#[cold]
#[inline(never)]
fn div_zero(span: Span) -> EvalError {
    EvalError::new(EvalErrorKind::DivisionByZero, span)
}

/// Scalars that live in typed slots and compare with `Ord`.
pub(crate) trait Prim: Copy + Ord + Send + Sync + 'static {
    fn read(rec: &Record, f: FieldRef, sp: Span) -> R<Self>;
    fn local(self) -> Local<'static>;
    fn from_local(l: &Local<'_>) -> Option<Self>;
}

macro_rules! prim {
    ($t:ty, $read:ident, $var:ident) => {
        impl Prim for $t {
            #[inline(always)]
            fn read(rec: &Record, f: FieldRef, sp: Span) -> R<Self> {
                rec.$read(f, sp)
            }
            #[inline(always)]
            fn local(self) -> Local<'static> {
                Local::$var(self)
            }
            #[inline(always)]
            fn from_local(l: &Local<'_>) -> Option<Self> {
                match l {
                    Local::$var(v) => Some(*v),
                    _ => None,
                }
            }
        }
    };
}
prim!(bool, read_bool, Bool);
prim!(i64, read_int, Int);
prim!(i128, read_dec, Dec);
prim!(NaiveDate, read_date, Date);

/// A compiled primitive expression: a constant, a field read, or a closure.
pub(crate) enum Cp<T: Prim> {
    K(T),
    Field(FieldRef, Span),
    F(Fx<T>),
}

impl<T: Prim> Cp<T> {
    pub(crate) fn into_fn(self) -> Fx<T> {
        match self {
            Cp::K(k) => fx(move |_| Ok(k)),
            Cp::Field(f, sp) => fx(move |e| T::read(e.rec, f, sp)),
            Cp::F(f) => f,
        }
    }
}

/// A compiled string expression.
pub(crate) enum Cs {
    K(Box<str>),
    Field(FieldRef, Span),
    F(StrFn),
}

pub(crate) enum ListRepr {
    Field(FieldRef, Span),
    Lit(Vec<Code>),
}

pub(crate) struct Cl {
    elem: Scalar,
    repr: ListRepr,
}

/// A typed compiled expression.
pub(crate) enum Code {
    Bool(Cp<bool>),
    Int(Cp<i64>),
    /// Mantissa and static scale.
    Dec(Cp<i128>, u32),
    Str(Cs),
    Date(Cp<NaiveDate>),
    List(Cl),
    Null,
}

impl Code {
    fn ty(&self) -> Type {
        match self {
            Code::Bool(_) => Type::Bool,
            Code::Int(_) => Type::Int,
            Code::Dec(_, s) => Type::Decimal { scale: *s },
            Code::Str(_) => Type::String,
            Code::Date(_) => Type::Date,
            Code::List(l) => Type::List(Box::new(l.elem.to_type())),
            Code::Null => Type::Optional(Box::new(Type::Bool)),
        }
    }

    fn ty_name(&self) -> String {
        match self {
            Code::Null => "null".to_string(),
            Code::Dec(..) => "decimal".to_string(),
            other => other.ty().to_string(),
        }
    }
}

// ---- relations ---------------------------------------------------------------------

trait Rel: Send + Sync + 'static {
    fn test(o: Ordering) -> bool;
}
struct RLt;
struct RLe;
struct RGt;
struct RGe;
struct REq;
struct RNe;
impl Rel for RLt {
    #[inline(always)]
    fn test(o: Ordering) -> bool {
        o == Ordering::Less
    }
}
impl Rel for RLe {
    #[inline(always)]
    fn test(o: Ordering) -> bool {
        o != Ordering::Greater
    }
}
impl Rel for RGt {
    #[inline(always)]
    fn test(o: Ordering) -> bool {
        o == Ordering::Greater
    }
}
impl Rel for RGe {
    #[inline(always)]
    fn test(o: Ordering) -> bool {
        o != Ordering::Less
    }
}
impl Rel for REq {
    #[inline(always)]
    fn test(o: Ordering) -> bool {
        o == Ordering::Equal
    }
}
impl Rel for RNe {
    #[inline(always)]
    fn test(o: Ordering) -> bool {
        o != Ordering::Equal
    }
}

fn rel_test(op: BinOp, o: Ordering) -> bool {
    match op {
        BinOp::Lt => RLt::test(o),
        BinOp::Le => RLe::test(o),
        BinOp::Gt => RGt::test(o),
        BinOp::Ge => RGe::test(o),
        BinOp::Eq => REq::test(o),
        _ => RNe::test(o),
    }
}

fn flip(op: BinOp) -> BinOp {
    match op {
        BinOp::Lt => BinOp::Gt,
        BinOp::Le => BinOp::Ge,
        BinOp::Gt => BinOp::Lt,
        BinOp::Ge => BinOp::Le,
        other => other,
    }
}

macro_rules! by_rel {
    ($op:expr, $func:ident ($($arg:expr),*)) => {
        match $op {
            BinOp::Lt => $func::<RLt>($($arg),*),
            BinOp::Le => $func::<RLe>($($arg),*),
            BinOp::Gt => $func::<RGt>($($arg),*),
            BinOp::Ge => $func::<RGe>($($arg),*),
            BinOp::Eq => $func::<REq>($($arg),*),
            _ => $func::<RNe>($($arg),*),
        }
    };
    ($op:expr, $func:ident :: <$($g:ty),*> ($($arg:expr),*)) => {
        match $op {
            BinOp::Lt => $func::<RLt, $($g),*>($($arg),*),
            BinOp::Le => $func::<RLe, $($g),*>($($arg),*),
            BinOp::Gt => $func::<RGt, $($g),*>($($arg),*),
            BinOp::Ge => $func::<RGe, $($g),*>($($arg),*),
            BinOp::Eq => $func::<REq, $($g),*>($($arg),*),
            _ => $func::<RNe, $($g),*>($($arg),*),
        }
    };
}

fn cmp_fk<O: Rel, T: Prim>(f: FieldRef, sp: Span, k: T) -> Fx<bool> {
    fx(move |e| Ok(O::test(T::read(e.rec, f, sp)?.cmp(&k))))
}

fn cmp_ff<O: Rel, T: Prim>(a: Fx<T>, b: Fx<T>) -> Fx<bool> {
    fx(move |e| Ok(O::test(a(e)?.cmp(&b(e)?))))
}

fn str_fk<O: Rel>(f: FieldRef, sp: Span, k: Box<str>) -> Fx<bool> {
    fx(move |e| Ok(O::test(e.rec.read_str(f, sp)?.cmp(&*k))))
}

fn str_ff<O: Rel>(a: StrFn, b: StrFn) -> Fx<bool> {
    fx(move |e| Ok(O::test(a(e)?.as_ref().cmp(b(e)?.as_ref()))))
}

fn compare_prim<T: Prim>(op: BinOp, a: Cp<T>, b: Cp<T>) -> Cp<bool> {
    match (a, b) {
        (Cp::K(x), Cp::K(y)) => Cp::K(rel_test(op, x.cmp(&y))),
        (Cp::Field(f, sp), Cp::K(k)) => Cp::F(by_rel!(op, cmp_fk::<T>(f, sp, k))),
        (Cp::K(k), Cp::Field(f, sp)) => Cp::F(by_rel!(flip(op), cmp_fk::<T>(f, sp, k))),
        (a, b) => Cp::F(by_rel!(op, cmp_ff::<T>(a.into_fn(), b.into_fn()))),
    }
}

// ---- arithmetic --------------------------------------------------------------------

trait Arith<T>: Send + Sync + 'static {
    const ZERO_CHECK: bool;
    fn apply(a: T, b: T) -> Option<T>;
}
struct OAdd;
struct OSub;
struct OMul;
struct ODiv;
struct ORem;
macro_rules! arith_impl {
    ($t:ty) => {
        impl Arith<$t> for OAdd {
            const ZERO_CHECK: bool = false;
            #[inline(always)]
            fn apply(a: $t, b: $t) -> Option<$t> {
                a.checked_add(b)
            }
        }
        impl Arith<$t> for OSub {
            const ZERO_CHECK: bool = false;
            #[inline(always)]
            fn apply(a: $t, b: $t) -> Option<$t> {
                a.checked_sub(b)
            }
        }
        impl Arith<$t> for OMul {
            const ZERO_CHECK: bool = false;
            #[inline(always)]
            fn apply(a: $t, b: $t) -> Option<$t> {
                a.checked_mul(b)
            }
        }
        impl Arith<$t> for ODiv {
            const ZERO_CHECK: bool = true;
            #[inline(always)]
            fn apply(a: $t, b: $t) -> Option<$t> {
                a.checked_div(b)
            }
        }
        impl Arith<$t> for ORem {
            const ZERO_CHECK: bool = true;
            #[inline(always)]
            fn apply(a: $t, b: $t) -> Option<$t> {
                a.checked_rem(b)
            }
        }
    };
}
arith_impl!(i64);
arith_impl!(i128);

trait Zero {
    fn is_zero(&self) -> bool;
}
impl Zero for i64 {
    fn is_zero(&self) -> bool {
        *self == 0
    }
}
impl Zero for i128 {
    fn is_zero(&self) -> bool {
        *self == 0
    }
}

fn arith_ff<O: Arith<T>, T: Prim + Zero>(a: Fx<T>, b: Fx<T>, sp: Span) -> Fx<T> {
    fx(move |e| {
        let x = a(e)?;
        let y = b(e)?;
        if O::ZERO_CHECK && y.is_zero() {
            return Err(div_zero(sp));
        }
        O::apply(x, y).ok_or_else(|| overflow(sp))
    })
}

fn arith<O: Arith<T>, T: Prim + Zero>(a: Cp<T>, b: Cp<T>, sp: Span) -> Cp<T> {
    if let (Cp::K(x), Cp::K(y)) = (&a, &b) {
        if !(O::ZERO_CHECK && y.is_zero()) {
            if let Some(v) = O::apply(*x, *y) {
                return Cp::K(v);
            }
        }
    }
    Cp::F(arith_ff::<O, T>(a.into_fn(), b.into_fn(), sp))
}

/// Decimal division: `a` at scale `sa` divided by `b` at scale `sb`, result at scale
/// `rs`, rounded half to even. `factor` is `10^(rs + sb - sa)`.
#[inline]
fn dec_div(a: i128, b: i128, factor: i128, sp: Span) -> R<i128> {
    if b == 0 {
        return Err(div_zero(sp));
    }
    let n = a.checked_mul(factor).ok_or_else(|| overflow(sp))?;
    let q = n.checked_div(b).ok_or_else(|| overflow(sp))?;
    let r = n.checked_rem(b).ok_or_else(|| overflow(sp))?;
    if r == 0 {
        return Ok(q);
    }
    let twice = r.unsigned_abs().saturating_mul(2);
    let babs = b.unsigned_abs();
    let away = twice > babs || (twice == babs && q % 2 != 0);
    if away {
        let step = if (n < 0) == (b < 0) { 1 } else { -1 };
        q.checked_add(step).ok_or_else(|| overflow(sp))
    } else {
        Ok(q)
    }
}

fn pow10(n: u32) -> Option<i128> {
    10i128.checked_pow(n)
}

/// Formats a mantissa at a scale: (5000000, 2) → "50000.00".
pub(crate) fn format_dec(m: i128, scale: u32) -> String {
    let digits = m.unsigned_abs().to_string();
    let sign = if m < 0 { "-" } else { "" };
    if scale == 0 {
        return format!("{sign}{digits}");
    }
    let s = scale as usize;
    let padded = if digits.len() <= s {
        format!("{}{}", "0".repeat(s + 1 - digits.len()), digits)
    } else {
        digits
    };
    let (i, f) = padded.split_at(padded.len() - s);
    format!("{sign}{i}.{f}")
}

/// Parses `-?digits(.digits)?` exactly.
pub(crate) fn parse_dec(s: &str) -> Option<(i128, u32)> {
    let (neg, body) = match s.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let (ip, fp) = match body.split_once('.') {
        Some((i, f)) => (i, f),
        None => (body, ""),
    };
    if (ip.is_empty() && fp.is_empty())
        || !ip.bytes().all(|b| b.is_ascii_digit())
        || !fp.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let scale = u32::try_from(fp.len()).ok()?;
    if scale > MAX_SCALE {
        return None;
    }
    let m: i128 = format!("{ip}{fp}").parse().ok()?;
    Some((if neg { -m } else { m }, scale))
}

// ---- membership and quantifiers -------------------------------------------------------

/// Evaluated list literal elements, per element kind.
enum ElemFns {
    Bool(Vec<Fx<bool>>),
    Int(Vec<Fx<i64>>),
    Dec(Vec<Fx<i128>>),
    Str(Vec<StrFn>),
    Date(Vec<Fx<NaiveDate>>),
}

impl ElemFns {
    /// A closure that evaluates every element for its errors only.
    fn evaluate_all(self) -> Fx<()> {
        fn all<T: Prim>(v: Vec<Fx<T>>) -> Fx<()> {
            fx(move |e| v.iter().try_for_each(|f| f(e).map(|_| ())))
        }
        match self {
            ElemFns::Bool(v) => all(v),
            ElemFns::Int(v) => all(v),
            ElemFns::Dec(v) => all(v),
            ElemFns::Date(v) => all(v),
            ElemFns::Str(v) => fx(move |e| v.iter().try_for_each(|f| f(e).map(|_| ()))),
        }
    }
}

fn is_const(c: &Code) -> bool {
    matches!(
        c,
        Code::Int(Cp::K(_))
            | Code::Dec(Cp::K(_), _)
            | Code::Bool(Cp::K(_))
            | Code::Date(Cp::K(_))
            | Code::Str(Cs::K(_))
    )
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Quant {
    Exists,
    All,
    ExistsOne,
}

/// Folds predicate results as CEL does: `exists` is an `||` chain and `all` an `&&` chain
/// (an error is absorbed by a decisive result), `exists_one` is strict.
struct QState {
    q: Quant,
    err: Option<EvalError>,
    count: u32,
}

impl QState {
    fn new(q: Quant) -> Self {
        QState {
            q,
            err: None,
            count: 0,
        }
    }

    #[inline]
    fn feed(&mut self, r: R<bool>) -> Option<R<bool>> {
        match (self.q, r) {
            (Quant::Exists, Ok(true)) => Some(Ok(true)),
            (Quant::All, Ok(false)) => Some(Ok(false)),
            (Quant::ExistsOne, Ok(true)) => {
                self.count += 1;
                None
            }
            (Quant::ExistsOne, Err(e)) => Some(Err(e)),
            (_, Ok(_)) => None,
            (_, Err(e)) => {
                if self.err.is_none() {
                    self.err = Some(e);
                }
                None
            }
        }
    }

    fn finish(self) -> R<bool> {
        if let Some(e) = self.err {
            return Err(e);
        }
        Ok(match self.q {
            Quant::Exists => false,
            Quant::All => true,
            Quant::ExistsOne => self.count == 1,
        })
    }
}

fn quant_field<T: Prim>(
    q: Quant,
    k: usize,
    pred: Fx<bool>,
    read: for<'a> fn(&'a Record, FieldRef, Span) -> R<&'a [T]>,
    f: FieldRef,
    sp: Span,
) -> Fx<bool> {
    fx(move |e| {
        let xs = read(e.rec, f, sp)?;
        let mut st = QState::new(q);
        for x in xs {
            if let Some(r) = st.feed(pred(&e.with(k, x.local()))) {
                return r;
            }
        }
        st.finish()
    })
}

fn quant_lit<T: Prim>(q: Quant, k: usize, pred: Fx<bool>, items: Vec<Fx<T>>) -> Fx<bool> {
    fx(move |e| {
        let mut vals = [Local::None; 16];
        let mut heap = Vec::new();
        for (i, it) in items.iter().enumerate() {
            let v = it(e)?.local();
            match vals.get_mut(i) {
                Some(s) => *s = v,
                None => heap.push(v),
            }
        }
        let mut st = QState::new(q);
        for v in vals.iter().take(items.len()).chain(heap.iter()) {
            if let Some(r) = st.feed(pred(&e.with(k, *v))) {
                return r;
            }
        }
        st.finish()
    })
}

// ---- the compiler ----------------------------------------------------------------------

pub(crate) struct Compiler<'s> {
    schema: &'s SchemaInner,
    pub consts: Vec<Box<str>>,
    locals: Vec<(String, Scalar)>,
}

fn err(code: ErrorCode, msg: impl Into<String>, span: Span) -> CompileError {
    CompileError::new(code, msg, span)
}

fn mismatch(msg: impl Into<String>, span: Span) -> CompileError {
    err(ErrorCode::TypeMismatch, msg, span)
}

/// Levenshtein distance over chars.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

pub(crate) fn suggest<'a>(
    name: &str,
    candidates: impl Iterator<Item = &'a str>,
) -> Option<&'a str> {
    let limit = (name.chars().count() / 3).max(2);
    candidates
        .map(|c| (edit_distance(name, c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

const FUNCTIONS: &[&str] = &[
    "size",
    "count",
    "sum",
    "int",
    "string",
    "decimal",
    "date",
    "days_between",
    "add_days",
    "has",
    "matches",
    "startsWith",
    "endsWith",
    "contains",
    "exists",
    "all",
    "exists_one",
];

/// Dotted path of a select chain rooted at an identifier (`app.amount`), if it is one.
fn path_of(e: &Expr) -> Option<String> {
    match &e.kind {
        ExprKind::Ident(n) => Some(n.clone()),
        ExprKind::Select(inner, f) => path_of(inner).map(|p| format!("{p}.{f}")),
        _ => None,
    }
}

fn root_ident(e: &Expr) -> Option<&str> {
    match &e.kind {
        ExprKind::Ident(n) => Some(n),
        ExprKind::Select(inner, _) => root_ident(inner),
        _ => None,
    }
}

impl<'s> Compiler<'s> {
    pub(crate) fn new(schema: &'s SchemaInner) -> Self {
        Compiler {
            schema,
            consts: Vec::new(),
            locals: Vec::new(),
        }
    }

    fn str_fn(&mut self, c: Cs) -> StrFn {
        match c {
            Cs::K(k) => {
                let i = self.consts.len();
                self.consts.push(k);
                fs(move |e| {
                    e.consts
                        .get(i)
                        .map(|s| Cow::Borrowed(&**s))
                        .ok_or_else(|| internal(Span::default()))
                })
            }
            Cs::Field(f, sp) => fs(move |e| e.rec.read_str(f, sp).map(Cow::Borrowed)),
            Cs::F(f) => f,
        }
    }

    fn local_index(&self, name: &str) -> Option<(usize, Scalar)> {
        self.locals
            .iter()
            .rposition(|(n, _)| n == name)
            .and_then(|i| self.locals.get(i).map(|(_, t)| (i, *t)))
    }

    fn local_code(k: usize, t: Scalar, sp: Span) -> Code {
        fn get<T: Prim>(k: usize, sp: Span) -> Fx<T> {
            fx(move |e| {
                e.locals
                    .get(k)
                    .and_then(T::from_local)
                    .ok_or_else(|| internal(sp))
            })
        }
        match t {
            Scalar::Bool => Code::Bool(Cp::F(get(k, sp))),
            Scalar::Int => Code::Int(Cp::F(get(k, sp))),
            Scalar::Dec(s) => Code::Dec(Cp::F(get(k, sp)), s),
            Scalar::Date => Code::Date(Cp::F(get(k, sp))),
            Scalar::Str => Code::Str(Cs::F(fs(move |e| match e.locals.get(k) {
                Some(Local::Str(s)) => Ok(Cow::Borrowed(*s)),
                _ => Err(internal(sp)),
            }))),
        }
    }

    /// Resolves a dotted path to a field, with a helpful error when it is not one.
    fn field(&self, path: &str, span: Span) -> Result<(FieldRef, Shape), CompileError> {
        if let Some(&id) = self.schema.by_name.get(path) {
            if let Some(def) = self.schema.fields.get(id as usize) {
                return Ok((
                    FieldRef {
                        id,
                        index: def.index,
                        optional: def.optional,
                    },
                    def.shape,
                ));
            }
        }
        if self.schema.objects.contains_key(path) {
            let mut members: Vec<&str> = self
                .schema
                .fields
                .iter()
                .map(|f| f.name.as_str())
                .filter(|n| n.strip_prefix(path).is_some_and(|r| r.starts_with('.')))
                .take(5)
                .collect();
            members.sort_unstable();
            return Err(err(
                ErrorCode::TypeMismatch,
                format!(
                    "`{path}` is an object, not a value; use one of its fields (e.g. {})",
                    members
                        .iter()
                        .map(|m| format!("`{m}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                span,
            ));
        }
        // A declared field followed by more selects: `app.amount.x`.
        let mut prefix = path;
        while let Some((head, _)) = prefix.rsplit_once('.') {
            if let Some(ty) = self
                .schema
                .by_name
                .get(head)
                .and_then(|&id| self.schema.fields.get(id as usize))
                .map(|d| &d.ty)
            {
                let rest = &path[head.len() + 1..];
                return Err(err(
                    ErrorCode::UnknownField,
                    format!("field `{head}` is {ty}; it has no field `{rest}`"),
                    span,
                ));
            }
            prefix = head;
        }
        let candidates = self
            .schema
            .fields
            .iter()
            .map(|f| f.name.as_str())
            .chain(self.schema.objects.keys().map(|s| s.as_str()))
            .chain(self.locals.iter().map(|(n, _)| n.as_str()));
        let msg = match suggest(path, candidates) {
            Some(s) => format!("unknown field `{path}`; did you mean `{s}`?"),
            None => format!("unknown field `{path}`"),
        };
        Err(err(ErrorCode::UnknownField, msg, span))
    }

    fn field_code(&self, path: &str, span: Span) -> Result<Code, CompileError> {
        let (f, shape) = self.field(path, span)?;
        Ok(match shape {
            Shape::One(Scalar::Bool) => Code::Bool(Cp::Field(f, span)),
            Shape::One(Scalar::Int) => Code::Int(Cp::Field(f, span)),
            Shape::One(Scalar::Dec(s)) => Code::Dec(Cp::Field(f, span), s),
            Shape::One(Scalar::Str) => Code::Str(Cs::Field(f, span)),
            Shape::One(Scalar::Date) => Code::Date(Cp::Field(f, span)),
            Shape::List(e) => Code::List(Cl {
                elem: e,
                repr: ListRepr::Field(f, span),
            }),
        })
    }

    pub(crate) fn expr(&mut self, e: &Expr) -> Result<Code, CompileError> {
        let sp = e.span;
        match &e.kind {
            ExprKind::Int(v) => Ok(Code::Int(Cp::K(*v))),
            ExprKind::Days(d) => Err(err(
                ErrorCode::Unsupported,
                format!(
                    "`{d}d` is a window length; it is only allowed as the window of count() or sum()"
                ),
                sp,
            )),
            ExprKind::Dec(m, s) => Ok(Code::Dec(Cp::K(*m), *s)),
            ExprKind::Str(s) => Ok(Code::Str(Cs::K(s.as_str().into()))),
            ExprKind::Bool(b) => Ok(Code::Bool(Cp::K(*b))),
            ExprKind::Null => Ok(Code::Null),
            ExprKind::Ident(name) => {
                if let Some((k, t)) = self.local_index(name) {
                    return Ok(Self::local_code(k, t, sp));
                }
                self.field_code(name, sp)
            }
            ExprKind::Select(..) => {
                if let Some(root) = root_ident(e) {
                    if let Some((_, t)) = self.local_index(root) {
                        return Err(mismatch(
                            format!("`{root}` is a {}; it has no fields", t.to_type()),
                            sp,
                        ));
                    }
                }
                match path_of(e) {
                    Some(p) => self.field_code(&p, sp),
                    None => Err(err(
                        ErrorCode::Unsupported,
                        "field selection is only supported on schema objects (e.g. `app.amount`)",
                        sp,
                    )),
                }
            }
            ExprKind::List(items) => self.list_lit(items, sp),
            ExprKind::Index(list, idx) => self.index(list, idx, sp),
            ExprKind::Not(inner) => match self.expr(inner)? {
                Code::Bool(Cp::K(b)) => Ok(Code::Bool(Cp::K(!b))),
                Code::Bool(Cp::Field(f, fsp)) => Ok(Code::Bool(Cp::F(fx(move |e| {
                    Ok(!e.rec.read_bool(f, fsp)?)
                })))),
                Code::Bool(Cp::F(f)) => Ok(Code::Bool(Cp::F(fx(move |e| Ok(!f(e)?))))),
                other => Err(mismatch(
                    format!("`!` needs a bool, found {}", other.ty_name()),
                    sp,
                )),
            },
            ExprKind::Neg(inner) => match self.expr(inner)? {
                Code::Int(Cp::K(v)) => match v.checked_neg() {
                    Some(n) => Ok(Code::Int(Cp::K(n))),
                    None => Ok(Code::Int(Cp::F(fx(move |_| Err(overflow(sp)))))),
                },
                Code::Int(c) => {
                    let f = c.into_fn();
                    Ok(Code::Int(Cp::F(fx(move |e| {
                        f(e)?.checked_neg().ok_or_else(|| overflow(sp))
                    }))))
                }
                Code::Dec(Cp::K(v), s) => Ok(Code::Dec(Cp::K(-v), s)),
                Code::Dec(c, s) => {
                    let f = c.into_fn();
                    Ok(Code::Dec(
                        Cp::F(fx(move |e| f(e)?.checked_neg().ok_or_else(|| overflow(sp)))),
                        s,
                    ))
                }
                other => Err(mismatch(
                    format!(
                        "unary `-` needs an int or decimal, found {}",
                        other.ty_name()
                    ),
                    sp,
                )),
            },
            ExprKind::Binary(op, a, b) => self.binary(*op, a, b, sp),
            ExprKind::Cond(c, a, b) => self.cond(c, a, b, sp),
            ExprKind::Call {
                target,
                name,
                name_span,
                args,
            } => self.call(target.as_deref(), name, *name_span, args, sp),
        }
    }

    fn bool_operand(&mut self, e: &Expr, what: &str) -> Result<Cp<bool>, CompileError> {
        match self.expr(e)? {
            Code::Bool(b) => Ok(b),
            other => Err(mismatch(
                format!("{what} needs a bool, found {}", other.ty_name()),
                e.span,
            )),
        }
    }

    fn logical(&mut self, op: BinOp, a: &Expr, b: &Expr) -> Result<Code, CompileError> {
        fn flatten<'e>(op: BinOp, e: &'e Expr, out: &mut Vec<&'e Expr>) {
            match &e.kind {
                ExprKind::Binary(o, l, r) if *o == op => {
                    flatten(op, l, out);
                    flatten(op, r, out);
                }
                _ => out.push(e),
            }
        }
        let mut parts = Vec::new();
        flatten(op, a, &mut parts);
        flatten(op, b, &mut parts);
        let is_and = op == BinOp::And;
        let what = format!("`{}`", op.symbol());
        let mut fns: Vec<Fx<bool>> = Vec::with_capacity(parts.len());
        let mut decided = false;
        for p in parts {
            // Type-check every operand even when a constant decides the result.
            match self.bool_operand(p, &what)? {
                Cp::K(k) if k == is_and => {}
                Cp::K(_) => decided = true,
                other => fns.push(other.into_fn()),
            }
        }
        if decided {
            // CEL: `false && <error>` is false, `true || <error>` is true.
            return Ok(Code::Bool(Cp::K(!is_and)));
        }
        Ok(Code::Bool(match fns.len() {
            0 => Cp::K(is_and),
            1 => match fns.pop() {
                Some(f) => Cp::F(f),
                None => Cp::K(is_and),
            },
            _ => {
                let fns = fns.into_boxed_slice();
                Cp::F(fx(move |e| {
                    let mut first_err = None;
                    for f in fns.iter() {
                        match f(e) {
                            Ok(v) if v != is_and => return Ok(v),
                            Ok(_) => {}
                            Err(x) => {
                                if first_err.is_none() {
                                    first_err = Some(x);
                                }
                            }
                        }
                    }
                    match first_err {
                        Some(x) => Err(x),
                        None => Ok(is_and),
                    }
                }))
            }
        }))
    }

    /// `x == null` / `x != null` for an optional field.
    fn null_compare(&self, op: BinOp, other: &Expr, sp: Span) -> Result<Code, CompileError> {
        if matches!(other.kind, ExprKind::Null) {
            return Ok(Code::Bool(Cp::K(op == BinOp::Eq)));
        }
        if !matches!(op, BinOp::Eq | BinOp::Ne) {
            return Err(err(
                ErrorCode::NullMisuse,
                format!("`null` cannot be used with `{}`", op.symbol()),
                sp,
            ));
        }
        let path = path_of(other).filter(|p| {
            root_ident(other).is_some_and(|r| self.local_index(r).is_none())
                && self.schema.by_name.contains_key(p.as_str())
        });
        let Some(path) = path else {
            return Err(err(
                ErrorCode::NullMisuse,
                "only an optional field can be compared with `null`",
                sp,
            ));
        };
        let (f, _) = self.field(&path, other.span)?;
        if !f.optional {
            return Err(err(
                ErrorCode::NullMisuse,
                format!("field `{path}` is not optional, so it is never null"),
                sp,
            ));
        }
        let want_present = op == BinOp::Ne;
        Ok(Code::Bool(Cp::F(fx(move |e| {
            Ok(e.rec.has(f) == want_present)
        }))))
    }

    fn binary(&mut self, op: BinOp, a: &Expr, b: &Expr, sp: Span) -> Result<Code, CompileError> {
        match op {
            BinOp::And | BinOp::Or => return self.logical(op, a, b),
            BinOp::In => return self.membership(a, b, sp),
            _ => {}
        }
        let is_rel = matches!(
            op,
            BinOp::Eq | BinOp::Ne | BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge
        );
        if is_rel {
            if matches!(a.kind, ExprKind::Null) {
                return self.null_compare(op, b, sp);
            }
            if matches!(b.kind, ExprKind::Null) {
                return self.null_compare(op, a, sp);
            }
        }
        let ca = self.expr(a)?;
        let cb = self.expr(b)?;
        if is_rel {
            self.compare(op, ca, cb, sp)
        } else {
            self.arith(op, ca, cb, sp)
        }
    }

    fn compare(&mut self, op: BinOp, a: Code, b: Code, sp: Span) -> Result<Code, CompileError> {
        let (ta, tb) = (a.ty_name(), b.ty_name());
        Ok(Code::Bool(match (a, b) {
            (Code::Bool(x), Code::Bool(y)) => compare_prim(op, x, y),
            (Code::Int(x), Code::Int(y)) => compare_prim(op, x, y),
            (Code::Date(x), Code::Date(y)) => compare_prim(op, x, y),
            (a @ (Code::Dec(..) | Code::Int(_)), b @ (Code::Dec(..) | Code::Int(_))) => {
                let (x, y, _) = self.dec_pair(a, b, sp)?;
                compare_prim(op, x, y)
            }
            (Code::Str(x), Code::Str(y)) => match (x, y) {
                (Cs::K(x), Cs::K(y)) => Cp::K(rel_test(op, x.cmp(&y))),
                (Cs::Field(f, fsp), Cs::K(k)) => Cp::F(by_rel!(op, str_fk(f, fsp, k))),
                (Cs::K(k), Cs::Field(f, fsp)) => Cp::F(by_rel!(flip(op), str_fk(f, fsp, k))),
                (x, y) => {
                    let (x, y) = (self.str_fn(x), self.str_fn(y));
                    Cp::F(by_rel!(op, str_ff(x, y)))
                }
            },
            (Code::List(_), _) | (_, Code::List(_)) => {
                return Err(err(
                    ErrorCode::Unsupported,
                    format!("lists cannot be compared with `{}`", op.symbol()),
                    sp,
                ))
            }
            _ => {
                return Err(mismatch(
                    format!("cannot compare {ta} with {tb} using `{}`", op.symbol()),
                    sp,
                ))
            }
        }))
    }

    /// Promotes ints to decimals and aligns two decimals to the larger scale.
    fn dec_pair(
        &mut self,
        a: Code,
        b: Code,
        sp: Span,
    ) -> Result<(Cp<i128>, Cp<i128>, u32), CompileError> {
        let (x, sx) = to_dec(a);
        let (y, sy) = to_dec(b);
        let s = sx.max(sy);
        Ok((align(x, sx, s, sp)?, align(y, sy, s, sp)?, s))
    }

    fn arith(&mut self, op: BinOp, a: Code, b: Code, sp: Span) -> Result<Code, CompileError> {
        let (ta, tb) = (a.ty_name(), b.ty_name());
        let sym = op.symbol();
        match (a, b) {
            (Code::Int(x), Code::Int(y)) => Ok(Code::Int(match op {
                BinOp::Add => arith::<OAdd, i64>(x, y, sp),
                BinOp::Sub => arith::<OSub, i64>(x, y, sp),
                BinOp::Mul => arith::<OMul, i64>(x, y, sp),
                BinOp::Div => arith::<ODiv, i64>(x, y, sp),
                _ => arith::<ORem, i64>(x, y, sp),
            })),
            (a @ (Code::Dec(..) | Code::Int(_)), b @ (Code::Dec(..) | Code::Int(_))) => match op {
                BinOp::Mul => {
                    let (x, sx) = to_dec(a);
                    let (y, sy) = to_dec(b);
                    let s = sx + sy;
                    if s > MAX_SCALE {
                        return Err(mismatch(
                                format!("product would have {s} decimal places; at most {MAX_SCALE} are allowed"),
                                sp,
                            ));
                    }
                    Ok(Code::Dec(arith::<OMul, i128>(x, y, sp), s))
                }
                BinOp::Div => {
                    let (x, sx) = to_dec(a);
                    let (y, sy) = to_dec(b);
                    let rs = (sx.max(sy) + DIV_EXTRA_SCALE).min(MAX_SCALE);
                    let factor = pow10(rs + sy - sx)
                        .ok_or_else(|| mismatch("decimal division scale out of range", sp))?;
                    if let (Cp::K(p), Cp::K(q)) = (&x, &y) {
                        if let Ok(v) = dec_div(*p, *q, factor, sp) {
                            return Ok(Code::Dec(Cp::K(v), rs));
                        }
                    }
                    let (x, y) = (x.into_fn(), y.into_fn());
                    Ok(Code::Dec(
                        Cp::F(fx(move |e| dec_div(x(e)?, y(e)?, factor, sp))),
                        rs,
                    ))
                }
                _ => {
                    let (x, y, s) = self.dec_pair(a, b, sp)?;
                    Ok(Code::Dec(
                        match op {
                            BinOp::Add => arith::<OAdd, i128>(x, y, sp),
                            BinOp::Sub => arith::<OSub, i128>(x, y, sp),
                            _ => arith::<ORem, i128>(x, y, sp),
                        },
                        s,
                    ))
                }
            },
            (Code::Str(x), Code::Str(y)) if op == BinOp::Add => {
                if let (Cs::K(x), Cs::K(y)) = (&x, &y) {
                    return Ok(Code::Str(Cs::K(format!("{x}{y}").into())));
                }
                let (x, y) = (self.str_fn(x), self.str_fn(y));
                Ok(Code::Str(Cs::F(fs(move |e| {
                    let a = x(e)?;
                    let b = y(e)?;
                    let mut s = String::with_capacity(a.len() + b.len());
                    s.push_str(&a);
                    s.push_str(&b);
                    Ok(Cow::Owned(s))
                }))))
            }
            (Code::Date(_), _) | (_, Code::Date(_)) => Err(mismatch(
                format!(
                    "`{sym}` is not defined on dates; use days_between(a, b) or add_days(d, n)"
                ),
                sp,
            )),
            _ => Err(mismatch(
                format!("`{sym}` is not defined for {ta} and {tb}"),
                sp,
            )),
        }
    }

    fn cond(&mut self, c: &Expr, a: &Expr, b: &Expr, sp: Span) -> Result<Code, CompileError> {
        let c = self.bool_operand(c, "the condition of `?:`")?;
        let ca = self.expr(a)?;
        let cb = self.expr(b)?;
        let (ta, tb) = (ca.ty_name(), cb.ty_name());
        fn pick<T: Prim>(c: Cp<bool>, a: Cp<T>, b: Cp<T>) -> Cp<T> {
            match c {
                Cp::K(true) => a,
                Cp::K(false) => b,
                c => {
                    let (c, a, b) = (c.into_fn(), a.into_fn(), b.into_fn());
                    Cp::F(fx(move |e| if c(e)? { a(e) } else { b(e) }))
                }
            }
        }
        Ok(match (ca, cb) {
            (Code::Bool(x), Code::Bool(y)) => Code::Bool(pick(c, x, y)),
            (Code::Int(x), Code::Int(y)) => Code::Int(pick(c, x, y)),
            (Code::Date(x), Code::Date(y)) => Code::Date(pick(c, x, y)),
            (x @ (Code::Dec(..) | Code::Int(_)), y @ (Code::Dec(..) | Code::Int(_))) => {
                let (x, y, s) = self.dec_pair(x, y, sp)?;
                Code::Dec(pick(c, x, y), s)
            }
            (Code::Str(x), Code::Str(y)) => match c {
                Cp::K(true) => Code::Str(x),
                Cp::K(false) => Code::Str(y),
                c => {
                    let (c, x, y) = (c.into_fn(), self.str_fn(x), self.str_fn(y));
                    Code::Str(Cs::F(fs(move |e| if c(e)? { x(e) } else { y(e) })))
                }
            },
            _ => {
                return Err(mismatch(
                    format!("the branches of `?:` must have the same type, found {ta} and {tb}"),
                    sp,
                ))
            }
        })
    }

    fn list_lit(&mut self, items: &[Expr], sp: Span) -> Result<Code, CompileError> {
        if items.is_empty() {
            return Err(mismatch(
                "an empty list literal has no element type; remove the clause or list values",
                sp,
            ));
        }
        let mut codes = Vec::with_capacity(items.len());
        for it in items {
            codes.push(self.expr(it)?);
        }
        // Element type: all the same scalar kind; ints mix into decimals.
        let mut elem: Option<Scalar> = None;
        for (c, it) in codes.iter().zip(items) {
            let s = match c {
                Code::Bool(_) => Scalar::Bool,
                Code::Int(_) => Scalar::Int,
                Code::Dec(_, s) => Scalar::Dec(*s),
                Code::Str(_) => Scalar::Str,
                Code::Date(_) => Scalar::Date,
                Code::List(_) | Code::Null => {
                    return Err(err(
                        ErrorCode::Unsupported,
                        format!("list elements must be scalars, found {}", c.ty_name()),
                        it.span,
                    ))
                }
            };
            elem = Some(match (elem, s) {
                (None, s) => s,
                (Some(a), b) if a == b => a,
                (Some(Scalar::Int), Scalar::Dec(x)) | (Some(Scalar::Dec(x)), Scalar::Int) => {
                    Scalar::Dec(x)
                }
                (Some(Scalar::Dec(x)), Scalar::Dec(y)) => Scalar::Dec(x.max(y)),
                (Some(a), b) => {
                    return Err(mismatch(
                        format!(
                            "list elements must share one type, found {} and {}",
                            a.to_type(),
                            b.to_type()
                        ),
                        it.span,
                    ))
                }
            });
        }
        let elem = elem.unwrap_or(Scalar::Int);
        if let Scalar::Dec(s) = elem {
            let mut aligned = Vec::with_capacity(codes.len());
            for c in codes {
                let (x, sx) = to_dec(c);
                aligned.push(Code::Dec(align(x, sx, s, sp)?, s));
            }
            codes = aligned;
        }
        Ok(Code::List(Cl {
            elem,
            repr: ListRepr::Lit(codes),
        }))
    }

    fn elem_fns(&mut self, codes: Vec<Code>) -> ElemFns {
        let mut out = match codes.first() {
            Some(Code::Bool(_)) => ElemFns::Bool(Vec::new()),
            Some(Code::Dec(..)) => ElemFns::Dec(Vec::new()),
            Some(Code::Str(_)) => ElemFns::Str(Vec::new()),
            Some(Code::Date(_)) => ElemFns::Date(Vec::new()),
            _ => ElemFns::Int(Vec::new()),
        };
        for c in codes {
            match (&mut out, c) {
                (ElemFns::Bool(v), Code::Bool(c)) => v.push(c.into_fn()),
                (ElemFns::Int(v), Code::Int(c)) => v.push(c.into_fn()),
                (ElemFns::Dec(v), Code::Dec(c, _)) => v.push(c.into_fn()),
                (ElemFns::Date(v), Code::Date(c)) => v.push(c.into_fn()),
                (ElemFns::Str(v), Code::Str(c)) => {
                    let f = self.str_fn(c);
                    v.push(f);
                }
                _ => {}
            }
        }
        out
    }

    fn membership(&mut self, a: &Expr, b: &Expr, sp: Span) -> Result<Code, CompileError> {
        let x = self.expr(a)?;
        let list = match self.expr(b)? {
            Code::List(l) => l,
            other => {
                return Err(mismatch(
                    format!(
                        "the right side of `in` must be a list, found {}",
                        other.ty_name()
                    ),
                    b.span,
                ))
            }
        };
        let xt = x.ty_name();
        let bad = || {
            mismatch(
                format!(
                    "cannot look for {xt} in a {}",
                    Type::List(Box::new(list.elem.to_type()))
                ),
                sp,
            )
        };
        // Bring x to the element type (ints to decimals at the list's scale).
        let x = match (x, list.elem) {
            (x @ (Code::Int(_) | Code::Dec(..)), Scalar::Dec(ls)) => {
                let (c, xs) = to_dec(x);
                if xs > ls {
                    // A value with more decimals than the list can only match if its
                    // extra digits are zero.
                    if let ListRepr::Field(f, fsp) = list.repr {
                        let factor = pow10(xs - ls).unwrap_or(1);
                        let c = c.into_fn();
                        return Ok(Code::Bool(Cp::F(fx(move |e| {
                            let v = c(e)?;
                            let xs = e.rec.read_dec_list(f, fsp)?;
                            Ok(v % factor == 0 && xs.contains(&(v / factor)))
                        }))));
                    }
                    // A literal list is realigned to the value's scale instead.
                    if let ListRepr::Lit(codes) = list.repr {
                        let mut aligned = Vec::with_capacity(codes.len());
                        for el in codes {
                            let (el, es) = to_dec(el);
                            aligned.push(Code::Dec(align(el, es, xs, sp)?, xs));
                        }
                        return self.in_lit(Code::Dec(c, xs), aligned);
                    }
                    return Err(bad());
                }
                Code::Dec(align(c, xs, ls, sp)?, ls)
            }
            (x @ Code::Int(_), Scalar::Int)
            | (x @ Code::Bool(_), Scalar::Bool)
            | (x @ Code::Str(_), Scalar::Str)
            | (x @ Code::Date(_), Scalar::Date) => x,
            _ => return Err(bad()),
        };
        match list.repr {
            ListRepr::Field(f, fsp) => Ok(Code::Bool(Cp::F(match x {
                Code::Int(c) => in_field(c.into_fn(), Record::read_int_list, f, fsp),
                Code::Dec(c, _) => in_field(c.into_fn(), Record::read_dec_list, f, fsp),
                Code::Bool(c) => in_field(c.into_fn(), Record::read_bool_list, f, fsp),
                Code::Date(c) => in_field(c.into_fn(), Record::read_date_list, f, fsp),
                Code::Str(c) => {
                    let c = self.str_fn(c);
                    fx(move |e| {
                        let v = c(e)?;
                        Ok(e.rec.read_str_list(f, fsp)?.iter().any(|s| *s == *v))
                    })
                }
                _ => return Err(bad()),
            }))),
            ListRepr::Lit(codes) => self.in_lit(x, codes),
        }
    }

    fn in_lit(&mut self, x: Code, codes: Vec<Code>) -> Result<Code, CompileError> {
        // All-constant lists become a captured set.
        let all_const = codes.iter().all(is_const);
        if all_const {
            return Ok(Code::Bool(match x {
                Code::Int(c) => {
                    let set: Vec<i64> = codes
                        .into_iter()
                        .filter_map(|c| match c {
                            Code::Int(Cp::K(k)) => Some(k),
                            _ => None,
                        })
                        .collect();
                    in_consts(c, set)
                }
                Code::Dec(c, _) => {
                    let set: Vec<i128> = codes
                        .into_iter()
                        .filter_map(|c| match c {
                            Code::Dec(Cp::K(k), _) => Some(k),
                            _ => None,
                        })
                        .collect();
                    in_consts(c, set)
                }
                Code::Bool(c) => {
                    let set: Vec<bool> = codes
                        .into_iter()
                        .filter_map(|c| match c {
                            Code::Bool(Cp::K(k)) => Some(k),
                            _ => None,
                        })
                        .collect();
                    in_consts(c, set)
                }
                Code::Date(c) => {
                    let set: Vec<NaiveDate> = codes
                        .into_iter()
                        .filter_map(|c| match c {
                            Code::Date(Cp::K(k)) => Some(k),
                            _ => None,
                        })
                        .collect();
                    in_consts(c, set)
                }
                Code::Str(c) => {
                    let set: Vec<Box<str>> = codes
                        .into_iter()
                        .filter_map(|c| match c {
                            Code::Str(Cs::K(k)) => Some(k),
                            _ => None,
                        })
                        .collect();
                    match c {
                        Cs::K(k) => Cp::K(set.contains(&k)),
                        Cs::Field(f, fsp) if set.len() > 16 => {
                            let set: HashSet<Box<str>> = set.into_iter().collect();
                            Cp::F(fx(move |e| Ok(set.contains(e.rec.read_str(f, fsp)?))))
                        }
                        Cs::Field(f, fsp) => {
                            let set = set.into_boxed_slice();
                            Cp::F(fx(move |e| {
                                let v = e.rec.read_str(f, fsp)?;
                                Ok(set.iter().any(|s| **s == *v))
                            }))
                        }
                        c => {
                            let c = self.str_fn(c);
                            let set: HashSet<Box<str>> = set.into_iter().collect();
                            Cp::F(fx(move |e| Ok(set.contains(c(e)?.as_ref()))))
                        }
                    }
                }
                _ => Cp::K(false),
            }));
        }
        // Dynamic elements: evaluate x and every element (as CEL builds the list), then test.
        let elems = self.elem_fns(codes);
        Ok(Code::Bool(Cp::F(match (x, elems) {
            (Code::Int(c), ElemFns::Int(v)) => in_dyn(c.into_fn(), v),
            (Code::Dec(c, _), ElemFns::Dec(v)) => in_dyn(c.into_fn(), v),
            (Code::Bool(c), ElemFns::Bool(v)) => in_dyn(c.into_fn(), v),
            (Code::Date(c), ElemFns::Date(v)) => in_dyn(c.into_fn(), v),
            (Code::Str(c), ElemFns::Str(v)) => {
                let c = self.str_fn(c);
                fx(move |e| {
                    let x = c(e)?;
                    let mut found = false;
                    for f in &v {
                        found |= *f(e)? == *x;
                    }
                    Ok(found)
                })
            }
            _ => fx(|_| Ok(false)),
        })))
    }

    fn index(&mut self, list: &Expr, idx: &Expr, sp: Span) -> Result<Code, CompileError> {
        let l = match self.expr(list)? {
            Code::List(l) => l,
            other => {
                return Err(mismatch(
                    format!("only lists can be indexed, found {}", other.ty_name()),
                    list.span,
                ))
            }
        };
        let i = match self.expr(idx)? {
            Code::Int(i) => i.into_fn(),
            other => {
                return Err(mismatch(
                    format!("a list index must be an int, found {}", other.ty_name()),
                    idx.span,
                ))
            }
        };
        let ListRepr::Field(f, fsp) = l.repr else {
            return Err(err(
                ErrorCode::Unsupported,
                "indexing a list literal is not supported",
                sp,
            ));
        };
        fn at<T: Prim>(
            read: for<'a> fn(&'a Record, FieldRef, Span) -> R<&'a [T]>,
            f: FieldRef,
            fsp: Span,
            i: Fx<i64>,
            sp: Span,
        ) -> Cp<T> {
            Cp::F(fx(move |e| {
                let xs = read(e.rec, f, fsp)?;
                let k = i(e)?;
                usize::try_from(k)
                    .ok()
                    .and_then(|k| xs.get(k))
                    .copied()
                    .ok_or_else(|| EvalError::new(EvalErrorKind::IndexOutOfRange, sp))
            }))
        }
        Ok(match l.elem {
            Scalar::Bool => Code::Bool(at(Record::read_bool_list, f, fsp, i, sp)),
            Scalar::Int => Code::Int(at(Record::read_int_list, f, fsp, i, sp)),
            Scalar::Dec(s) => Code::Dec(at(Record::read_dec_list, f, fsp, i, sp), s),
            Scalar::Date => Code::Date(at(Record::read_date_list, f, fsp, i, sp)),
            Scalar::Str => Code::Str(Cs::F(fs(move |e| {
                let xs = e.rec.read_str_list(f, fsp)?;
                let k = i(e)?;
                usize::try_from(k)
                    .ok()
                    .and_then(|k| xs.get(k))
                    .map(|s| Cow::Borrowed(s.as_str()))
                    .ok_or_else(|| EvalError::new(EvalErrorKind::IndexOutOfRange, sp))
            }))),
        })
    }

    fn arity(name: &str, args: &[Expr], n: usize, sp: Span) -> Result<(), CompileError> {
        if args.len() != n {
            return Err(err(
                ErrorCode::Arity,
                format!(
                    "`{name}` takes {n} argument{}, found {}",
                    if n == 1 { "" } else { "s" },
                    args.len()
                ),
                sp,
            ));
        }
        Ok(())
    }

    fn call(
        &mut self,
        target: Option<&Expr>,
        name: &str,
        name_span: Span,
        args: &[Expr],
        sp: Span,
    ) -> Result<Code, CompileError> {
        // Receiver-style calls are the same functions with the receiver first, except the
        // macros, whose first argument is a variable name.
        if let Some(t) = target {
            if matches!(name, "exists" | "all" | "exists_one") {
                return self.quantifier(t, name, args, sp);
            }
            if !matches!(
                name,
                "startsWith" | "endsWith" | "contains" | "matches" | "size"
            ) {
                return Err(self.unknown_function(name, name_span, true));
            }
        }
        if target.is_none() {
            if let Some(agg) = crate::window::recognise(name, args, sp)? {
                let what = args.first().map_or(sp, |a| a.span);
                crate::window::check(&self.schema.windows, &agg, what)?;
                let path = agg.field_name();
                if !self.schema.by_name.contains_key(&path) {
                    return Err(err(
                        ErrorCode::UnknownField,
                        format!(
                            "`{agg}` has no slot in this schema (declare it with Schema::with_aggregates)"
                        ),
                        sp,
                    ));
                }
                return self.field_code(&path, sp);
            }
        }
        let all: Vec<&Expr> = target.into_iter().chain(args.iter()).collect();
        let all_owned: Vec<Expr> = all.iter().map(|e| (*e).clone()).collect();
        let args = all_owned.as_slice();
        match name {
            "has" => {
                Self::arity(name, args, 1, sp)?;
                let a = &args[0];
                let path = path_of(a)
                    .filter(|_| matches!(a.kind, ExprKind::Select(..)))
                    .ok_or_else(|| {
                        err(
                            ErrorCode::TypeMismatch,
                            "has() takes a field path such as `has(app.co_borrower)`",
                            a.span,
                        )
                    })?;
                let (f, _) = self.field(&path, a.span)?;
                Ok(Code::Bool(Cp::F(fx(move |e| Ok(e.rec.has(f))))))
            }
            "size" => {
                Self::arity(name, args, 1, sp)?;
                match self.expr(&args[0])? {
                    Code::Str(Cs::K(k)) => Ok(Code::Int(Cp::K(char_count(&k)))),
                    Code::Str(Cs::Field(f, fsp)) => Ok(Code::Int(Cp::F(fx(move |e| {
                        Ok(char_count(e.rec.read_str(f, fsp)?))
                    })))),
                    Code::Str(c) => {
                        let c = self.str_fn(c);
                        Ok(Code::Int(Cp::F(fx(move |e| Ok(char_count(&c(e)?))))))
                    }
                    Code::List(l) => Ok(Code::Int(match l.repr {
                        ListRepr::Lit(v) => {
                            let n = i64::try_from(v.len()).unwrap_or(i64::MAX);
                            if v.iter().all(is_const) {
                                Cp::K(n)
                            } else {
                                // CEL builds the list first: an element's error is the result.
                                let check = self.elem_fns(v).evaluate_all();
                                Cp::F(fx(move |e| check(e).map(|()| n)))
                            }
                        }
                        ListRepr::Field(f, fsp) => Cp::F(match l.elem {
                            Scalar::Bool => len_of(Record::read_bool_list, f, fsp),
                            Scalar::Int => len_of(Record::read_int_list, f, fsp),
                            Scalar::Dec(_) => len_of(Record::read_dec_list, f, fsp),
                            Scalar::Str => len_of(Record::read_str_list, f, fsp),
                            Scalar::Date => len_of(Record::read_date_list, f, fsp),
                        }),
                    })),
                    other => Err(mismatch(
                        format!("size() takes a string or a list, found {}", other.ty_name()),
                        args[0].span,
                    )),
                }
            }
            "startsWith" | "endsWith" | "contains" => {
                Self::arity(name, args, 2, sp)?;
                let s = self.str_arg(&args[0], name)?;
                let p = self.str_arg(&args[1], name)?;
                let kind = match name {
                    "startsWith" => 0u8,
                    "endsWith" => 1,
                    _ => 2,
                };
                let test = move |s: &str, p: &str| match kind {
                    0 => s.starts_with(p),
                    1 => s.ends_with(p),
                    _ => s.contains(p),
                };
                Ok(Code::Bool(match (s, p) {
                    (Cs::K(s), Cs::K(p)) => Cp::K(test(&s, &p)),
                    (Cs::Field(f, fsp), Cs::K(p)) => Cp::F(match kind {
                        0 => fx(move |e| Ok(e.rec.read_str(f, fsp)?.starts_with(&*p))),
                        1 => fx(move |e| Ok(e.rec.read_str(f, fsp)?.ends_with(&*p))),
                        _ => fx(move |e| Ok(e.rec.read_str(f, fsp)?.contains(&*p))),
                    }),
                    (s, p) => {
                        let (s, p) = (self.str_fn(s), self.str_fn(p));
                        Cp::F(fx(move |e| Ok(test(&s(e)?, &p(e)?))))
                    }
                }))
            }
            "matches" => {
                Self::arity(name, args, 2, sp)?;
                let s = self.str_arg(&args[0], name)?;
                let Cs::K(pat) = self.str_arg(&args[1], name)? else {
                    return Err(err(
                        ErrorCode::Unsupported,
                        "matches() needs a constant pattern (it is compiled once)",
                        args[1].span,
                    ));
                };
                let re = regex::Regex::new(&pat).map_err(|e| {
                    err(
                        ErrorCode::BadRegex,
                        format!("invalid regular expression: {e}"),
                        args[1].span,
                    )
                })?;
                Ok(Code::Bool(match s {
                    Cs::K(s) => Cp::K(re.is_match(&s)),
                    Cs::Field(f, fsp) => {
                        Cp::F(fx(move |e| Ok(re.is_match(e.rec.read_str(f, fsp)?))))
                    }
                    s => {
                        let s = self.str_fn(s);
                        Cp::F(fx(move |e| Ok(re.is_match(&s(e)?))))
                    }
                }))
            }
            "int" => {
                Self::arity(name, args, 1, sp)?;
                Ok(Code::Int(match self.expr(&args[0])? {
                    Code::Int(c) => c,
                    Code::Dec(c, s) => {
                        let d = pow10(s).unwrap_or(1);
                        let conv = move |m: i128| i64::try_from(m / d).ok();
                        match c {
                            Cp::K(m) if conv(m).is_some() => Cp::K(conv(m).unwrap_or(0)),
                            c => {
                                let c = c.into_fn();
                                Cp::F(fx(move |e| conv(c(e)?).ok_or_else(|| overflow(sp))))
                            }
                        }
                    }
                    Code::Str(c) => {
                        let c = self.str_fn(c);
                        Cp::F(fx(move |e| {
                            let s = c(e)?;
                            s.parse::<i64>().map_err(|_| {
                                EvalError::with_detail(EvalErrorKind::Conversion, sp, s.as_ref())
                            })
                        }))
                    }
                    other => {
                        return Err(mismatch(
                            format!(
                                "int() takes an int, decimal or string, found {}",
                                other.ty_name()
                            ),
                            args[0].span,
                        ))
                    }
                }))
            }
            "string" => {
                Self::arity(name, args, 1, sp)?;
                Ok(Code::Str(match self.expr(&args[0])? {
                    Code::Str(c) => c,
                    Code::Int(Cp::K(k)) => Cs::K(k.to_string().into()),
                    Code::Int(c) => {
                        let c = c.into_fn();
                        Cs::F(fs(move |e| Ok(Cow::Owned(c(e)?.to_string()))))
                    }
                    Code::Dec(c, s) => {
                        let c = c.into_fn();
                        Cs::F(fs(move |e| Ok(Cow::Owned(format_dec(c(e)?, s)))))
                    }
                    Code::Bool(c) => {
                        let c = c.into_fn();
                        Cs::F(fs(move |e| {
                            Ok(Cow::Borrowed(if c(e)? { "true" } else { "false" }))
                        }))
                    }
                    Code::Date(c) => {
                        let c = c.into_fn();
                        Cs::F(fs(move |e| {
                            Ok(Cow::Owned(c(e)?.format("%Y-%m-%d").to_string()))
                        }))
                    }
                    other => {
                        return Err(mismatch(
                            format!("string() cannot convert {}", other.ty_name()),
                            args[0].span,
                        ))
                    }
                }))
            }
            "decimal" => {
                Self::arity(name, args, 1, sp)?;
                match self.expr(&args[0])? {
                    Code::Int(c) => Ok(Code::Dec(to_dec(Code::Int(c)).0, 0)),
                    d @ Code::Dec(..) => Ok(d),
                    Code::Str(Cs::K(s)) => match parse_dec(&s) {
                        Some((m, sc)) => Ok(Code::Dec(Cp::K(m), sc)),
                        None => Err(err(
                            ErrorCode::BadConstant,
                            format!("`{s}` is not a decimal number"),
                            args[0].span,
                        )),
                    },
                    other => Err(mismatch(
                        format!(
                            "decimal() takes an int, a decimal or a constant string, found {}",
                            other.ty_name()
                        ),
                        args[0].span,
                    )),
                }
            }
            "date" => {
                Self::arity(name, args, 1, sp)?;
                let parse = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok();
                match self.expr(&args[0])? {
                    Code::Date(c) => Ok(Code::Date(c)),
                    Code::Str(Cs::K(s)) => match parse(&s) {
                        Some(d) => Ok(Code::Date(Cp::K(d))),
                        None => Err(err(
                            ErrorCode::BadConstant,
                            format!("`{s}` is not a date in YYYY-MM-DD form"),
                            args[0].span,
                        )),
                    },
                    Code::Str(c) => {
                        let c = self.str_fn(c);
                        Ok(Code::Date(Cp::F(fx(move |e| {
                            let s = c(e)?;
                            parse(&s).ok_or_else(|| {
                                EvalError::with_detail(EvalErrorKind::Conversion, sp, s.as_ref())
                            })
                        }))))
                    }
                    other => Err(mismatch(
                        format!(
                            "date() takes a YYYY-MM-DD string, found {}",
                            other.ty_name()
                        ),
                        args[0].span,
                    )),
                }
            }
            "days_between" => {
                Self::arity(name, args, 2, sp)?;
                let a = self.date_arg(&args[0], name)?.into_fn();
                let b = self.date_arg(&args[1], name)?.into_fn();
                Ok(Code::Int(Cp::F(fx(move |e| {
                    Ok(b(e)?.signed_duration_since(a(e)?).num_days())
                }))))
            }
            "add_days" => {
                Self::arity(name, args, 2, sp)?;
                let d = self.date_arg(&args[0], name)?.into_fn();
                let n = match self.expr(&args[1])? {
                    Code::Int(c) => c.into_fn(),
                    other => {
                        return Err(mismatch(
                            format!(
                                "add_days(date, n) needs an int n, found {}",
                                other.ty_name()
                            ),
                            args[1].span,
                        ))
                    }
                };
                Ok(Code::Date(Cp::F(fx(move |e| {
                    let d = d(e)?;
                    let n = n(e)?;
                    let r = if n >= 0 {
                        d.checked_add_days(Days::new(n.unsigned_abs()))
                    } else {
                        d.checked_sub_days(Days::new(n.unsigned_abs()))
                    };
                    r.ok_or_else(|| overflow(sp))
                }))))
            }
            _ => Err(self.unknown_function(name, name_span, target.is_some())),
        }
    }

    fn unknown_function(&self, name: &str, sp: Span, method: bool) -> CompileError {
        let hint = match name {
            "double" => Some("double is not supported (money must be exact); use decimal()"),
            "uint" => Some("unsigned ints are not supported; use int()"),
            "timestamp" | "duration" | "getDate" | "getFullYear" => {
                Some("timestamps and durations are not supported; use date(), days_between() and add_days()")
            }
            "map" | "filter" => Some("map/filter macros are not supported; use exists() or all()"),
            "bytes" | "dyn" | "type" => Some("this CEL function is not supported"),
            _ => None,
        };
        if let Some(h) = hint {
            return err(ErrorCode::Unsupported, format!("`{name}`: {h}"), sp);
        }
        let kind = if method { "method" } else { "function" };
        let msg = match suggest(name, FUNCTIONS.iter().copied()) {
            Some(s) => format!("unknown {kind} `{name}`; did you mean `{s}`?"),
            None => format!(
                "unknown {kind} `{name}`; available: {}",
                FUNCTIONS.join(", ")
            ),
        };
        err(ErrorCode::UnknownFunction, msg, sp)
    }

    fn str_arg(&mut self, e: &Expr, f: &str) -> Result<Cs, CompileError> {
        match self.expr(e)? {
            Code::Str(c) => Ok(c),
            other => Err(mismatch(
                format!("`{f}` needs a string, found {}", other.ty_name()),
                e.span,
            )),
        }
    }

    fn date_arg(&mut self, e: &Expr, f: &str) -> Result<Cp<NaiveDate>, CompileError> {
        match self.expr(e)? {
            Code::Date(c) => Ok(c),
            Code::Str(Cs::K(s)) => NaiveDate::parse_from_str(&s, "%Y-%m-%d")
                .map(Cp::K)
                .map_err(|_| {
                    err(
                        ErrorCode::BadConstant,
                        format!("`{s}` is not a date in YYYY-MM-DD form"),
                        e.span,
                    )
                }),
            other => Err(mismatch(
                format!("`{f}` needs a date, found {}", other.ty_name()),
                e.span,
            )),
        }
    }

    fn quantifier(
        &mut self,
        target: &Expr,
        name: &str,
        args: &[Expr],
        sp: Span,
    ) -> Result<Code, CompileError> {
        Self::arity(name, args, 2, sp)?;
        let q = match name {
            "exists" => Quant::Exists,
            "all" => Quant::All,
            _ => Quant::ExistsOne,
        };
        let ExprKind::Ident(var) = &args[0].kind else {
            return Err(err(
                ErrorCode::TypeMismatch,
                format!("the first argument of `{name}` must be a variable name"),
                args[0].span,
            ));
        };
        let list = match self.expr(target)? {
            Code::List(l) => l,
            other => {
                return Err(mismatch(
                    format!("`{name}` needs a list, found {}", other.ty_name()),
                    target.span,
                ))
            }
        };
        let k = self.locals.len();
        if k >= MAX_LOCALS {
            return Err(err(
                ErrorCode::TooDeep,
                format!("at most {MAX_LOCALS} nested exists/all macros are allowed"),
                sp,
            ));
        }
        self.locals.push((var.clone(), list.elem));
        let pred = self.bool_operand(&args[1], &format!("the predicate of `{name}`"));
        self.locals.pop();
        let pred = pred?.into_fn();
        Ok(Code::Bool(Cp::F(match list.repr {
            ListRepr::Field(f, fsp) => match list.elem {
                Scalar::Bool => quant_field(q, k, pred, Record::read_bool_list, f, fsp),
                Scalar::Int => quant_field(q, k, pred, Record::read_int_list, f, fsp),
                Scalar::Dec(_) => quant_field(q, k, pred, Record::read_dec_list, f, fsp),
                Scalar::Date => quant_field(q, k, pred, Record::read_date_list, f, fsp),
                Scalar::Str => fx(move |e| {
                    let xs = e.rec.read_str_list(f, fsp)?;
                    let mut st = QState::new(q);
                    for x in xs {
                        if let Some(r) = st.feed(pred(&e.with(k, Local::Str(x.as_str())))) {
                            return r;
                        }
                    }
                    st.finish()
                }),
            },
            ListRepr::Lit(codes) => match self.elem_fns(codes) {
                ElemFns::Bool(v) => quant_lit(q, k, pred, v),
                ElemFns::Int(v) => quant_lit(q, k, pred, v),
                ElemFns::Dec(v) => quant_lit(q, k, pred, v),
                ElemFns::Date(v) => quant_lit(q, k, pred, v),
                ElemFns::Str(v) => fx(move |e| {
                    let mut vals = Vec::with_capacity(v.len());
                    for f in &v {
                        vals.push(f(e)?);
                    }
                    let mut st = QState::new(q);
                    for s in &vals {
                        if let Some(r) = st.feed(pred(&e.with(k, Local::Str(s)))) {
                            return r;
                        }
                    }
                    st.finish()
                }),
            },
        })))
    }
}

/// Extra fractional digits a decimal quotient carries beyond its operands' scale.
pub(crate) const DIV_EXTRA_SCALE: u32 = 6;

fn char_count(s: &str) -> i64 {
    i64::try_from(s.chars().count()).unwrap_or(i64::MAX)
}

fn len_of<T: 'static>(
    read: for<'a> fn(&'a Record, FieldRef, Span) -> R<&'a [T]>,
    f: FieldRef,
    sp: Span,
) -> Fx<i64> {
    fx(move |e| Ok(i64::try_from(read(e.rec, f, sp)?.len()).unwrap_or(i64::MAX)))
}

fn in_field<T: Prim>(
    x: Fx<T>,
    read: for<'a> fn(&'a Record, FieldRef, Span) -> R<&'a [T]>,
    f: FieldRef,
    sp: Span,
) -> Fx<bool> {
    fx(move |e| {
        let v = x(e)?;
        Ok(read(e.rec, f, sp)?.contains(&v))
    })
}

fn in_consts<T: Prim + std::hash::Hash>(x: Cp<T>, set: Vec<T>) -> Cp<bool> {
    match x {
        Cp::K(k) => Cp::K(set.contains(&k)),
        Cp::Field(f, sp) if set.len() <= 16 => {
            let set = set.into_boxed_slice();
            Cp::F(fx(move |e| Ok(set.contains(&T::read(e.rec, f, sp)?))))
        }
        x => {
            let x = x.into_fn();
            if set.len() <= 16 {
                let set = set.into_boxed_slice();
                Cp::F(fx(move |e| Ok(set.contains(&x(e)?))))
            } else {
                let set: HashSet<T> = set.into_iter().collect();
                Cp::F(fx(move |e| Ok(set.contains(&x(e)?))))
            }
        }
    }
}

fn in_dyn<T: Prim>(x: Fx<T>, items: Vec<Fx<T>>) -> Fx<bool> {
    fx(move |e| {
        let v = x(e)?;
        let mut found = false;
        for it in &items {
            found |= it(e)? == v;
        }
        Ok(found)
    })
}

/// Int → decimal at scale 0; decimals pass through with their scale.
fn to_dec(c: Code) -> (Cp<i128>, u32) {
    match c {
        Code::Dec(c, s) => (c, s),
        Code::Int(Cp::K(k)) => (Cp::K(i128::from(k)), 0),
        Code::Int(c) => {
            let f = c.into_fn();
            (Cp::F(fx(move |e| Ok(i128::from(f(e)?)))), 0)
        }
        _ => (Cp::K(0), 0),
    }
}

/// Rescales a decimal from scale `from` up to scale `to` (exact; may overflow at run time).
fn align(c: Cp<i128>, from: u32, to: u32, sp: Span) -> Result<Cp<i128>, CompileError> {
    if from >= to {
        return Ok(c);
    }
    let factor = pow10(to - from)
        .ok_or_else(|| err(ErrorCode::BadConstant, "decimal scale out of range", sp))?;
    Ok(match c {
        Cp::K(k) => Cp::K(k.checked_mul(factor).ok_or_else(|| {
            err(
                ErrorCode::BadConstant,
                "decimal constant is too large at this scale",
                sp,
            )
        })?),
        c => {
            let f = c.into_fn();
            Cp::F(fx(move |e| {
                f(e)?.checked_mul(factor).ok_or_else(|| overflow(sp))
            }))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_helpers() {
        assert_eq!(format_dec(5_000_000, 2), "50000.00");
        assert_eq!(format_dec(-5, 3), "-0.005");
        assert_eq!(format_dec(7, 0), "7");
        assert_eq!(parse_dec("-12.50"), Some((-1250, 2)));
        assert_eq!(parse_dec("abc"), None);
        let sp = Span::default();
        // 1 / 3 at scale 6 → 0.333333; 2 / 3 → 0.666667; 0.5 rounds to even.
        assert_eq!(dec_div(1, 3, 1_000_000, sp), Ok(333_333));
        assert_eq!(dec_div(2, 3, 1_000_000, sp), Ok(666_667));
        assert_eq!(dec_div(-2, 3, 1_000_000, sp), Ok(-666_667));
        assert_eq!(dec_div(5, 10, 1, sp), Ok(0));
        assert_eq!(dec_div(15, 10, 1, sp), Ok(2));
        assert!(dec_div(1, 0, 1, sp).is_err());
    }

    #[test]
    fn suggestions() {
        assert_eq!(edit_distance("app.amout", "app.amount"), 1);
        assert_eq!(
            suggest("app.amout", ["app.amount", "app.channel"].into_iter()),
            Some("app.amount")
        );
        assert_eq!(suggest("zzz", ["app.amount"].into_iter()), None);
    }
}
