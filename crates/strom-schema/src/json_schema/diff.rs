//! JSON Schema compatibility with Confluent's semantics: its registry compares an original and
//! an updated schema structurally (its `json.diff` package, over everit's schema model) and
//! lists the differences; some kinds are compatible, the rest are not. BACKWARD compares old →
//! new, FORWARD new → old.
//!
//! The schema model: `true`/`{}` accept anything, `false` nothing; `$ref` is followed inside
//! the document; `type`, `enum`/`const`, `not` and each combinator are parts, several parts
//! make an `allOf`; a `type` list is an `anyOf` of one schema per type. Classes that differ are
//! incompatible unless the original is `false` or the update accepts anything; a plain schema
//! may become an `anyOf`/`oneOf` holding a compatible branch. Per class (✓ compatible):
//! numbers: maximum added ✗ removed ✓ raised ✓ lowered ✗ (minimum the other way round, the
//! exclusive bounds alike), multipleOf added ✗ removed ✓ divided ✓ otherwise ✗, integer →
//! number ✓, number → integer ✗; strings: the length bounds as the numeric ones, pattern added
//! or changed ✗ removed ✓ (`format` is not compared); enums: extended ✓ otherwise ✗; objects:
//! a property becoming required ✗ unless it has a default, removed from an open content model
//! ✓, from a closed one ✗ (unless it was `false`, or a partially open model's schema covers
//! it), added to an open model ✗ unless its schema is empty, to a closed one ✓ unless required
//! without a default, additionalProperties closed ✗ / opened ✓ / given a schema ✗ / schema
//! dropped ✓, property counts as the bounds, dependencies added / extended / changed ✗ and
//! removed / narrowed ✓; arrays: items compared, tuple items as properties are (an item added
//! to a closed tuple ✓), additionalItems as additionalProperties, item counts as the bounds,
//! uniqueItems added ✗ removed ✓; combinators: the same criterion or a wider one (anything →
//! anyOf, a singleton → oneOf) ✓, more anyOf/oneOf branches ✓ fewer ✗, more allOf parts ✗
//! fewer ✓, and the branches must pair up compatibly (maximum matching); `not`: the negated
//! schema may only narrow.

use std::borrow::Cow;
use std::cell::Cell;

use serde_json::{Map, Value};

/// Bound on nesting while comparing (a `$ref` cycle, a pathological document).
const MAX_DEPTH: usize = 64;
/// Bound on the schema pairs one check compares (combinators compare every branch with
/// every other, so nested ones multiply); past it the change is reported incompatible.
const MAX_COMPARISONS: usize = 20_000;
/// Branches larger than this (JSON values) are not checked for duplicates.
const SMALL_BRANCH: usize = 256;

/// Keywords that say nothing about what a document must be.
const ANNOTATIONS: [&str; 12] = [
    "$schema",
    "$id",
    "id",
    "title",
    "description",
    "default",
    "examples",
    "$comment",
    "definitions",
    "$defs",
    "readOnly",
    "writeOnly",
];

