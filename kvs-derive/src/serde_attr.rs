//! Reads the `#[serde(...)]` attributes that decide how a record is stored, so that the catalog
//! names each field as it is stored (not as it is spelled in Rust), and refuses, with a span,
//! the attributes whose stored form kvs cannot describe.
//!
//! Only the attributes that change stored names or presence are read; every other serde
//! attribute is passed over (serde itself checks them).

use proc_macro2::Span;
use syn::ext::IdentExt;
use syn::meta::ParseNestedMeta;
use syn::spanned::Spanned;
use syn::{Attribute, LitStr};

use crate::symbol::SERDE;

/// What serde's attributes on the struct (or enum) say.
#[derive(Default)]
pub struct Container {
    /// `rename_all = "..."`: how field (or variant) names are spelled when stored.
    pub rename_all: Option<RenameRule>,
    /// `default`: a missing field takes its default.
    pub default: bool,
}

impl Member {
    /// Whether serde neither stores nor reads the field (`skip`, or both halves of it).
    pub fn skipped(&self) -> bool {
        self.skip.is_some() || (self.not_stored.is_some() && self.not_read.is_some())
    }
}

/// What serde's attributes on one field (or variant) say.
#[derive(Default)]
pub struct Member {
    /// `rename = "..."`.
    pub rename: Option<String>,
    /// `default` or `default = "..."`: where it was written.
    pub default: Option<Span>,
    /// `skip`: neither stored nor read.
    pub skip: Option<Span>,
    /// `skip_serializing`: never stored.
    pub not_stored: Option<Span>,
    /// `skip_deserializing`: never read back.
    pub not_read: Option<Span>,
    /// `skip_serializing_if = "path"`: the path, and where it was written.
    pub skip_if: Option<(String, Span)>,
    /// `with`, `serialize_with` or `deserialize_with`: a stored form of the field's own.
    pub custom: Option<Span>,
    /// `flatten`.
    pub flatten: Option<Span>,
}

/// serde's `rename_all` rules.
#[derive(Clone, Copy)]
pub enum RenameRule {
    Lower,
    Upper,
    Pascal,
    Camel,
    Snake,
    ScreamingSnake,
    Kebab,
    ScreamingKebab,
}

impl RenameRule {
    fn parse(lit: &LitStr) -> syn::Result<RenameRule> {
        Ok(match lit.value().as_str() {
            "lowercase" => RenameRule::Lower,
            "UPPERCASE" => RenameRule::Upper,
            "PascalCase" => RenameRule::Pascal,
            "camelCase" => RenameRule::Camel,
            "snake_case" => RenameRule::Snake,
            "SCREAMING_SNAKE_CASE" => RenameRule::ScreamingSnake,
            "kebab-case" => RenameRule::Kebab,
            "SCREAMING-KEBAB-CASE" => RenameRule::ScreamingKebab,
            other => {
                return Err(syn::Error::new(
                    lit.span(),
                    format!("unknown serde rename_all rule {other:?}"),
                ))
            }
        })
    }

    /// A field name (`snake_case` in Rust) as serde stores it under this rule.
    pub fn field(self, name: &str) -> String {
        match self {
            RenameRule::Lower | RenameRule::Snake => name.to_owned(),
            RenameRule::Upper | RenameRule::ScreamingSnake => name.to_ascii_uppercase(),
            RenameRule::Pascal => {
                let mut out = String::new();
                let mut upper = true;
                for c in name.chars() {
                    if c == '_' {
                        upper = true;
                    } else if upper {
                        out.push(c.to_ascii_uppercase());
                        upper = false;
                    } else {
                        out.push(c);
                    }
                }
                out
            }
            RenameRule::Camel => {
                let pascal = RenameRule::Pascal.field(name);
                lower_first(&pascal)
            }
            RenameRule::Kebab => name.replace('_', "-"),
            RenameRule::ScreamingKebab => name.replace('_', "-").to_ascii_uppercase(),
        }
    }

    /// A variant name (`PascalCase` in Rust) as serde stores it under this rule.
    pub fn variant(self, name: &str) -> String {
        match self {
            RenameRule::Pascal => name.to_owned(),
            RenameRule::Lower => name.to_ascii_lowercase(),
            RenameRule::Upper => name.to_ascii_uppercase(),
            RenameRule::Camel => lower_first(name),
            RenameRule::Snake => {
                let mut out = String::new();
                for (i, c) in name.char_indices() {
                    if i > 0 && c.is_uppercase() {
                        out.push('_');
                    }
                    out.push(c.to_ascii_lowercase());
                }
                out
            }
            RenameRule::ScreamingSnake => RenameRule::Snake.variant(name).to_ascii_uppercase(),
            RenameRule::Kebab => RenameRule::Snake.variant(name).replace('_', "-"),
            RenameRule::ScreamingKebab => {
                RenameRule::ScreamingSnake.variant(name).replace('_', "-")
            }
        }
    }
}

fn lower_first(name: &str) -> String {
    let mut chars = name.chars();
    chars
        .next()
        .map(|first| first.to_ascii_lowercase().to_string() + chars.as_str())
        .unwrap_or_default()
}

