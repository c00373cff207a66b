//! The typed schema a caller declares, the flat [`Record`] of typed slots that expressions
//! read, and the [`Value`] used at the API boundary (not in the hot path).

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use chrono::NaiveDate;
use rust_decimal::Decimal;

use crate::error::{CompileError, ErrorCode, EvalError, EvalErrorKind, RecordError, Span};
use crate::window::WindowAggregate;

/// Largest decimal scale (fractional digits) of a field, literal or result.
pub const MAX_SCALE: u32 = 28;
/// Largest decimal mantissa a literal may have (rust_decimal's 96-bit range is wider).
pub(crate) const MAX_MANTISSA: i128 = 10i128.pow(28) - 1;

/// The type of a field or an expression.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Type {
    /// `true` / `false`.
    Bool,
    /// 64-bit signed integer; overflow is an evaluation error, as in CEL.
    Int,
    /// Exact fixed-point decimal with `scale` fractional digits: money in yuan is
    /// `Decimal { scale: 2 }`, an annual rate `Decimal { scale: 6 }`. Never floating point.
    Decimal {
        /// Number of fractional digits.
        scale: u32,
    },
    /// UTF-8 text.
    String,
    /// A calendar date (business dates are Asia/Shanghai dates, decided by the caller).
    Date,
    /// A list of scalars (lists of lists or of objects are not supported).
    List(Box<Type>),
    /// A field that may be absent; test with `has(a.b)` or `a.b != null`.
    Optional(Box<Type>),
}

impl Type {
    /// `Decimal { scale }`.
    pub fn decimal(scale: u32) -> Type {
        Type::Decimal { scale }
    }
    /// `List(elem)`.
    pub fn list(elem: Type) -> Type {
        Type::List(Box::new(elem))
    }
    /// `Optional(inner)`.
    pub fn optional(inner: Type) -> Type {
        Type::Optional(Box::new(inner))
    }
}

impl fmt::Display for Type {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Type::Bool => f.write_str("bool"),
            Type::Int => f.write_str("int"),
            Type::Decimal { scale } => write!(f, "decimal({scale})"),
            Type::String => f.write_str("string"),
            Type::Date => f.write_str("date"),
            Type::List(t) => write!(f, "list<{t}>"),
            Type::Optional(t) => write!(f, "optional<{t}>"),
        }
    }
}

/// Scalar element kinds, the unit of storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Scalar {
    Bool,
    Int,
    Dec(u32),
    Str,
    Date,
}

impl Scalar {
    pub(crate) fn to_type(self) -> Type {
        match self {
            Scalar::Bool => Type::Bool,
            Scalar::Int => Type::Int,
            Scalar::Dec(s) => Type::Decimal { scale: s },
            Scalar::Str => Type::String,
            Scalar::Date => Type::Date,
        }
    }

    fn of(t: &Type) -> Option<Scalar> {
        Some(match t {
            Type::Bool => Scalar::Bool,
            Type::Int => Scalar::Int,
            Type::Decimal { scale } if *scale <= MAX_SCALE => Scalar::Dec(*scale),
            Type::String => Scalar::Str,
            Type::Date => Scalar::Date,
            _ => return None,
        })
    }
}

/// Shape of a stored field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    One(Scalar),
    List(Scalar),
}

/// A field resolved at compile time: its presence flag and its index in the typed vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FieldRef {
    pub id: u32,
    pub index: u32,
    pub optional: bool,
}

#[derive(Debug)]
pub(crate) struct FieldDef {
    pub name: String,
    pub ty: Type,
    pub shape: Shape,
    pub optional: bool,
    pub index: u32,
}

#[derive(Debug, Default)]
struct Counts {
    bools: u32,
    ints: u32,
    decs: u32,
    strs: u32,
    dates: u32,
    bool_lists: u32,
    int_lists: u32,
    dec_lists: u32,
    str_lists: u32,
    date_lists: u32,
}