const OBJECT_KEYS: [&str; 7] = [
    "properties",
    "required",
    "additionalProperties",
    "patternProperties",
    "minProperties",
    "maxProperties",
    "dependencies",
];
const ARRAY_KEYS: [&str; 5] = [
    "items",
    "additionalItems",
    "minItems",
    "maxItems",
    "uniqueItems",
];
const STRING_KEYS: [&str; 4] = ["minLength", "maxLength", "pattern", "format"];
const NUMBER_KEYS: [&str; 5] = [
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "multipleOf",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Criterion {
    All,
    Any,
    One,
}

/// A schema as Confluent's model sees it.
enum Shape<'a> {
    Empty,
    False,
    Combined(Criterion, Vec<Cow<'a, Value>>),
    Not(&'a Value),
    Enum(Vec<Value>),
    String(&'a Map<String, Value>),
    Number(&'a Map<String, Value>, bool),
    Object(&'a Map<String, Value>),
    Array(&'a Map<String, Value>),
    Boolean,
    Null,
}

impl Shape<'_> {
    fn class(&self) -> &'static str {
        match self {
            Shape::Empty => "empty",
            Shape::False => "false",
            Shape::Combined(..) => "combined",
            Shape::Not(_) => "not",
            Shape::Enum(_) => "enum",
            Shape::String(_) => "string",
            Shape::Number(..) => "number",
            Shape::Object(_) => "object",
            Shape::Array(_) => "array",
            Shape::Boolean => "boolean",
            Shape::Null => "null",
        }
    }
}

/// The shape of one `type` with the keywords of the object it sits in.
fn typed<'a>(t: &str, o: &'a Map<String, Value>) -> Shape<'a> {
    match t {
        "string" => Shape::String(o),
        "number" => Shape::Number(o, false),
        "integer" => Shape::Number(o, true),
        "object" => Shape::Object(o),
        "array" => Shape::Array(o),
        "boolean" => Shape::Boolean,
        "null" => Shape::Null,
        _ => Shape::Empty,
    }
}

/// The object without the keywords of parts other than its type.
fn type_part(o: &Map<String, Value>) -> Option<Value> {
    let rest: Map<String, Value> = o
        .iter()
        .filter(|(k, _)| {
            !ANNOTATIONS.contains(&k.as_str())
                && !["enum", "const", "not", "allOf", "anyOf", "oneOf"].contains(&k.as_str())
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let constrains = rest.contains_key("type")
        || rest.keys().any(|k| {
            OBJECT_KEYS.contains(&k.as_str())
                || ARRAY_KEYS.contains(&k.as_str())
                || STRING_KEYS.contains(&k.as_str())
                || NUMBER_KEYS.contains(&k.as_str())
        });
    constrains.then_some(Value::Object(rest))
}

fn shape<'a>(v: &'a Value) -> Shape<'a> {
    let o = match v {
        Value::Bool(false) => return Shape::False,
        Value::Object(o) => o,
        _ => return Shape::Empty,
    };
    // Parts: the type with its keywords, enum/const, not, each combinator.
    let mut parts: Vec<Cow<'a, Value>> = Vec::new();
    let others = ["enum", "const", "not", "allOf", "anyOf", "oneOf"];
    let has_other = others.iter().any(|k| o.contains_key(*k));
    if has_other {
        if let Some(t) = type_part(o) {
            parts.push(Cow::Owned(t));
        }
        for k in others {
            if let Some(x) = o.get(k) {
                let mut part = Map::new();
                part.insert(k.to_owned(), x.clone());
                parts.push(Cow::Owned(Value::Object(part)));
            }
        }
        if parts.len() > 1 {
            return Shape::Combined(Criterion::All, parts);
        }
        // One part: it is one of `others` alone.
        if let Some(e) = o.get("enum").and_then(Value::as_array) {
            return Shape::Enum(e.clone());
        }
        if let Some(c) = o.get("const") {
            return Shape::Enum(vec![c.clone()]);
        }
        if let Some(n) = o.get("not") {
            return Shape::Not(n);
        }
        for (k, c) in [
            ("allOf", Criterion::All),
            ("anyOf", Criterion::Any),
            ("oneOf", Criterion::One),
        ] {
            if let Some(a) = o.get(k).and_then(Value::as_array) {
                return Shape::Combined(c, a.iter().map(Cow::Borrowed).collect());
            }
        }
    }
    match o.get("type") {
        Some(Value::String(t)) => typed(t, o),
        Some(Value::Array(ts)) if ts.len() == 1 => typed(ts[0].as_str().unwrap_or(""), o),
        Some(Value::Array(ts)) => Shape::Combined(
            Criterion::Any,
            ts.iter()
                .map(|t| {
                    let mut one = o.clone();
                    one.insert("type".into(), t.clone());
                    Cow::Owned(Value::Object(one))
                })
                .collect(),
        ),
        _ => {
            let has = |keys: &[&str]| keys.iter().any(|k| o.contains_key(*k));
            if has(&OBJECT_KEYS) {
                Shape::Object(o)
            } else if has(&ARRAY_KEYS) {
                Shape::Array(o)
            } else if has(&STRING_KEYS) {
                Shape::String(o)
            } else if has(&NUMBER_KEYS) {
                Shape::Number(o, false)
            } else {
                Shape::Empty
            }
        }
    }
}

/// Compares two documents; the messages of the incompatible differences.
pub fn incompatibilities(original: &Value, update: &Value) -> Vec<String> {
    let mut d = Diff {
        roots: (original, update),
        out: Vec::new(),
        depth: 0,
        budget: &Cell::new(MAX_COMPARISONS),
    };
    d.compare(Some(original), Some(update), "#");
    d.out
}

struct Diff<'r> {
    roots: (&'r Value, &'r Value),
    out: Vec<String>,
    depth: usize,
    /// Comparisons left, shared with sub-comparisons.
    budget: &'r Cell<usize>,
}

fn num(o: &Map<String, Value>, k: &str) -> Option<f64> {
    o.get(k).and_then(Value::as_f64)
}

impl<'r> Diff<'r> {
    fn fail(&mut self, kind: &str, path: &str) {
        self.out.push(format!(
            "{{errorType:'{kind}', description:'{}', location:'{path}'}}",
            kind.to_ascii_lowercase().replace('_', " ")
        ));
    }

    /// Whether `o` → `u` has no incompatible difference (a sub-comparison).
    fn compatible(&self, o: &Value, u: &Value) -> bool {
        let mut sub = Diff {
            roots: self.roots,
            out: Vec::new(),
            depth: self.depth,
            budget: self.budget,
        };
        sub.compare(Some(o), Some(u), "#");
        sub.out.is_empty()
    }

    /// Follows a local `$ref` (`#/definitions/x`, `#/$defs/x`, ...) in `root`.
    fn deref<'v>(v: &'v Value, root: &'v Value) -> &'v Value {
        let mut v = v;
        for _ in 0..MAX_DEPTH {
            let Some(r) = v.get("$ref").and_then(Value::as_str) else {
                return v;
            };
            match r.strip_prefix('#').and_then(|p| root.pointer(p)) {
                Some(target) => v = target,
                None => return v,
            }
        }
        v
    }

    fn compare(&mut self, o: Option<&Value>, u: Option<&Value>, path: &str) {
        let (o, u) = match (o, u) {
            (None, None) => return,
            (None, Some(_)) => return self.fail("SCHEMA_ADDED", path),
            (Some(_), None) => return,
            (Some(o), Some(u)) => (o, u),
        };
        if self.budget.get() == 0 {
            return self.fail("SCHEMA_TOO_COMPLEX_TO_COMPARE", path);
        }
        self.budget.set(self.budget.get() - 1);
        if self.depth >= MAX_DEPTH {
            if o != u {
                self.fail("SCHEMA_TOO_DEEP", path);
            }
            return;
        }
        self.depth += 1;
        let (o, u) = (Self::deref(o, self.roots.0), Self::deref(u, self.roots.1));
        self.compare_shapes(o, u, path);
        self.depth -= 1;
    }

    fn compare_shapes(&mut self, o: &Value, u: &Value, path: &str) {
        // A `$ref` left unresolved (to another registered schema) compares by its text.
        if o.get("$ref").is_some() || u.get("$ref").is_some() {
            if o.get("$ref") != u.get("$ref") {
                self.fail("TYPE_CHANGED", path);
            }
            return;
        }
        let (so, su) = (shape(o), shape(u));
        // A plain schema and a combined one: a compatible singleton, or a branch of an
        // anyOf/oneOf, is enough.
        let fits = match (&so, &su) {
            (Shape::Combined(..), Shape::Combined(..)) => false,
            (_, Shape::Combined(c, subs)) => {
                (subs.len() == 1 || *c != Criterion::All)
                    && subs.iter().any(|s| self.compatible(o, s))
            }
            (Shape::Combined(_, subs), _) => subs.len() == 1 && self.compatible(&subs[0], u),
            _ => false,
        };
        if fits {
            return;
        }
        if so.class() != su.class() {
            if !matches!(so, Shape::False) && !matches!(su, Shape::Empty) {
                self.fail("TYPE_CHANGED", path);
            }
            return;
        }
        match (so, su) {
            (Shape::String(a), Shape::String(b)) => self.strings(a, b, path),
            (Shape::Number(a, ai), Shape::Number(b, bi)) => self.numbers(a, ai, b, bi, path),
            (Shape::Enum(a), Shape::Enum(b)) if !a.iter().all(|x| b.contains(x)) => {
                self.fail("ENUM_ARRAY_NARROWED", &format!("{path}/enum"));
            }
            (Shape::Combined(ca, a), Shape::Combined(cb, b)) => self.combined(ca, &a, cb, &b, path),
            (Shape::Not(a), Shape::Not(b)) if !self.compatible(b, a) => {
                self.fail("NOT_TYPE_EXTENDED", &format!("{path}/not"));
            }
            (Shape::Object(a), Shape::Object(b)) => self.objects(a, b, path),
            (Shape::Array(a), Shape::Array(b)) => self.arrays(a, b, path),
            _ => {}
        }
    }

    /// An upper bound (`maximum`, `maxLength`, ...): added or lowered narrows.
    fn upper(&mut self, a: Option<f64>, b: Option<f64>, kind: &str, path: &str) {
        match (a, b) {
            (None, Some(_)) => self.fail(&format!("{kind}_ADDED"), path),
            (Some(x), Some(y)) if y < x => self.fail(&format!("{kind}_DECREASED"), path),
            _ => {}
        }
    }

    /// A lower bound: added or raised narrows.
    fn lower(&mut self, a: Option<f64>, b: Option<f64>, kind: &str, path: &str) {
        match (a, b) {
            (None, Some(_)) => self.fail(&format!("{kind}_ADDED"), path),
            (Some(x), Some(y)) if y > x => self.fail(&format!("{kind}_INCREASED"), path),
            _ => {}
        }
    }

    fn strings(&mut self, a: &Map<String, Value>, b: &Map<String, Value>, path: &str) {
        let p = |k: &str| format!("{path}/{k}");
        self.upper(
            num(a, "maxLength"),
            num(b, "maxLength"),
            "MAX_LENGTH",
            &p("maxLength"),
        );
        self.lower(
            num(a, "minLength"),
            num(b, "minLength"),
            "MIN_LENGTH",
            &p("minLength"),
        );
        match (a.get("pattern"), b.get("pattern")) {
            (None, Some(_)) => self.fail("PATTERN_ADDED", &p("pattern")),
            (Some(x), Some(y)) if x != y => self.fail("PATTERN_CHANGED", &p("pattern")),
            _ => {}
        }
    }

    fn numbers(
        &mut self,
        a: &Map<String, Value>,
        a_int: bool,
        b: &Map<String, Value>,
        b_int: bool,
        path: &str,
    ) {
        let p = |k: &str| format!("{path}/{k}");
        self.upper(
            num(a, "maximum"),
            num(b, "maximum"),
            "MAXIMUM",
            &p("maximum"),
        );
        self.lower(
            num(a, "minimum"),
            num(b, "minimum"),
            "MINIMUM",
            &p("minimum"),
        );
        self.upper(
            num(a, "exclusiveMaximum"),
            num(b, "exclusiveMaximum"),
            "EXCLUSIVE_MAXIMUM",
            &p("exclusiveMaximum"),
        );
        self.lower(
            num(a, "exclusiveMinimum"),
            num(b, "exclusiveMinimum"),
            "EXCLUSIVE_MINIMUM",
            &p("exclusiveMinimum"),
        );
        match (num(a, "multipleOf"), num(b, "multipleOf")) {
            (None, Some(_)) => self.fail("MULTIPLE_OF_ADDED", &p("multipleOf")),
            // The new step must divide the old one: every old value stays a multiple.
            (Some(x), Some(y)) if x != y && (y == 0.0 || (x / y).fract() != 0.0) => {
                let kind = if y != 0.0 && (y / x).fract() == 0.0 {
                    "MULTIPLE_OF_EXPANDED"
                } else {
                    "MULTIPLE_OF_CHANGED"
                };
                self.fail(kind, &p("multipleOf"));
            }
            _ => {}
        }
        if !a_int && b_int {
            self.fail("TYPE_NARROWED", &p("type"));
        }
    }

    fn combined(
        &mut self,
        ca: Criterion,
        a: &[Cow<'_, Value>],
        cb: Criterion,
        b: &[Cow<'_, Value>],
        path: &str,
    ) {
        let criterion_ok = ca == cb
            || cb == Criterion::Any
            || (cb == Criterion::One && a.len() == 1)
            || (cb == Criterion::All && a.len() == 1 && b.len() == 1);
        if !criterion_ok {
            return self.fail("COMBINED_TYPE_CHANGED", path);
        }
        // Duplicate branches collapse (compared only when small: equality is a deep walk).
        let pairs = a.len() * a.len() + b.len() * b.len();
        if pairs > self.budget.get() {
            return self.fail("SCHEMA_TOO_COMPLEX_TO_COMPARE", path);
        }
        self.budget.set(self.budget.get() - pairs);
        let dedup = |v: &'_ [Cow<'_, Value>]| -> Vec<Value> {
            let mut out: Vec<Value> = Vec::new();
            for x in v {
                let small = super::count_nodes(x, SMALL_BRANCH + 1) <= SMALL_BRANCH;
                if !(small && out.contains(x)) {
                    out.push(x.as_ref().clone());
                }
            }
            out
        };
        let (a, b) = (dedup(a), dedup(b));
        if a.len() < b.len() && cb == Criterion::All {
            self.fail("PRODUCT_TYPE_EXTENDED", path);
        } else if a.len() > b.len() && cb != Criterion::All {
            self.fail("SUM_TYPE_NARROWED", path);
        }
        // Pair the branches compatibly: a maximum bipartite matching (augmenting paths).
        let edges: Vec<Vec<usize>> = a
            .iter()
            .map(|x| {
                (0..b.len())
                    .filter(|&j| self.compatible(x, &b[j]))
                    .collect()
            })
            .collect();
        let mut owner: Vec<Option<usize>> = vec![None; b.len()];
        let mut matched = 0;
        for i in 0..a.len() {
            let mut seen = vec![false; b.len()];
            if augment(i, &edges, &mut owner, &mut seen) {
                matched += 1;
            }
        }
        if matched < a.len().min(b.len()) {
            self.fail("COMBINED_TYPE_SUBSCHEMAS_CHANGED", path);
        }
    }

    fn objects(&mut self, a: &Map<String, Value>, b: &Map<String, Value>, path: &str) {
        let (ap, bp) = (object_at(a, "properties"), object_at(b, "properties"));
        let required = |o: &Map<String, Value>, k: &str| {
            o.get("required")
                .and_then(Value::as_array)
                .is_some_and(|r| r.iter().any(|x| x.as_str() == Some(k)))
        };
        let has_default = |s: &Value| s.get("default").is_some();
        for k in ap.keys() {
            if let Some(us) = bp.get(k) {
                if !required(a, k) && required(b, k) && !has_default(us) {
                    self.fail("REQUIRED_ATTRIBUTE_ADDED", &format!("{path}/required/{k}"));
                }
            }
        }
        let mut keys: Vec<&String> = ap.keys().chain(bp.keys()).collect();
        keys.sort();
        keys.dedup();
        for k in keys {
            let sub = format!("{path}/properties/{k}");
            match (ap.get(k), bp.get(k)) {
                (Some(os), None) => {
                    if open_content_model(b) {
                        continue;
                    }
                    match partial_schema(b, k) {
                        Some(ps) => {
                            if !self.compatible(os, ps) {
                                self.fail(
                                    "PROPERTY_REMOVED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL",
                                    &sub,
                                );
                            }
                        }
                        None if *os == Value::Bool(false) => {}
                        None => self.fail("PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL", &sub),
                    }
                }
                (None, Some(us)) => {
                    if open_content_model(a) {
                        if !matches!(shape(us), Shape::Empty) {
                            self.fail("PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL", &sub);
                        }
                        continue;
                    }
                    if let Some(ps) = partial_schema(a, k) {
                        if !self.compatible(ps, us) {
                            self.fail(
                                "PROPERTY_ADDED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL",
                                &sub,
                            );
                        }
                    }
                    if required(b, k) && !has_default(us) {
                        self.fail("REQUIRED_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL", &sub);
                    }
                }
                (Some(os), Some(us)) => self.compare(Some(os), Some(us), &sub),
                (None, None) => {}
            }
        }
        self.dependencies(a, b, path);
        self.additional(a, b, "additionalProperties", path);
        let p = |k: &str| format!("{path}/{k}");
        self.upper(
            num(a, "maxProperties"),
            num(b, "maxProperties"),
            "MAX_PROPERTIES",
            &p("maxProperties"),
        );
        self.lower(
            num(a, "minProperties"),
            num(b, "minProperties"),
            "MIN_PROPERTIES",
            &p("minProperties"),
        );
    }

    fn dependencies(&mut self, a: &Map<String, Value>, b: &Map<String, Value>, path: &str) {
        let (ad, bd) = (object_at(a, "dependencies"), object_at(b, "dependencies"));
        for (k, us) in bd.iter() {
            let sub = format!("{path}/dependencies/{k}");
            match (ad.get(k), us) {
                (None, Value::Array(_)) => self.fail("DEPENDENCY_ARRAY_ADDED", &sub),
                (None, _) => self.fail("DEPENDENCY_SCHEMA_ADDED", &sub),
                (Some(Value::Array(oa)), Value::Array(ua)) => {
                    if oa != ua && !ua.iter().all(|x| oa.contains(x)) {
                        self.fail("DEPENDENCY_ARRAY_CHANGED", &sub);
                    }
                }
                (Some(os), _) => self.compare(Some(os), Some(us), &sub),
            }
        }
    }

    /// `additionalProperties` / `additionalItems`: closing ✗, opening ✓, a schema given ✗,
    /// a schema dropped ✓, two schemas compared.
    fn additional(
        &mut self,
        a: &Map<String, Value>,
        b: &Map<String, Value>,
        key: &str,
        path: &str,
    ) {
        let sub = format!("{path}/{key}");
        let permits = |o: &Map<String, Value>| o.get(key) != Some(&Value::Bool(false));
        let schema = |o: &Map<String, Value>| o.get(key).filter(|v| v.is_object()).cloned();
        let upper = key
            .replace("additional", "ADDITIONAL_")
            .to_ascii_uppercase();
        match (permits(a), permits(b)) {
            (true, false) => self.fail(&format!("{upper}_REMOVED"), &sub),
            (false, true) => {}
            _ => match (schema(a), schema(b)) {
                (None, Some(_)) => self.fail(&format!("{upper}_NARROWED"), &sub),
                (Some(x), Some(y)) => self.compare(Some(&x), Some(&y), &sub),
                _ => {}
            },
        }
    }

    fn arrays(&mut self, a: &Map<String, Value>, b: &Map<String, Value>, path: &str) {
        let item_schema =
            |o: &Map<String, Value>| o.get("items").filter(|v| !v.is_array()).cloned();
        let (ai, bi) = (item_schema(a), item_schema(b));
        self.compare(ai.as_ref(), bi.as_ref(), &format!("{path}/items"));
        let tuple = |o: &Map<String, Value>| -> Vec<Value> {
            o.get("items")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
        };
        let (at, bt) = (tuple(a), tuple(b));
        for i in 0..at.len().max(bt.len()) {
            let sub = format!("{path}/items/{i}");
            match (at.get(i), bt.get(i)) {
                (Some(x), Some(y)) => self.compare(Some(x), Some(y), &sub),
                (Some(x), None) => {
                    if open_items(b) {
                        continue;
                    }
                    match b.get("additionalItems").filter(|v| v.is_object()) {
                        Some(ps) => {
                            if !self.compatible(x, ps) {
                                self.fail(
                                    "ITEM_REMOVED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL",
                                    &sub,
                                );
                            }
                        }
                        None if *x == Value::Bool(false) => {}
                        None => self.fail("ITEM_REMOVED_FROM_CLOSED_CONTENT_MODEL", &sub),
                    }
                }
                (None, Some(y)) => {
                    if open_items(a) {
                        if !matches!(shape(y), Shape::Empty) {
                            self.fail("ITEM_ADDED_TO_OPEN_CONTENT_MODEL", &sub);
                        }
                    } else if let Some(ps) = a.get("additionalItems").filter(|v| v.is_object()) {
                        if !self.compatible(ps, y) {
                            self.fail(
                                "ITEM_ADDED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL",
                                &sub,
                            );
                        }
                    }
                }
                (None, None) => {}
            }
        }
        self.additional(a, b, "additionalItems", path);
        let p = |k: &str| format!("{path}/{k}");
        self.upper(
            num(a, "maxItems"),
            num(b, "maxItems"),
            "MAX_ITEMS",
            &p("maxItems"),
        );
        self.lower(
            num(a, "minItems"),
            num(b, "minItems"),
            "MIN_ITEMS",
            &p("minItems"),
        );
        let unique = |o: &Map<String, Value>| o.get("uniqueItems") == Some(&Value::Bool(true));
        if !unique(a) && unique(b) {
            self.fail("UNIQUE_ITEMS_ADDED", &p("uniqueItems"));
        }
    }
}

/// The object under `k` (empty when absent).
fn object_at<'a>(o: &'a Map<String, Value>, k: &str) -> Cow<'a, Map<String, Value>> {
    o.get(k)
        .and_then(Value::as_object)
        .map(Cow::Borrowed)
        .unwrap_or_default()
}

