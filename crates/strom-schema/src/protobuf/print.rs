//! Prints a compiled `.proto` file back as `.proto` text: the form a schema submitted as a
//! descriptor is stored and served in (as Confluent serves every Protobuf schema), and the
//! normalized form. Types are written fully qualified, options from the descriptor's option
//! messages (custom ones as `(name)`), nested messages interleaved with map fields so the
//! recompiled descriptor lists its nested types in the same order (message indexes depend on
//! it). Editions files and proto2 groups are not printed (`None`); callers check the printed
//! text compiles back to the same descriptor before using it.

use std::fmt::Write;

use prost_reflect::{
    DynamicMessage, EnumDescriptor, ExtensionDescriptor, FieldDescriptor, FileDescriptor, Kind,
    MessageDescriptor, Syntax, Value,
};

/// The file as `.proto` text, or `None` when it uses what this printer does not write.
pub fn to_proto_text(file: &FileDescriptor) -> Option<String> {
    let proto = file.file_descriptor_proto();
    if proto.syntax.as_deref() == Some("editions") {
        return None;
    }
    let mut p = Printer {
        out: String::new(),
        proto3: file.syntax() == Syntax::Proto3,
    };
    p.line(
        0,
        if p.proto3 {
            "syntax = \"proto3\";"
        } else {
            "syntax = \"proto2\";"
        },
    );
    if !file.package_name().is_empty() {
        p.line(0, &format!("package {};", file.package_name()));
    }
    for (i, dep) in proto.dependency.iter().enumerate() {
        let i = i as i32;
        let kind = if proto.public_dependency.contains(&i) {
            "public "
        } else if proto.weak_dependency.contains(&i) {
            "weak "
        } else {
            ""
        };
        p.line(0, &format!("import {kind}{};", quote(dep.as_bytes())));
    }
    p.options(0, &file.options());
    for e in file.enums() {
        p.enumeration(0, &e);
    }
    for m in file.messages() {
        p.message(0, &m)?;
    }
    p.extensions(0, file.extensions().collect())?;
    for s in file.services() {
        p.line(0, &format!("service {} {{", s.name()));
        p.options(1, &s.options());
        for m in s.methods() {
            let stream = |yes: bool| if yes { "stream " } else { "" };
            let options = option_list(&m.options());
            let head = format!(
                "rpc {} ({}.{}) returns ({}.{})",
                m.name(),
                stream(m.is_client_streaming()),
                m.input().full_name(),
                stream(m.is_server_streaming()),
                m.output().full_name()
            );
            if options.is_empty() {
                p.line(1, &format!("{head};"));
            } else {
                p.line(1, &format!("{head} {{"));
                for o in options {
                    p.line(2, &format!("option {o};"));
                }
                p.line(1, "}");
            }
        }
        p.line(0, "}");
    }
    Some(p.out)
}

struct Printer {
    out: String,
    proto3: bool,
}

impl Printer {
    fn line(&mut self, indent: usize, text: &str) {
        for _ in 0..indent {
            self.out.push_str("  ");
        }
        self.out.push_str(text);
        self.out.push('\n');
    }

    fn options(&mut self, indent: usize, options: &DynamicMessage) {
        for o in option_list(options) {
            self.line(indent, &format!("option {o};"));
        }
    }

    fn enumeration(&mut self, indent: usize, e: &EnumDescriptor) {
        self.line(indent, &format!("enum {} {{", e.name()));
        self.options(indent + 1, &e.options());
        // Declaration order (aliases share a number, and values() is by number).
        for vp in &e.enum_descriptor_proto().value {
            let opts = e
                .get_value_by_name(vp.name())
                .map(|v| bracketed(option_list(&v.options())))
                .unwrap_or_default();
            self.line(
                indent + 1,
                &format!("{} = {}{opts};", vp.name(), vp.number()),
            );
        }
        for r in e.reserved_ranges() {
            let (start, end) = (*r.start(), *r.end());
            let range = if start == end {
                start.to_string()
            } else if end == i32::MAX {
                format!("{start} to max")
            } else {
                format!("{start} to {end}")
            };
            self.line(indent + 1, &format!("reserved {range};"));
        }
        self.reserved_names(indent + 1, e.reserved_names().collect());
        self.line(indent, "}");
    }

    fn reserved_names(&mut self, indent: usize, names: Vec<&str>) {
        if !names.is_empty() {
            let names: Vec<String> = names.iter().map(|n| quote(n.as_bytes())).collect();
            self.line(indent, &format!("reserved {};", names.join(", ")));
        }
    }