impl Counts {
    fn next(&mut self, shape: Shape) -> u32 {
        let c = match shape {
            Shape::One(Scalar::Bool) => &mut self.bools,
            Shape::One(Scalar::Int) => &mut self.ints,
            Shape::One(Scalar::Dec(_)) => &mut self.decs,
            Shape::One(Scalar::Str) => &mut self.strs,
            Shape::One(Scalar::Date) => &mut self.dates,
            Shape::List(Scalar::Bool) => &mut self.bool_lists,
            Shape::List(Scalar::Int) => &mut self.int_lists,
            Shape::List(Scalar::Dec(_)) => &mut self.dec_lists,
            Shape::List(Scalar::Str) => &mut self.str_lists,
            Shape::List(Scalar::Date) => &mut self.date_lists,
        };
        let i = *c;
        *c += 1;
        i
    }
}

#[derive(Debug)]
pub(crate) struct SchemaInner {
    pub id: u64,
    pub fields: Vec<FieldDef>,
    pub by_name: HashMap<String, u32>,
    /// Every proper prefix of a dotted field name (`app` for `app.amount`).
    pub objects: HashMap<String, ()>,
    counts: Counts,
    /// Event types that `count()`/`sum()` may aggregate, with their numeric fields.
    pub windows: crate::window::Windows,
    /// Declared aggregates and the id of the field holding each.
    pub aggregates: Vec<(WindowAggregate, u32)>,
}

/// The fields an expression may read, with their types. Built once per rule domain
/// (e.g. "application decision", "AML transaction") and shared by every expression
/// compiled against it and every [`Record`] built for it. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Schema {
    pub(crate) inner: Arc<SchemaInner>,
}

static NEXT_SCHEMA_ID: AtomicU64 = AtomicU64::new(1);

/// Builder for [`Schema`].
#[derive(Debug, Default)]
pub struct SchemaBuilder {
    fields: Vec<(String, Type)>,
    windows: Vec<(String, Vec<(String, Type)>)>,
    aggregates: Vec<WindowAggregate>,
}

impl SchemaBuilder {
    /// Declares a field, e.g. `field("app.amount", Type::decimal(2))`. Names are dotted
    /// paths of identifiers; the prefixes (`app`) become objects.
    pub fn field(mut self, name: &str, ty: Type) -> Self {
        self.fields.push((name.to_string(), ty));
        self
    }

    /// Declares an event type that rules may aggregate over a window with
    /// `count(event, 30d)` and, for each listed field (`int` or `decimal` only),
    /// `sum(event.field, 30d)`. See [`crate::window`].
    pub fn window_event(mut self, event: &str, numeric_fields: &[(&str, Type)]) -> Self {
        self.windows.push((
            event.to_string(),
            numeric_fields
                .iter()
                .map(|(n, t)| ((*n).to_string(), t.clone()))
                .collect(),
        ));
        self
    }

    /// Lays out a slot for a windowed aggregate (its event type must be declared with
    /// [`SchemaBuilder::window_event`]). A count is an `int`; a sum has its field's type.
    pub fn aggregate(mut self, agg: &WindowAggregate) -> Self {
        if !self.aggregates.contains(agg) {
            self.aggregates.push(agg.clone());
        }
        self
    }

