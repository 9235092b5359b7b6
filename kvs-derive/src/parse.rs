//! Reads a struct and its `#[kvs(...)]` attributes into a [`Model`], collecting every error
//! (each with the span of the offending token) so that all are shown at once.

use proc_macro2::Span;
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::{Attribute, Data, DeriveInput, Fields, Ident, LitStr, Type, Visibility};

use crate::serde_attr;
use crate::symbol::{CRATE, DEFAULT_SCHEMA, INDEX, KEY, KVS, NAME, SCHEMA, UNIQUE};

/// A table, as the derive understood it.
pub struct Model<'a> {
    pub ident: &'a Ident,
    pub vis: &'a Visibility,
    pub name: String,
    pub schema: String,
    pub krate: syn::Path,
    pub key: Column<'a>,
    pub indexes: Vec<IndexColumn<'a>>,
    /// The stored fields, in declaration order (a field serde never stores is left out).
    pub fields: Vec<Column<'a>>,
}

/// A field.
#[derive(Clone)]
pub struct Column<'a> {
    pub ident: &'a Ident,
    pub ty: &'a Type,
    /// The name it is stored under: serde's (after `rename` and `rename_all`).
    pub stored: String,
    /// Whether a stored record may lack it and still be read (serde `default`, or a field
    /// serde never reads); `Option` fields are found optional from their type.
    pub defaulted: bool,
    /// Whether serde stores it through functions of its own (`with`, `serialize_with`), so
    /// that its stored form cannot be told from its type.
    pub opaque: bool,
}

/// An indexed field.
pub struct IndexColumn<'a> {
    pub column: Column<'a>,
    pub unique: bool,
    /// The marker type's name (`City` for `city`).
    pub marker: Ident,
}

/// Collects errors.
#[derive(Default)]
struct Errors(Option<syn::Error>);

impl Errors {
    fn push(&mut self, error: syn::Error) {
        match &mut self.0 {
            Some(all) => all.combine(error),
            None => self.0 = Some(error),
        }
    }

    fn at(&mut self, span: &impl Spanned, message: impl std::fmt::Display) {
        self.push(syn::Error::new(span.span(), message));
    }
}

/// Sets `slot` once; a second value is an error at its span.
fn set_once<T>(errors: &mut Errors, slot: &mut Option<T>, value: T, span: Span, key: &str) {
    if slot.is_some() {
        errors.at(&span, format!("duplicate kvs attribute `{key}`"));
    } else {
        *slot = Some(value);
    }
}

// The field loop reads kvs's and serde's attributes together; both feed one Model.
#[allow(clippy::too_many_lines)]
pub fn model(input: &DeriveInput) -> syn::Result<Model<'_>> {
    let mut errors = Errors::default();

    let fields = named_fields(input, &mut errors);
    if !input.generics.params.is_empty() {
        errors.at(
            &input.generics,
            "#[derive(Table)] does not support generic structs: a table has one record type",
        );
    }

    let table = table_attrs(&input.attrs, &mut errors);
    let mut refusals: Vec<(Span, String)> = Vec::new();
    let container = serde_attr::container(&input.attrs, |span, word| {
        refusals.push((
            span,
            format!("#[serde({word})] changes how the whole record is stored; kvs stores a record as an array of its fields in declaration order, which the catalog names"),
        ));
    })
    .unwrap_or_else(|e| {
        errors.push(e);
        serde_attr::Container::default()
    });

    let mut key: Option<Column<'_>> = None;
    let mut indexes = Vec::new();
    let mut stored_fields = Vec::new();
    for field in fields.into_iter().flatten() {
        let Some(ident) = &field.ident else { continue };
        let FieldAttrs {
            key: is_key,
            index: is_index,
            unique: is_unique,
        } = field_attrs(&field.attrs, &mut errors);
        let serde = serde_attr::member(&field.attrs, |span, word| {
            refusals.push((
                span,
                format!("#[serde({word})] with different names: kvs reads a record back under the name it stored it under"),
            ));
        })
        .unwrap_or_else(|e| {
            errors.push(e);
            serde_attr::Member::default()
        });
        let role = if is_key.is_some() {
            Some("the key field")
        } else if is_index.is_some() {
            Some("an indexed field")
        } else {
            None
        };
        check_serde_field(&serde, role, &field.ty, &mut errors);
        let rust_name = ident.unraw().to_string();
        let stored = serde.rename.clone().unwrap_or_else(|| {
            container
                .rename_all
                .map_or_else(|| rust_name.clone(), |rule| rule.field(&rust_name))
        });
        let column = Column {
            ident,
            ty: &field.ty,
            stored,
            defaulted: serde.default.is_some() || container.default,
            opaque: serde.custom.is_some(),
        };
        if !serde.skipped() {
            stored_fields.push(column.clone());
        }
        if let Some(span) = is_key {
            if let Some(span) = is_index.or(is_unique) {
                errors.at(
                    &span,
                    "the key is already unique and ordered: it takes no index",
                );
            }
            if key.is_some() {
                errors.at(
                    &span,
                    "a table has exactly one #[kvs(key)] field; this is a second",
                );
            } else {
                key = Some(column);
            }
        } else if is_index.is_some() {
            indexes.push(IndexColumn {
                marker: Ident::new(&pascal_case(&ident.unraw().to_string()), ident.span()),
                column,
                unique: is_unique.is_some(),
            });
        } else if let Some(span) = is_unique {
            errors.at(
                &span,
                "`unique` qualifies an index: write #[kvs(index, unique)]",
            );
        }
    }
    if key.is_none() && fields.is_some() {
        errors.at(
            &input.ident,
            "no key field: mark exactly one field #[kvs(key)]",
        );
    }

    for (span, message) in refusals {
        errors.at(&span, message);
    }
    if let Some(error) = errors.0 {
        return Err(error);
    }
    let name = table
        .name
        .unwrap_or_else(|| snake_case(&input.ident.unraw().to_string()));
    let key = key.ok_or_else(|| syn::Error::new(input.ident.span(), "no key field"))?;
    Ok(Model {
        ident: &input.ident,
        vis: &input.vis,
        name,
        schema: table.schema.unwrap_or_else(|| DEFAULT_SCHEMA.to_owned()),
        krate: table.krate.unwrap_or_else(|| syn::parse_quote!(::kvs)),
        key,
        indexes,
        fields: stored_fields,
    })
}