    fn message(&mut self, indent: usize, m: &MessageDescriptor) -> Option<()> {
        self.line(indent, &format!("message {} {{", m.name()));
        let inner = indent + 1;
        self.options(inner, &m.options());
        for e in m.child_enums() {
            self.enumeration(inner, &e);
        }
        // Nested messages in their order, each map field where its entry type sits.
        let nested: Vec<MessageDescriptor> = m.child_messages().collect();
        let mut next_nested = 0;
        let mut printed_oneofs = Vec::new();
        for f in m.fields() {
            if let Kind::Message(entry) = f.kind() {
                if f.is_map() {
                    while next_nested < nested.len()
                        && nested[next_nested].full_name() != entry.full_name()
                    {
                        if !nested[next_nested].is_map_entry() {
                            self.message(inner, &nested[next_nested])?;
                        }
                        next_nested += 1;
                    }
                    next_nested += 1;
                }
            }
            match f.containing_oneof().filter(|o| !o.is_synthetic()) {
                Some(o) => {
                    if printed_oneofs.iter().any(|n: &String| n == o.name()) {
                        continue;
                    }
                    printed_oneofs.push(o.name().to_owned());
                    self.line(inner, &format!("oneof {} {{", o.name()));
                    self.options(inner + 1, &o.options());
                    for of in o.fields() {
                        let text = self.field(&of, true)?;
                        self.line(inner + 1, &text);
                    }
                    self.line(inner, "}");
                }
                None => {
                    let text = self.field(&f, false)?;
                    self.line(inner, &text);
                }
            }
        }
        for n in &nested[next_nested.min(nested.len())..] {
            if !n.is_map_entry() {
                self.message(inner, n)?;
            }
        }
        for r in m.extension_ranges() {
            self.line(inner, &format!("extensions {};", range(r.start, r.end)));
        }
        for r in m.reserved_ranges() {
            self.line(inner, &format!("reserved {};", range(r.start, r.end)));
        }
        self.reserved_names(inner, m.reserved_names().collect());
        self.extensions(inner, m.child_extensions().collect())?;
        self.line(indent, "}");
        Some(())
    }

    /// `extend` blocks, one per extended message, in declaration order.
    fn extensions(&mut self, indent: usize, exts: Vec<ExtensionDescriptor>) -> Option<()> {
        let mut done: Vec<String> = Vec::new();
        for x in &exts {
            let extendee = x.containing_message().full_name().to_owned();
            if done.contains(&extendee) {
                continue;
            }
            self.line(indent, &format!("extend .{extendee} {{"));
            for y in exts
                .iter()
                .filter(|y| y.containing_message().full_name() == extendee)
            {
                let proto = y.field_descriptor_proto();
                let label = match (y.is_list(), self.proto3, y.cardinality()) {
                    (true, _, _) => "repeated ",
                    (false, true, _) => "",
                    (false, false, prost_reflect::Cardinality::Required) => "required ",
                    (false, false, _) => "optional ",
                };
                if proto.r#type() == prost_types::field_descriptor_proto::Type::Group {
                    return None;
                }
                let opts = bracketed(field_options(y.kind(), proto, &y.options(), None));
                self.line(
                    indent + 1,
                    &format!(
                        "{label}{} {} = {}{opts};",
                        type_name(&y.kind()),
                        y.name(),
                        y.number()
                    ),
                );
            }
            self.line(indent, "}");
            done.push(extendee);
        }
        Some(())
    }

    fn field(&self, f: &FieldDescriptor, in_oneof: bool) -> Option<String> {
        if f.is_group() {
            return None;
        }
        let proto = f.field_descriptor_proto();
        let ty = if f.is_map() {
            let Kind::Message(entry) = f.kind() else {
                return None;
            };
            format!(
                "map<{}, {}>",
                type_name(&entry.map_entry_key_field().kind()),
                type_name(&entry.map_entry_value_field().kind())
            )
        } else {
            type_name(&f.kind())
        };
        let label = if in_oneof || f.is_map() {
            ""
        } else if f.is_list() {
            "repeated "
        } else if self.proto3 {
            if proto.proto3_optional() {
                "optional "
            } else {
                ""
            }
        } else if f.is_required() {
            "required "
        } else {
            "optional "
        };
        let opts = bracketed(field_options(
            f.kind(),
            proto,
            &f.options(),
            Some(json_name_default(f.name())),
        ));
        Some(format!("{label}{ty} {} = {}{opts};", f.name(), f.number()))
    }
}

/// `N`, `N to M` or `N to max` for a half-open descriptor range.
fn range(start: u32, end: u32) -> String {
    // 536870912 is one past the largest field number.
    if end >= 536_870_912 {
        format!("{start} to max")
    } else if end == start + 1 {
        start.to_string()
    } else {
        format!("{start} to {}", end - 1)
    }
}

fn bracketed(options: Vec<String>) -> String {
    if options.is_empty() {
        String::new()
    } else {
        format!(" [{}]", options.join(", "))
    }
}