    /// Validates the declarations and lays out the slots.
    pub fn build(self) -> Result<Schema, CompileError> {
        let bad = |msg: String| CompileError::new(ErrorCode::BadSchema, msg, Span::default());
        let mut windows: crate::window::Windows = Vec::with_capacity(self.windows.len());
        for (event, fs) in &self.windows {
            if event.is_empty()
                || !event.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                || event.starts_with(|c: char| c.is_ascii_digit())
            {
                return Err(bad(format!("event type `{event}` must be an identifier")));
            }
            if windows.iter().any(|(e, _)| e == event) {
                return Err(bad(format!("event type `{event}` is declared twice")));
            }
            let mut numeric = Vec::with_capacity(fs.len());
            for (n, t) in fs {
                match Scalar::of(t) {
                    Some(sc @ (Scalar::Int | Scalar::Dec(_))) => numeric.push((n.clone(), sc)),
                    _ => {
                        return Err(bad(format!(
                        "field `{event}.{n}`: only int and decimal fields can be summed, not {t}"
                    )))
                    }
                }
            }
            windows.push((event.clone(), numeric));
        }
        let mut all = Vec::with_capacity(self.fields.len() + self.aggregates.len());
        for (name, ty) in self.fields {
            if name.starts_with(crate::window::RESERVED_PREFIX) {
                return Err(bad(format!(
                    "field `{name}`: names starting with `window.` are reserved for windowed aggregates"
                )));
            }
            all.push((name, ty, None));
        }
        for agg in self.aggregates {
            let scalar = crate::window::check(&windows, &agg, Span::default())
                .map_err(|e| bad(e.message))?;
            all.push((agg.field_name(), scalar.to_type(), Some(agg)));
        }
        let mut fields = Vec::with_capacity(all.len());
        let mut aggregates = Vec::new();
        let mut by_name = HashMap::new();
        let mut objects = HashMap::new();
        let mut counts = Counts::default();
        for (name, ty, agg) in all {
            let valid_ident = |p: &str| {
                let mut cs = p.chars();
                cs.next()
                    .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                    && cs.all(|c| c.is_ascii_alphanumeric() || c == '_')
            };
            if !name.split('.').all(valid_ident) {
                return Err(bad(format!(
                    "field name `{name}` must be identifiers joined by `.`"
                )));
            }
            let (optional, base) = match &ty {
                Type::Optional(inner) => (true, inner.as_ref()),
                other => (false, other),
            };
            let shape = match base {
                Type::List(e) => Shape::List(Scalar::of(e).ok_or_else(|| {
                    bad(format!(
                        "field `{name}`: list elements must be bool, int, decimal (scale ≤ {MAX_SCALE}), string or date, not {e}"
                    ))
                })?),
                other => Shape::One(Scalar::of(other).ok_or_else(|| {
                    bad(format!("field `{name}`: unsupported type {other}"))
                })?),
            };
            let id = u32::try_from(fields.len()).map_err(|_| bad("too many fields".into()))?;
            if by_name.insert(name.clone(), id).is_some() {
                return Err(bad(format!("field `{name}` is declared twice")));
            }
            let mut prefix = String::new();
            let parts: Vec<&str> = name.split('.').collect();
            for p in &parts[..parts.len() - 1] {
                if !prefix.is_empty() {
                    prefix.push('.');
                }
                prefix.push_str(p);
                objects.insert(prefix.clone(), ());
            }
            let index = counts.next(shape);
            if let Some(agg) = agg {
                aggregates.push((agg, id));
            }
            fields.push(FieldDef {
                name,
                ty,
                shape,
                optional,
                index,
            });
        }
        for f in &fields {
            if objects.contains_key(&f.name) {
                return Err(bad(format!(
                    "`{}` is declared as a field and also used as an object prefix",
                    f.name
                )));
            }
        }
        Ok(Schema {
            inner: Arc::new(SchemaInner {
                id: NEXT_SCHEMA_ID.fetch_add(1, Ordering::Relaxed),
                fields,
                by_name,
                objects,
                counts,
                windows,
                aggregates,
            }),
        })
    }
}

/// A handle to one field of one schema, for filling records without name lookups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    schema_id: u64,
    id: u32,
    // Copied from the field so that setters check the type without touching the schema.
    index: u32,
    shape: Shape,
}

impl Schema {
    /// Starts a schema.
    pub fn builder() -> SchemaBuilder {
        SchemaBuilder::default()
    }

    /// The slot of a declared field, resolved once and reused for every record.
    pub fn slot(&self, name: &str) -> Option<Slot> {
        let id = *self.inner.by_name.get(name)?;
        let def = self.inner.fields.get(id as usize)?;
        Some(Slot {
            schema_id: self.inner.id,
            id,
            index: def.index,
            shape: def.shape,
        })
    }

