//! `#[derive(KeyEnum)]`: a unit-only enum as a key or indexed value, stored as its variant's
//! position and named in the catalog by serde's names for its variants.

use proc_macro2::TokenStream;
use quote::quote;
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::{Data, DeriveInput, Fields, LitStr};

use crate::serde_attr;
use crate::symbol::{CRATE, KVS};

// Reads the enum and generates its three impls; the reading collects every error first.
#[allow(clippy::too_many_lines)]
pub fn derive_key_enum(input: &DeriveInput) -> syn::Result<TokenStream> {
    let Data::Enum(data) = &input.data else {
        return Err(syn::Error::new(
            input.ident.span(),
            "#[derive(KeyEnum)] needs an enum whose variants have no fields",
        ));
    };
    let mut error: Option<syn::Error> = None;
    let mut push = |e: syn::Error| match &mut error {
        Some(all) => all.combine(e),
        None => error = Some(e),
    };
    if !input.generics.params.is_empty() {
        push(syn::Error::new(
            input.generics.span(),
            "#[derive(KeyEnum)] does not support generic enums",
        ));
    }
    let mut krate: syn::Path = syn::parse_quote!(::kvs);
    for attr in input.attrs.iter().filter(|a| a.path().is_ident(KVS)) {
        let parsed = attr.parse_nested_meta(|meta| {
            if meta.path.is_ident(CRATE) {
                let lit: LitStr = meta.value()?.parse()?;
                krate = lit.parse()?;
                Ok(())
            } else {
                Err(meta.error("unknown kvs attribute: expected `crate` on a KeyEnum"))
            }
        });
        if let Err(e) = parsed {
            push(e);
        }
    }
    let mut refused = Vec::new();
    let container = serde_attr::container(&input.attrs, |span, word| {
        refused.push(syn::Error::new(
            span,
            format!("#[serde({word})] changes how the enum is stored; a KeyEnum is stored by serde as its variant's name"),
        ));
    })?;
    let mut names = Vec::new();
    let mut arms = Vec::new();
    for (position, variant) in data.variants.iter().enumerate() {
        if !matches!(variant.fields, Fields::Unit) {
            push(syn::Error::new(
                variant.fields.span(),
                "a KeyEnum's variants have no fields: it is stored as one of its names",
            ));
        }
        let member = serde_attr::member(&variant.attrs, |span, word| {
            refused.push(syn::Error::new(
                span,
                format!("#[serde({word})] with different names: kvs reads a value back under the name it stored it under"),
            ));
        })?;
        if let Some(span) = member.not_stored.or(member.not_read).or(member.custom) {
            push(syn::Error::new(
                span,
                "a KeyEnum's variants are all stored by name: skipped variants or variants with their own serde functions are not supported",
            ));
        }
        let rust = variant.ident.unraw().to_string();
        names.push(member.rename.unwrap_or_else(|| {
            container
                .rename_all
                .map_or_else(|| rust.clone(), |rule| rule.variant(&rust))
        }));
        let ident = &variant.ident;
        let position = u32::try_from(position).unwrap_or(u32::MAX);
        arms.push(quote!(Self::#ident => #position,));
    }
    for e in refused {
        push(e);
    }
    if let Some(error) = error {
        return Err(error);
    }
    let ident = &input.ident;
    // One kind per enum, so that a value of one enum never passes for another's index.
    let mut kind: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in format!("kvs-enum:{ident}:{}", names.join(",")).bytes() {
        kind = (kind ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
    }
    Ok(quote! {
        const _: () = {
            #[automatically_derived]
            impl #krate::KeyEnum for #ident {
                const VARIANTS: &'static [&'static str] = &[#(#names),*];
                const KIND: u64 = #kind;
                #[inline]
                fn position(&self) -> u32 {
                    match self {
                        #(#arms)*
                    }
                }
            }

            #[automatically_derived]
            impl #krate::IndexArg for #ident {
                const KIND: u64 = <Self as #krate::KeyEnum>::KIND;
                fn encode_as(&self, ty: &#krate::KeyType, out: &mut ::std::vec::Vec<u8>) -> bool {
                    #krate::__private::encode_enum(self, ty, out)
                }
            }

            #[automatically_derived]
            impl #krate::FieldType for #ident {
                fn field_kind() -> #krate::FieldKind {
                    #krate::FieldKind::Enum(
                        <Self as #krate::KeyEnum>::VARIANTS
                            .iter()
                            .map(|&name| ::std::borrow::ToOwned::to_owned(name))
                            .collect(),
                    )
                }
            }
        };
    })
}