/// Kuhn's augmenting path from left vertex `i`.
fn augment(i: usize, edges: &[Vec<usize>], owner: &mut [Option<usize>], seen: &mut [bool]) -> bool {
    for &j in &edges[i] {
        if seen[j] {
            continue;
        }
        seen[j] = true;
        if owner[j].is_none_or(|k| augment(k, edges, owner, seen)) {
            owner[j] = Some(i);
            return true;
        }
    }
    false
}

/// Open: no patternProperties, and additionalProperties absent or `true`.
fn open_content_model(o: &Map<String, Value>) -> bool {
    !o.contains_key("patternProperties")
        && matches!(
            o.get("additionalProperties"),
            None | Some(Value::Bool(true))
        )
}

/// The schema a partially open object gives property `k`: the first matching
/// patternProperties entry, else an additionalProperties schema.
fn partial_schema<'a>(o: &'a Map<String, Value>, k: &str) -> Option<&'a Value> {
    let by_pattern = o
        .get("patternProperties")
        .and_then(Value::as_object)
        .and_then(|pp| {
            pp.iter().find_map(|(pattern, s)| {
                regex::Regex::new(pattern)
                    .ok()
                    .filter(|re| re.is_match(k))
                    .map(|_| s)
            })
        });
    by_pattern.or_else(|| o.get("additionalProperties").filter(|v| v.is_object()))
}

/// Open tuple: additionalItems absent or `true`.
fn open_items(o: &Map<String, Value>) -> bool {
    matches!(o.get("additionalItems"), None | Some(Value::Bool(true)))
}
