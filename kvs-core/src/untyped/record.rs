//! Records as JSON against their catalog entry: the stored form, the key, the index values
//! (the one function from a stored record to its index values for tools without the Rust
//! types), and whether the application could read a record.

use serde_json::Value;

use crate::catalog::{CatalogEntry, CatalogIndex};
use crate::error::{Error, Result};
use crate::field::FieldKind;
use crate::json::{check_kind, encode_json};
use crate::write::IndexValues;

/// Refuses writes to an indexed table whose catalog entry was written by a kvs that recorded
/// Rust field names (no field kinds): where serde renames fields, its index fields name
/// nothing in the stored records, and writing by them would damage the indexes.
pub(super) fn writable(entry: &CatalogEntry) -> Result<()> {
    if entry.columns.is_empty() && !entry.indexes.is_empty() {
        return Err(Error::schema(
            &entry.name,
            "its catalog entry was written by an older kvs, which recorded Rust field names: open the database once with the application (which records the stored names), then repeat",
        ));
    }
    Ok(())
}

/// A stored record as a JSON object, its fields named by the catalog.
pub fn record_json(entry: &CatalogEntry, key: &[u8], bytes: &[u8]) -> Result<Value> {
    crate::row::to_json(bytes, &entry.field_names()).map_err(|reason| Error::Decode {
        table: entry.name.clone(),
        key: entry.key_type.render(key),
        reason,
    })
}

/// The stored form of a JSON record of `entry` (checked already by [`check_fields`]): its
/// fields by position, in the catalog's order.
pub(super) fn stored_form(entry: &CatalogEntry, record: &Value) -> Result<Vec<u8>> {
    let invalid = |reason: String| Error::Invalid {
        table: entry.name.clone(),
        reason,
    };
    let map = record
        .as_object()
        .ok_or_else(|| invalid(format!("a record of {} must be a JSON object", entry.name)))?;
    crate::row::from_json(map, &entry.row_columns()).map_err(invalid)
}

/// The encoded key of a record given as JSON.
pub fn record_key(entry: &CatalogEntry, record: &Value) -> Result<Vec<u8>> {
    let invalid = |reason: String| Error::Invalid {
        table: entry.name.clone(),
        reason,
    };
    let field = record
        .get(&entry.key_field)
        .ok_or_else(|| invalid(format!("the key field {} is missing", entry.key_field)))?;
    encode_json(field, &entry.key_type).ok_or_else(|| {
        invalid(format!(
            "the key field {} is {field}, not a {}",
            entry.key_field, entry.key_type
        ))
    })
}

/// The encoded value of each index of a record given as JSON (`None` for a null or missing
/// field): the one function from a stored record to its index values for tools without the
/// Rust types.
pub fn index_values(entry: &CatalogEntry, record: &Value) -> Result<IndexValues> {
    entry
        .indexes
        .iter()
        .map(|ix| match record.get(&ix.field) {
            // A missing non-Option field is indexed by the application under its serde
            // default, which tools cannot know: such a record cannot be indexed here.
            None | Some(Value::Null)
                if entry
                    .columns
                    .iter()
                    .any(|c| c.name == ix.field && !c.kind.is_option() && c.kind != FieldKind::Any) =>
            {
                Err(Error::Invalid {
                    table: entry.name.clone(),
                    reason: format!(
                        "the indexed field {} is missing; the application indexes its default, which kvs cannot know without the Rust type",
                        ix.field
                    ),
                })
            }
            None | Some(Value::Null) => Ok(None),
            Some(value) => {
                encode_json(value, &ix.value_type)
                    .map(Some)
                    .ok_or_else(|| Error::Invalid {
                        table: entry.name.clone(),
                        reason: format!(
                            "the indexed field {} is {value}, not a {}",
                            ix.field, ix.value_type
                        ),
                    })
            }
        })
        .collect()
}

/// The index values of a stored record of `entry` (the one a write replaces or deletes).
pub(super) fn stored_index_values(
    entry: &CatalogEntry,
    key: &[u8],
    bytes: &[u8],
) -> Result<IndexValues> {
    let record = record_json(entry, key, bytes)?;
    index_values(entry, &record).map_err(|e| Error::Decode {
        table: entry.name.clone(),
        key: entry.key_type.render(key),
        reason: e.to_string(),
    })
}

/// Why `record` is not one the application can read, as far as the catalog knows its fields:
/// a field missing that the type requires, or a value of another kind than the field's.
/// With `strict`, a field the catalog does not list is refused too (the application would
/// drop it on its next write). Entries written before kvs recorded field kinds are checked
/// for the key and indexes only.
pub fn check_fields(
    entry: &CatalogEntry,
    record: &Value,
    strict: bool,
) -> std::result::Result<(), String> {
    let Some(map) = record.as_object() else {
        return Err(format!("a record of {} must be a JSON object", entry.name));
    };
    if entry.columns.is_empty() {
        return Ok(());
    }
    for column in &entry.columns {
        match map.get(&column.name) {
            None if column.optional => {}
            None => return Err(format!("field {}.{} is missing", entry.name, column.name)),
            Some(value) => check_kind(value, &column.kind)
                .map_err(|why| format!("field {}.{}: {why}", entry.name, column.name))?,
        }
    }
    if strict {
        if let Some(unknown) = map
            .keys()
            .find(|k| !entry.columns.iter().any(|c| &c.name == *k))
        {
            return Err(format!(
                "{unknown} is not a field of {} (fields: {})",
                entry.name,
                entry.fields.join(", ")
            ));
        }
    }
    Ok(())
}

/// The index of `entry` on `field`, or [`Error::Schema`] naming the indexed fields.
pub fn index_of<'e>(entry: &'e CatalogEntry, field: &str) -> Result<&'e CatalogIndex> {
    entry
        .indexes
        .iter()
        .find(|ix| ix.field == field)
        .ok_or_else(|| {
            let fields: Vec<&str> = entry.indexes.iter().map(|ix| ix.field.as_str()).collect();
            let why = if entry.fields.iter().any(|f| f == field) {
                "is not indexed"
            } else {
                "is not a field"
            };
            Error::schema(
                &entry.name,
                format!(
                    "{field} {why} (indexed fields: {})",
                    if fields.is_empty() {
                        "none".to_owned()
                    } else {
                        fields.join(", ")
                    }
                ),
            )
        })
}