    /// Declared type of a field.
    pub fn field_type(&self, name: &str) -> Option<&Type> {
        let id = *self.inner.by_name.get(name)?;
        self.inner.fields.get(id as usize).map(|f| &f.ty)
    }

    /// Field names in declaration order.
    pub fn field_names(&self) -> impl Iterator<Item = &str> {
        self.inner.fields.iter().map(|f| f.name.as_str())
    }

    /// A record with every field absent, to be filled and reused.
    pub fn new_record(&self) -> Record {
        let c = &self.inner.counts;
        let n = |k: u32| k as usize;
        Record {
            schema: Arc::clone(&self.inner),
            present: vec![false; self.inner.fields.len()],
            bools: vec![false; n(c.bools)],
            ints: vec![0; n(c.ints)],
            decs: vec![0; n(c.decs)],
            strs: vec![String::new(); n(c.strs)],
            dates: vec![NaiveDate::MIN; n(c.dates)],
            bool_lists: vec![Vec::new(); n(c.bool_lists)],
            int_lists: vec![Vec::new(); n(c.int_lists)],
            dec_lists: vec![Vec::new(); n(c.dec_lists)],
            str_lists: vec![Vec::new(); n(c.str_lists)],
            date_lists: vec![Vec::new(); n(c.date_lists)],
        }
    }

    pub(crate) fn id(&self) -> u64 {
        self.inner.id
    }

    /// The windowed aggregates `source` uses, each once, in order of first use. Event
    /// types and fields are checked against [`SchemaBuilder::window_event`]; errors carry
    /// the position like any compile error. Pass the result to
    /// [`Schema::with_aggregates`] before compiling.
    pub fn window_aggregates(&self, source: &str) -> Result<Vec<WindowAggregate>, CompileError> {
        let inner = || -> Result<Vec<WindowAggregate>, CompileError> {
            let ast = crate::syntax::parse(source)?;
            let mut found = Vec::new();
            crate::window::collect(&ast, &mut found)?;
            let mut out: Vec<WindowAggregate> = Vec::new();
            for (agg, _, what) in found {
                crate::window::check(&self.inner.windows, &agg, what)?;
                if !out.contains(&agg) {
                    out.push(agg);
                }
            }
            Ok(out)
        };
        inner().map_err(|e| e.with_source(source))
    }

    /// A new schema with the same fields and event types plus a slot for each of `aggs`
    /// (those already declared are kept once). Records and programs of the old schema
    /// do not fit the new one.
    pub fn with_aggregates<'a>(
        &self,
        aggs: impl IntoIterator<Item = &'a WindowAggregate>,
    ) -> Result<Schema, CompileError> {
        let mut b = SchemaBuilder::default();
        for f in &self.inner.fields {
            if !f.name.starts_with(crate::window::RESERVED_PREFIX) {
                b = b.field(&f.name, f.ty.clone());
            }
        }
        for (event, fs) in &self.inner.windows {
            b.windows.push((
                event.clone(),
                fs.iter().map(|(n, sc)| (n.clone(), sc.to_type())).collect(),
            ));
        }
        for (agg, _) in &self.inner.aggregates {
            b = b.aggregate(agg);
        }
        for agg in aggs {
            b = b.aggregate(agg);
        }
        b.build()
    }

    /// The slot of a declared aggregate.
    pub fn aggregate_slot(&self, agg: &WindowAggregate) -> Option<Slot> {
        self.slot(&agg.field_name())
    }

    /// The declared aggregates, in declaration order.
    pub fn aggregates(&self) -> impl Iterator<Item = &WindowAggregate> {
        self.inner.aggregates.iter().map(|(a, _)| a)
    }

    /// The event types `count()`/`sum()` may aggregate.
    pub fn window_events(&self) -> impl Iterator<Item = &str> {
        self.inner.windows.iter().map(|(e, _)| e.as_str())
    }
}