/// Whether `ty` is written `Option<...>` (the derive reads types as written).
fn is_option(ty: &Type) -> bool {
    matches!(ty, Type::Path(p) if p.path.segments.last().is_some_and(|s| s.ident == "Option"))
}

/// Refuses, at their spans, the serde attributes whose stored form kvs cannot describe: on
/// any field those that break a positional layout (`flatten`, `skip_serializing_if`, half of
/// `skip`), and on the key or an indexed field (`role`) anything that makes the stored value
/// differ from the one kvs encodes.
fn check_serde_field(
    serde: &serde_attr::Member,
    role: Option<&str>,
    ty: &Type,
    errors: &mut Errors,
) {
    if let Some(span) = serde.flatten {
        errors.at(
            &span,
            "#[serde(flatten)] is not supported in a kvs table: kvs stores a record's fields by position and the catalog names each one, and a flattened field's fields are not known to the derive; declare those fields in the struct",
        );
    }
    if let Some((_, span)) = &serde.skip_if {
        errors.at(
            span,
            "#[serde(skip_serializing_if)] is not supported in a kvs table: kvs stores a record's fields by position, so every field is stored (a None as nil); remove it",
        );
    }
    if !serde.skipped() {
        for (span, what, fix) in [
            (serde.not_stored, "skip_serializing", "skip_deserializing"),
            (serde.not_read, "skip_deserializing", "skip_serializing"),
        ] {
            if let Some(span) = span {
                errors.at(
                    &span,
                    format!("#[serde({what})] without {fix}: kvs stores a record's fields by position, so a field serde writes must be one it reads back; write #[serde(skip)] to leave the field out of the stored record"),
                );
            }
        }
    }
    let Some(role) = role else { return };
    for (span, what) in [
        (
            serde.skip.or(serde.not_stored),
            "a field serde does not store",
        ),
        (serde.not_read, "a field serde does not read back"),
        (serde.custom, "a field with its own serde functions"),
    ] {
        if let Some(span) = span {
            errors.at(
                &span,
                format!("{role} cannot be {what}: kvs encodes its value for the key or index, and tools without the Rust type (the console, import, check) read it from the stored record, so the two must agree"),
            );
        }
    }
    if let (Some(span), false) = (serde.default, is_option(ty)) {
        errors.at(
            &span,
            format!("#[serde(default)] on {role} that is not an Option: a record stored without the field is indexed by its default, which tools without the Rust type (the console's check, repair, delete, import) cannot know; make the field an Option (None is not indexed)"),
        );
    }
}

/// The struct's named fields, or `None` (with an error) for anything else.
fn named_fields<'a>(
    input: &'a DeriveInput,
    errors: &mut Errors,
) -> Option<&'a syn::punctuated::Punctuated<syn::Field, syn::Token![,]>> {
    match &input.data {
        Data::Struct(data) => {
            if let Fields::Named(named) = &data.fields {
                Some(&named.named)
            } else {
                errors.at(
                    &input.ident,
                    "#[derive(Table)] needs a struct with named fields",
                );
                None
            }
        }
        Data::Enum(e) => {
            errors.at(
                &e.enum_token,
                "#[derive(Table)] needs a struct, not an enum",
            );
            None
        }
        Data::Union(u) => {
            errors.at(
                &u.union_token,
                "#[derive(Table)] needs a struct, not a union",
            );
            None
        }
    }
}

/// What `#[kvs(...)]` on the struct says.
#[derive(Default)]
struct TableAttrs {
    name: Option<String>,
    schema: Option<String>,
    krate: Option<syn::Path>,
}