/// The container attributes; `refused` is called for each one that changes the stored shape
/// of the whole record (`tag`, `untagged`, `transparent`, `from`, `into`, ...).
pub fn container(
    attrs: &[Attribute],
    mut refused: impl FnMut(Span, &str),
) -> syn::Result<Container> {
    let mut out = Container::default();
    for attr in attrs.iter().filter(|a| a.path().is_ident(SERDE)) {
        attr.parse_nested_meta(|meta| {
            let word = word(&meta);
            match word.as_str() {
                "rename_all" => {
                    if let Some(lit) = one_name(&meta, &mut refused, "rename_all")? {
                        out.rename_all = Some(RenameRule::parse(&lit)?);
                    }
                }
                "default" => {
                    skip_value(&meta)?;
                    out.default = true;
                }
                "tag" | "content" | "untagged" | "transparent" | "from" | "try_from" | "into"
                | "remote" => {
                    skip_value(&meta)?;
                    refused(meta.path.span(), &word);
                }
                _ => skip_value(&meta)?,
            }
            Ok(())
        })?;
    }
    Ok(out)
}

/// The attributes of one field or variant.
pub fn member(attrs: &[Attribute], mut refused: impl FnMut(Span, &str)) -> syn::Result<Member> {
    let mut out = Member::default();
    for attr in attrs.iter().filter(|a| a.path().is_ident(SERDE)) {
        attr.parse_nested_meta(|meta| {
            let span = meta.path.span();
            match word(&meta).as_str() {
                "rename" => {
                    if let Some(lit) = one_name(&meta, &mut refused, "rename")? {
                        out.rename = Some(lit.value());
                    }
                }
                "default" => {
                    skip_value(&meta)?;
                    out.default = Some(span);
                }
                "skip" => out.skip = Some(span),
                "skip_serializing" => out.not_stored = Some(span),
                "skip_deserializing" => out.not_read = Some(span),
                "skip_serializing_if" => {
                    let lit: LitStr = meta.value()?.parse()?;
                    out.skip_if = Some((lit.value().replace(' ', ""), lit.span()));
                }
                "with" | "serialize_with" | "deserialize_with" => {
                    skip_value(&meta)?;
                    out.custom = Some(span);
                }
                "flatten" => out.flatten = Some(span),
                _ => skip_value(&meta)?,
            }
            Ok(())
        })?;
    }
    Ok(out)
}

fn word(meta: &ParseNestedMeta<'_>) -> String {
    meta.path
        .get_ident()
        .map(|i| i.unraw().to_string())
        .unwrap_or_default()
}

/// `key = "name"`, or `key(serialize = "a", deserialize = "b")` with both the same (a record
/// is read back under the name it was stored under, so the two must agree).
fn one_name(
    meta: &ParseNestedMeta<'_>,
    refused: &mut impl FnMut(Span, &str),
    key: &str,
) -> syn::Result<Option<LitStr>> {
    if meta.input.peek(syn::Token![=]) {
        return Ok(Some(meta.value()?.parse()?));
    }
    let (mut ser, mut de) = (None::<LitStr>, None::<LitStr>);
    meta.parse_nested_meta(|inner| {
        let lit: LitStr = inner.value()?.parse()?;
        if inner.path.is_ident("serialize") {
            ser = Some(lit);
        } else if inner.path.is_ident("deserialize") {
            de = Some(lit);
        }
        Ok(())
    })?;
    match (ser, de) {
        (Some(a), Some(b)) if a.value() == b.value() => Ok(Some(a)),
        _ => {
            refused(meta.path.span(), &format!("{key}(serialize/deserialize)"));
            Ok(None)
        }
    }
}

/// Consumes whatever follows a word kvs does not read: `= value` or `(...)`.
fn skip_value(meta: &ParseNestedMeta<'_>) -> syn::Result<()> {
    if meta.input.peek(syn::Token![=]) {
        meta.value()?.parse::<syn::Expr>()?;
    } else if meta.input.peek(syn::token::Paren) {
        meta.parse_nested_meta(|inner| skip_value(&inner))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::RenameRule;

    #[test]
    fn rename_rules_match_serde() {
        assert_eq!(RenameRule::Camel.field("home_city"), "homeCity");
        assert_eq!(RenameRule::Pascal.field("home_city"), "HomeCity");
        assert_eq!(RenameRule::ScreamingKebab.field("home_city"), "HOME-CITY");
        assert_eq!(RenameRule::Kebab.field("home_city"), "home-city");
        assert_eq!(RenameRule::Snake.variant("OnHold"), "on_hold");
        assert_eq!(RenameRule::ScreamingSnake.variant("OnHold"), "ON_HOLD");
        assert_eq!(RenameRule::Camel.variant("OnHold"), "onHold");
        assert_eq!(RenameRule::Kebab.variant("OnHold"), "on-hold");
        assert_eq!(RenameRule::Lower.variant("OnHold"), "onhold");
    }
}