/// One set of input values for the fields of a [`Schema`]: a flat vector per scalar kind,
/// indexed by slots resolved when the schema is built. Fill it, evaluate any number of
/// programs over it, [`Record::clear`] it and fill it again; string and list buffers are
/// reused, so steady-state filling does not allocate.
#[derive(Debug, Clone)]
pub struct Record {
    pub(crate) schema: Arc<SchemaInner>,
    present: Vec<bool>,
    bools: Vec<bool>,
    ints: Vec<i64>,
    /// Mantissas at the field's declared scale.
    decs: Vec<i128>,
    strs: Vec<String>,
    dates: Vec<NaiveDate>,
    bool_lists: Vec<Vec<bool>>,
    int_lists: Vec<Vec<i64>>,
    dec_lists: Vec<Vec<i128>>,
    str_lists: Vec<Vec<String>>,
    date_lists: Vec<Vec<NaiveDate>>,
}

/// Converts a decimal to a mantissa at `scale`, exactly or not at all.
pub(crate) fn decimal_to_mantissa(d: Decimal, scale: u32) -> Option<i128> {
    let ds = d.scale();
    let m = d.mantissa();
    if ds <= scale {
        m.checked_mul(10i128.checked_pow(scale - ds)?)
    } else {
        let f = 10i128.checked_pow(ds - scale)?;
        (m % f == 0).then_some(m / f)
    }
}

/// Converts a mantissa at `scale` to a `Decimal`, if it fits rust_decimal's 96 bits.
pub(crate) fn mantissa_to_decimal(m: i128, scale: u32) -> Option<Decimal> {
    Decimal::try_from_i128_with_scale(m, scale).ok()
}

impl Record {
    /// Marks every field absent; buffers are kept for reuse.
    pub fn clear(&mut self) {
        self.present.iter_mut().for_each(|p| *p = false);
    }

    fn def(&self, slot: Slot) -> Result<&FieldDef, RecordError> {
        if slot.schema_id != self.schema.id {
            return Err(RecordError::ForeignSlot);
        }
        self.schema
            .fields
            .get(slot.id as usize)
            .ok_or(RecordError::ForeignSlot)
    }

    #[inline]
    fn want(&self, slot: Slot, shape: Shape, got: &'static str) -> Result<usize, RecordError> {
        let same = |a: Shape, b: Shape| match (a, b) {
            (Shape::One(Scalar::Dec(_)), Shape::One(Scalar::Dec(_))) => true,
            (Shape::List(Scalar::Dec(_)), Shape::List(Scalar::Dec(_))) => true,
            (a, b) => a == b,
        };
        if slot.schema_id == self.schema.id && same(slot.shape, shape) {
            return Ok(slot.index as usize);
        }
        let def = self.def(slot)?;
        if !same(def.shape, shape) {
            return Err(RecordError::TypeMismatch {
                field: def.name.clone(),
                expected: def.ty.to_string(),
                got,
            });
        }
        Ok(def.index as usize)
    }

    fn mark(&mut self, slot: Slot) {
        if let Some(p) = self.present.get_mut(slot.id as usize) {
            *p = true;
        }
    }

    /// Marks a field absent (for optional fields this is "null").
    pub fn unset(&mut self, slot: Slot) -> Result<(), RecordError> {
        self.def(slot)?;
        if let Some(p) = self.present.get_mut(slot.id as usize) {
            *p = false;
        }
        Ok(())
    }

    /// Sets a bool field.
    pub fn set_bool(&mut self, slot: Slot, v: bool) -> Result<(), RecordError> {
        let i = self.want(slot, Shape::One(Scalar::Bool), "bool")?;
        if let Some(x) = self.bools.get_mut(i) {
            *x = v;
        }
        self.mark(slot);
        Ok(())
    }

    /// Sets an int field.
    pub fn set_int(&mut self, slot: Slot, v: i64) -> Result<(), RecordError> {
        let i = self.want(slot, Shape::One(Scalar::Int), "int")?;
        if let Some(x) = self.ints.get_mut(i) {
            *x = v;
        }
        self.mark(slot);
        Ok(())
    }

