//! Generates the `Table` impl, the field markers and the registration from a [`Model`].

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::DeriveInput;

use crate::parse::{model, Model};

pub fn derive_table(input: &DeriveInput) -> syn::Result<TokenStream> {
    let model = model(input)?;
    Ok(expand(&model))
}

// One quote! template per generated item: splitting it would scatter what is generated.
#[allow(clippy::too_many_lines)]
fn expand(model: &Model<'_>) -> TokenStream {
    let Model {
        ident,
        vis: _,
        name,
        schema,
        krate,
        key,
        indexes,
        fields,
    } = model;
    let key_ident = key.ident;
    let key_ty = key.ty;
    let key_field = &key.stored;
    let type_name = ident.to_string();
    let namespace = format_ident!("{}Field", ident);

    let key_type = quote_spanned!(key_ty.span()=> type Key = #key_ty;);
    let index_metas = indexes.iter().map(|ix| {
        let field = &ix.column.stored;
        let table = format!("{name}#{field}");
        let unique = ix.unique;
        let ty = ix.column.ty;
        let value_type = quote_spanned!(ty.span()=> <#ty as #krate::IndexValue>::value_type);
        quote! {
            #krate::IndexMeta {
                field: #field,
                table: #table,
                unique: #unique,
                value_type: #value_type,
            }
        }
    });
    let encode_arms = indexes.iter().enumerate().map(|(i, ix)| {
        let field = ix.column.ident;
        let ty = ix.column.ty;
        quote_spanned!(ty.span()=> #i => <#ty as #krate::IndexValue>::encode_index(&self.#field, out),)
    });
    let field_markers = field_markers(model, &namespace);
    let field_names = fields.iter().map(|f| &f.stored);
    let columns = fields.iter().map(|f| {
        let stored = &f.stored;
        let ty = f.ty;
        let defaulted = f.defaulted;
        let kind = if f.opaque {
            // Stored by functions of its own: its form cannot be told from its type.
            quote!(|| #krate::FieldKind::Any)
        } else {
            quote!(|| {
                #[allow(unused_imports)]
                use #krate::__private::{ProbeAny as _, ProbeKnown as _};
                (&&#krate::__private::Probe::<#ty>::new()).field_kind()
            })
        };
        quote! {
            #krate::ColumnMeta {
                name: #stored,
                kind: #kind,
                defaulted: #defaulted,
            }
        }
    });
    let marker_impls = indexes.iter().enumerate().map(|(i, ix)| {
        let marker = &ix.marker;
        let ty = ix.column.ty;
        let value = quote_spanned!(ty.span()=> type Value = #ty;);
        let mismatch = mismatch_messages(&format!("{namespace}::{marker}"), ty);
        quote! {
            #[automatically_derived]
            impl #krate::IndexField<#ident> for #namespace::#marker {
                const INDEX: usize = #i;
                #value
                const MISMATCH: [&'static str; 6] = [#(#mismatch),*];
            }
        }
    });

    quote! {
        #field_markers

        #[allow(non_local_definitions)]
        const _: () = {
            #[automatically_derived]
            impl #krate::Table for #ident {
                #key_type

                const META: #krate::TableMeta = #krate::TableMeta {
                    name: #name,
                    schema: #schema,
                    rust_type: ::core::concat!(::core::module_path!(), "::", #type_name),
                    key_field: #key_field,
                    key_type: <#key_ty as #krate::Key>::key_type,
                    fields: &[#(#field_names),*],
                    columns: &[#(#columns),*],
                    indexes: &[#(#index_metas),*],
                    reindex: #krate::__private::reindex::<#ident>,
                    upgrade: #krate::__private::upgrade::<#ident>,
                };

                #[inline]
                fn key(&self) -> &Self::Key {
                    &self.#key_ident
                }

                #[inline]
                fn encode_index(&self, index: usize, out: &mut ::std::vec::Vec<u8>) -> bool {
                    match index {
                        #(#encode_arms)*
                        _ => false,
                    }
                }
            }

            #(#marker_impls)*

            #krate::__private::inventory::submit! {
                #krate::__private::Registration {
                    meta: &<#ident as #krate::Table>::META,
                }
            }
        };
    }
}

/// The messages of the compile-time check of a lookup value for the field `marker` of type
/// `ty`, one per kind of value passed (in `IndexField::MISMATCH` order).
fn mismatch_messages(marker: &str, ty: &syn::Type) -> Vec<String> {
    let shown = quote!(#ty)
        .to_string()
        .replace(" < ", "<")
        .replace(" >", ">")
        .replace(" ,", ",");
    let hint = accepted(ty);
    [
        "an integer",
        "a bool",
        "a char",
        "a string",
        "bytes",
        "another kind of value (a tuple or an enum of another type)",
    ]
    .iter()
    .map(|value| format!("`{marker}` is a `{shown}` field, and this value is {value}: pass {hint}"))
    .collect()
}

/// What a lookup of a field of type `ty` takes, for people (read from the type as written).
fn accepted(ty: &syn::Type) -> String {
    match ty {
        syn::Type::Tuple(t) => format!(
            "a tuple of ({})",
            t.elems.iter().map(accepted).collect::<Vec<_>>().join(", ")
        ),
        syn::Type::Path(p) => {
            let Some(last) = p.path.segments.last() else {
                return "a value of the field's own type".to_owned();
            };
            let name = last.ident.to_string();
            let inner = match &last.arguments {
                syn::PathArguments::AngleBracketed(args) => {
                    args.args.iter().find_map(|a| match a {
                        syn::GenericArgument::Type(t) => Some(t),
                        _ => None,
                    })
                }
                _ => None,
            };
            match (name.as_str(), inner) {
                ("Option", Some(inner)) => accepted(inner),
                ("Vec", Some(_)) => "&[u8] or Vec<u8>".to_owned(),
                ("String", _) => "&str or String".to_owned(),
                ("bool", _) => "a bool".to_owned(),
                ("char", _) => "a char".to_owned(),
                (
                    "u8" | "u16" | "u32" | "u64" | "u128" | "usize" | "i8" | "i16" | "i32" | "i64"
                    | "i128" | "isize",
                    _,
                ) => "an integer (any integer type)".to_owned(),
                _ => format!("a `{name}`"),
            }
        }
        _ => "a value of the field's own type".to_owned(),
    }
}

/// The `<Type>Field` namespace: one unit struct per indexed field.
fn field_markers(model: &Model<'_>, namespace: &syn::Ident) -> TokenStream {
    let Model { ident, vis, .. } = model;
    let markers = model.indexes.iter().map(|ix| {
        let marker = &ix.marker;
        let doc = format!(
            "The {}indexed field `{}` of `{}`, for `Kvs::index`.",
            if ix.unique { "uniquely " } else { "" },
            ix.column.ident,
            ident
        );
        quote! {
            #[doc = #doc]
            #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
            pub struct #marker;
        }
    });
    let doc = format!("The indexed fields of `{ident}`, for `Kvs::index`.");
    quote! {
        #[doc = #doc]
        #[allow(non_snake_case)]
        #vis mod #namespace {
            #(#markers)*
        }
    }
}