fn table_attrs(attrs: &[Attribute], errors: &mut Errors) -> TableAttrs {
    let mut table = TableAttrs::default();
    each_kvs_word(attrs, errors, |meta, errors| {
        let span = meta.path.span();
        if meta.path.is_ident(NAME) {
            let lit: LitStr = meta.value()?.parse()?;
            if let Err(reason) = check_table_name(&lit.value()) {
                errors.at(&lit, reason);
            }
            set_once(errors, &mut table.name, lit.value(), span, NAME);
        } else if meta.path.is_ident(SCHEMA) {
            let lit: LitStr = meta.value()?.parse()?;
            if lit.value().is_empty() {
                errors.at(&lit, "a schema name must not be empty");
            }
            set_once(errors, &mut table.schema, lit.value(), span, SCHEMA);
        } else if meta.path.is_ident(CRATE) {
            let lit: LitStr = meta.value()?.parse()?;
            match lit.parse::<syn::Path>() {
                Ok(path) => set_once(errors, &mut table.krate, path, span, CRATE),
                Err(_) => errors.at(&lit, "`crate` takes a path, such as \"my_kvs\""),
            }
        } else if is_one_of(&meta.path, &[KEY, INDEX, UNIQUE]) {
            skip_value(meta)?;
            errors.at(
                &meta.path,
                "`key`, `index` and `unique` go on fields, not on the struct",
            );
        } else {
            skip_value(meta)?;
            errors.at(
                &meta.path,
                "unknown kvs attribute: expected `name`, `schema` or `crate` on a struct",
            );
        }
        Ok(())
    });
    table
}

/// What `#[kvs(...)]` on a field says: where each flag was given.
#[derive(Default)]
struct FieldAttrs {
    key: Option<Span>,
    index: Option<Span>,
    unique: Option<Span>,
}

fn field_attrs(attrs: &[Attribute], errors: &mut Errors) -> FieldAttrs {
    let mut field = FieldAttrs::default();
    each_kvs_word(attrs, errors, |meta, errors| {
        let (slot, word) = if meta.path.is_ident(KEY) {
            (&mut field.key, KEY)
        } else if meta.path.is_ident(INDEX) {
            (&mut field.index, INDEX)
        } else if meta.path.is_ident(UNIQUE) {
            (&mut field.unique, UNIQUE)
        } else {
            skip_value(meta)?;
            let message = if is_one_of(&meta.path, &[NAME, SCHEMA, CRATE]) {
                "`name`, `schema` and `crate` go on the struct, not on fields"
            } else {
                "unknown kvs attribute: expected `key`, `index` or `unique` on a field"
            };
            errors.at(&meta.path, message);
            return Ok(());
        };
        if meta.input.peek(syn::Token![=]) {
            skip_value(meta)?;
            errors.at(&meta.path, format!("`{word}` takes no value"));
        } else {
            let span = meta.path.span();
            set_once(errors, slot, span, span, word);
        }
        Ok(())
    });
    field
}

/// Calls `f` on each word of each `#[kvs(...)]` attribute; a syntax error is collected and
/// ends that attribute.
fn each_kvs_word(
    attrs: &[Attribute],
    errors: &mut Errors,
    mut f: impl FnMut(&syn::meta::ParseNestedMeta<'_>, &mut Errors) -> syn::Result<()>,
) {
    for attr in attrs.iter().filter(|a| a.path().is_ident(KVS)) {
        let result = attr.parse_nested_meta(|meta| f(&meta, errors));
        if let Err(e) = result {
            errors.push(e);
        }
    }
}

/// Consumes `= value` after a word that is reported as misplaced or unknown, so that parsing
/// goes on to the next word and reports it too.
fn skip_value(meta: &syn::meta::ParseNestedMeta<'_>) -> syn::Result<()> {
    if meta.input.peek(syn::Token![=]) {
        meta.value()?.parse::<syn::Expr>()?;
    }
    Ok(())
}

fn is_one_of(path: &syn::Path, words: &[&str]) -> bool {
    words.iter().any(|word| path.is_ident(word))
}

/// Table names are non-empty and made of letters, digits, `_`, `-`, `.` and `/`: `#` is kept
/// for kvs's own tables and index tables (`users#email`).
fn check_table_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("a table name must not be empty".to_owned());
    }
    match name
        .chars()
        .find(|c| !(c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | '/')))
    {
        Some(c) => Err(format!(
            "a table name may hold letters, digits, `_`, `-`, `.` and `/`, not {c:?}"
        )),
        None => Ok(()),
    }
}

fn snake_case(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.extend(c.to_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

fn pascal_case(name: &str) -> String {
    name.split('_')
        .filter(|part| !part.is_empty())
        .map(|part| {
            let mut chars = part.chars();
            chars
                .next()
                .map(|first| first.to_uppercase().chain(chars).collect::<String>())
                .unwrap_or_default()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_conversions() {
        assert_eq!(snake_case("UserProfile"), "user_profile");
        assert_eq!(snake_case("User"), "user");
        assert_eq!(pascal_case("created_at"), "CreatedAt");
        assert_eq!(pascal_case("city"), "City");
        assert!(check_table_name("chat/general").is_ok());
        assert!(check_table_name("users#email").is_err());
        assert!(check_table_name("").is_err());
    }
}