    fn dec_scale(&self, slot: Slot) -> u32 {
        match slot.shape {
            Shape::One(Scalar::Dec(s)) | Shape::List(Scalar::Dec(s)) => s,
            _ => 0,
        }
    }

    fn precision(&self, slot: Slot, value: impl fmt::Display) -> RecordError {
        let field = self
            .schema
            .fields
            .get(slot.id as usize)
            .map_or_else(String::new, |f| f.name.clone());
        RecordError::Precision {
            field,
            scale: self.dec_scale(slot),
            value: value.to_string(),
        }
    }

    /// Sets a decimal field; the value must be exact at the field's scale
    /// (`12.345` into a scale-2 money field is refused, not rounded).
    pub fn set_decimal(&mut self, slot: Slot, v: Decimal) -> Result<(), RecordError> {
        let i = self.want(slot, Shape::One(Scalar::Dec(0)), "decimal")?;
        let m =
            decimal_to_mantissa(v, self.dec_scale(slot)).ok_or_else(|| self.precision(slot, v))?;
        if let Some(x) = self.decs.get_mut(i) {
            *x = m;
        }
        self.mark(slot);
        Ok(())
    }

    /// Sets a decimal field from its mantissa at the field's scale: fen (分) for a
    /// scale-2 money field, so `set_decimal_units(amount, 5_000_000)` is 50000.00 yuan.
    pub fn set_decimal_units(&mut self, slot: Slot, units: i128) -> Result<(), RecordError> {
        let i = self.want(slot, Shape::One(Scalar::Dec(0)), "decimal")?;
        if let Some(x) = self.decs.get_mut(i) {
            *x = units;
        }
        self.mark(slot);
        Ok(())
    }

    /// Sets a string field, reusing the slot's buffer.
    pub fn set_str(&mut self, slot: Slot, v: &str) -> Result<(), RecordError> {
        let i = self.want(slot, Shape::One(Scalar::Str), "string")?;
        if let Some(x) = self.strs.get_mut(i) {
            x.clear();
            x.push_str(v);
        }
        self.mark(slot);
        Ok(())
    }

    /// Sets a date field.
    pub fn set_date(&mut self, slot: Slot, v: NaiveDate) -> Result<(), RecordError> {
        let i = self.want(slot, Shape::One(Scalar::Date), "date")?;
        if let Some(x) = self.dates.get_mut(i) {
            *x = v;
        }
        self.mark(slot);
        Ok(())
    }

    /// Sets a `list<bool>` field.
    pub fn set_bool_list(&mut self, slot: Slot, v: &[bool]) -> Result<(), RecordError> {
        let i = self.want(slot, Shape::List(Scalar::Bool), "list<bool>")?;
        if let Some(x) = self.bool_lists.get_mut(i) {
            x.clear();
            x.extend_from_slice(v);
        }
        self.mark(slot);
        Ok(())
    }

    /// Sets a `list<int>` field.
    pub fn set_int_list(&mut self, slot: Slot, v: &[i64]) -> Result<(), RecordError> {
        let i = self.want(slot, Shape::List(Scalar::Int), "list<int>")?;
        if let Some(x) = self.int_lists.get_mut(i) {
            x.clear();
            x.extend_from_slice(v);
        }
        self.mark(slot);
        Ok(())
    }

    /// Sets a `list<decimal>` field; every element must be exact at the field's scale.
    pub fn set_decimal_list(&mut self, slot: Slot, v: &[Decimal]) -> Result<(), RecordError> {
        let i = self.want(slot, Shape::List(Scalar::Dec(0)), "list<decimal>")?;
        let scale = self.dec_scale(slot);
        let mut ms = Vec::with_capacity(v.len());
        for d in v {
            ms.push(decimal_to_mantissa(*d, scale).ok_or_else(|| self.precision(slot, d))?);
        }
        if let Some(x) = self.dec_lists.get_mut(i) {
            *x = ms;
        }
        self.mark(slot);
        Ok(())
    }