/// The options of a field: `default`, a `json_name` that differs from the derived one, then
/// the option message's fields.
fn field_options(
    kind: Kind,
    proto: &prost_types::FieldDescriptorProto,
    options: &DynamicMessage,
    derived_json_name: Option<String>,
) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(d) = &proto.default_value {
        let value = match kind {
            Kind::String => quote(d.as_bytes()),
            // Already escaped in the descriptor.
            Kind::Bytes => format!("\"{d}\""),
            _ => d.clone(),
        };
        out.push(format!("default = {value}"));
    }
    if let (Some(j), Some(derived)) = (&proto.json_name, derived_json_name) {
        if *j != derived {
            out.push(format!("json_name = {}", quote(j.as_bytes())));
        }
    }
    out.extend(option_list(options));
    out
}

/// protoc's default JSON name: underscores dropped, the next letter upper-cased.
fn json_name_default(name: &str) -> String {
    let mut out = String::new();
    let mut upper = false;
    for c in name.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// `name = value` for each set option (custom options as `(full.name)`); repeated options
/// once per element.
fn option_list(options: &DynamicMessage) -> Vec<String> {
    let mut out = Vec::new();
    let mut push = |name: String, kind: Kind, value: &Value| match value {
        Value::List(items) => {
            for v in items {
                out.push(format!("{name} = {}", value_text(&kind, v)));
            }
        }
        v => out.push(format!("{name} = {}", value_text(&kind, v))),
    };
    for (f, v) in options.fields() {
        push(f.name().to_owned(), f.kind(), v);
    }
    for (x, v) in options.extensions() {
        push(format!("({})", x.full_name()), x.kind(), v);
    }
    out
}

fn value_text(kind: &Kind, v: &Value) -> String {
    let float = |x: f64| {
        if x.is_nan() {
            "nan".to_owned()
        } else if x.is_infinite() {
            if x > 0.0 { "inf" } else { "-inf" }.to_owned()
        } else {
            format!("{x:?}")
        }
    };
    match v {
        Value::Bool(b) => b.to_string(),
        Value::I32(x) => x.to_string(),
        Value::I64(x) => x.to_string(),
        Value::U32(x) => x.to_string(),
        Value::U64(x) => x.to_string(),
        Value::F32(x) => float(f64::from(*x)),
        Value::F64(x) => float(*x),
        Value::String(s) => quote(s.as_bytes()),
        Value::Bytes(b) => quote(b),
        Value::EnumNumber(n) => match kind {
            Kind::Enum(e) => e
                .get_value(*n)
                .map(|v| v.name().to_owned())
                .unwrap_or_else(|| n.to_string()),
            _ => n.to_string(),
        },
        Value::Message(m) => format!("{{ {} }}", m.to_text_format()),
        Value::List(_) | Value::Map(_) => String::new(),
    }
}

fn type_name(kind: &Kind) -> String {
    match kind {
        Kind::Double => "double".into(),
        Kind::Float => "float".into(),
        Kind::Int32 => "int32".into(),
        Kind::Int64 => "int64".into(),
        Kind::Uint32 => "uint32".into(),
        Kind::Uint64 => "uint64".into(),
        Kind::Sint32 => "sint32".into(),
        Kind::Sint64 => "sint64".into(),
        Kind::Fixed32 => "fixed32".into(),
        Kind::Fixed64 => "fixed64".into(),
        Kind::Sfixed32 => "sfixed32".into(),
        Kind::Sfixed64 => "sfixed64".into(),
        Kind::Bool => "bool".into(),
        Kind::String => "string".into(),
        Kind::Bytes => "bytes".into(),
        Kind::Message(m) => format!(".{}", m.full_name()),
        Kind::Enum(e) => format!(".{}", e.full_name()),
    }
}

/// A protobuf string literal: printable ASCII and UTF-8 as is, the rest octal-escaped.
fn quote(bytes: &[u8]) -> String {
    let mut out = String::from("\"");
    let text = std::str::from_utf8(bytes).ok();
    match text {
        Some(t) => {
            for c in t.chars() {
                match c {
                    '"' => out.push_str("\\\""),
                    '\\' => out.push_str("\\\\"),
                    '\n' => out.push_str("\\n"),
                    '\r' => out.push_str("\\r"),
                    '\t' => out.push_str("\\t"),
                    c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                        let _ = write!(out, "\\{:03o}", c as u32);
                    }
                    c => out.push(c),
                }
            }
        }
        None => {
            for &b in bytes {
                match b {
                    b'"' => out.push_str("\\\""),
                    b'\\' => out.push_str("\\\\"),
                    0x20..=0x7e => out.push(b as char),
                    _ => {
                        let _ = write!(out, "\\{b:03o}");
                    }
                }
            }
        }
    }
    out.push('"');
    out
}