    /// Sets a `list<string>` field, reusing buffers.
    pub fn set_str_list<S: AsRef<str>>(
        &mut self,
        slot: Slot,
        v: impl IntoIterator<Item = S>,
    ) -> Result<(), RecordError> {
        let i = self.want(slot, Shape::List(Scalar::Str), "list<string>")?;
        if let Some(x) = self.str_lists.get_mut(i) {
            let mut n = 0;
            for s in v {
                let s = s.as_ref();
                match x.get_mut(n) {
                    Some(buf) => {
                        buf.clear();
                        buf.push_str(s);
                    }
                    None => x.push(s.to_string()),
                }
                n += 1;
            }
            x.truncate(n);
        }
        self.mark(slot);
        Ok(())
    }

    /// Sets a `list<date>` field.
    pub fn set_date_list(&mut self, slot: Slot, v: &[NaiveDate]) -> Result<(), RecordError> {
        let i = self.want(slot, Shape::List(Scalar::Date), "list<date>")?;
        if let Some(x) = self.date_lists.get_mut(i) {
            x.clear();
            x.extend_from_slice(v);
        }
        self.mark(slot);
        Ok(())
    }

    /// Sets a field by name from a [`Value`] (convenient, slower: a name lookup). `Null`
    /// unsets an optional field.
    pub fn set(&mut self, name: &str, value: Value) -> Result<(), RecordError> {
        let id = *self
            .schema
            .by_name
            .get(name)
            .ok_or_else(|| RecordError::UnknownField(name.to_string()))?;
        let def = self
            .schema
            .fields
            .get(id as usize)
            .ok_or_else(|| RecordError::UnknownField(name.to_string()))?;
        let slot = Slot {
            schema_id: self.schema.id,
            id,
            index: def.index,
            shape: def.shape,
        };
        let mismatch = |got: &'static str| {
            let def = self.schema.fields.get(id as usize);
            RecordError::TypeMismatch {
                field: name.to_string(),
                expected: def.map_or_else(String::new, |d| d.ty.to_string()),
                got,
            }
        };
        match value {
            Value::Null => {
                if self
                    .schema
                    .fields
                    .get(id as usize)
                    .is_some_and(|f| f.optional)
                {
                    self.unset(slot)
                } else {
                    Err(RecordError::NotOptional(name.to_string()))
                }
            }
            Value::Bool(b) => self.set_bool(slot, b),
            Value::Int(v) => match self.schema.fields.get(id as usize).map(|f| f.shape) {
                Some(Shape::One(Scalar::Dec(_))) => self.set_decimal(slot, Decimal::from(v)),
                _ => self.set_int(slot, v),
            },
            Value::Decimal(d) => self.set_decimal(slot, d),
            Value::String(s) => self.set_str(slot, &s),
            Value::Date(d) => self.set_date(slot, d),
            Value::List(items) => {
                let shape = self.schema.fields.get(id as usize).map(|f| f.shape);
                macro_rules! collect {
                    ($pat:pat => $e:expr, $what:literal) => {{
                        let mut out = Vec::with_capacity(items.len());
                        for it in items {
                            match it {
                                $pat => out.push($e),
                                _ => return Err(mismatch($what)),
                            }
                        }
                        out
                    }};
                }
                match shape {
                    Some(Shape::List(Scalar::Bool)) => {
                        let v = collect!(Value::Bool(b) => b, "list with a non-bool element");
                        self.set_bool_list(slot, &v)
                    }
                    Some(Shape::List(Scalar::Int)) => {
                        let v = collect!(Value::Int(b) => b, "list with a non-int element");
                        self.set_int_list(slot, &v)
                    }
                    Some(Shape::List(Scalar::Dec(_))) => {
                        let v = collect!(Value::Decimal(b) => b, "list with a non-decimal element");
                        self.set_decimal_list(slot, &v)
                    }
                    Some(Shape::List(Scalar::Str)) => {
                        let v = collect!(Value::String(b) => b, "list with a non-string element");
                        self.set_str_list(slot, v)
                    }
                    Some(Shape::List(Scalar::Date)) => {
                        let v = collect!(Value::Date(b) => b, "list with a non-date element");
                        self.set_date_list(slot, &v)
                    }
                    _ => Err(mismatch("list")),
                }
            }
        }
    }

    // ---- reads used by compiled code -------------------------------------------------

    #[cold]
    #[inline(never)]
    pub(crate) fn absent(&self, f: FieldRef, span: Span) -> EvalError {
        let name = self
            .schema
            .fields
            .get(f.id as usize)
            .map_or_else(String::new, |d| d.name.clone());
        let kind = if f.optional {
            EvalErrorKind::AbsentOptional
        } else {
            EvalErrorKind::MissingField
        };
        EvalError::with_detail(kind, span, name)
    }

    #[inline(always)]
    pub(crate) fn has(&self, f: FieldRef) -> bool {
        self.present.get(f.id as usize).copied().unwrap_or(false)
    }

    #[inline(always)]
    fn check(&self, f: FieldRef, span: Span) -> Result<usize, EvalError> {
        if self.has(f) {
            Ok(f.index as usize)
        } else {
            Err(self.absent(f, span))
        }
    }
}

#[cold]
#[inline(never)]
pub(crate) fn internal(span: Span) -> EvalError {
    EvalError::new(EvalErrorKind::SchemaMismatch, span)
}

macro_rules! reader {
    ($name:ident, $vec:ident, $t:ty) => {
        impl Record {
            #[inline(always)]
            pub(crate) fn $name(&self, f: FieldRef, span: Span) -> Result<$t, EvalError> {
                let i = self.check(f, span)?;
                self.$vec.get(i).copied().ok_or_else(|| internal(span))
            }
        }
    };
}
reader!(read_bool, bools, bool);
reader!(read_int, ints, i64);
reader!(read_dec, decs, i128);
reader!(read_date, dates, NaiveDate);

macro_rules! list_reader {
    ($name:ident, $vec:ident, $t:ty) => {
        impl Record {
            #[inline(always)]
            pub(crate) fn $name(&self, f: FieldRef, span: Span) -> Result<&[$t], EvalError> {
                let i = self.check(f, span)?;
                self.$vec
                    .get(i)
                    .map(|v| v.as_slice())
                    .ok_or_else(|| internal(span))
            }
        }
    };
}
list_reader!(read_bool_list, bool_lists, bool);
list_reader!(read_int_list, int_lists, i64);
list_reader!(read_dec_list, dec_lists, i128);
list_reader!(read_str_list, str_lists, String);
list_reader!(read_date_list, date_lists, NaiveDate);

impl Record {
    #[inline(always)]
    pub(crate) fn read_str(&self, f: FieldRef, span: Span) -> Result<&str, EvalError> {
        let i = self.check(f, span)?;
        self.strs
            .get(i)
            .map(|s| s.as_str())
            .ok_or_else(|| internal(span))
    }
}

/// A value at the API boundary: setting record fields by name and generic results.
/// The compiled hot path never builds these.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// Absent optional / `null`.
    Null,
    /// Bool.
    Bool(bool),
    /// Int.
    Int(i64),
    /// Decimal (its scale is the expression's static scale).
    Decimal(Decimal),
    /// String.
    String(String),
    /// Date.
    Date(NaiveDate),
    /// List of scalars.
    List(Vec<Value>),
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("null"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::Decimal(d) => write!(f, "{d}"),
            Value::String(s) => write!(f, "{s:?}"),
            Value::Date(d) => write!(f, "date(\"{d}\")"),
            Value::List(items) => {
                f.write_str("[")?;
                for (i, it) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{it}")?;
                }
                f.write_str("]")
            }
        }
    }
}
