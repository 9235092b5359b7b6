//! Which registered tables a database opens: the URL's `schemas` list, checked for clashes.

use crate::backend::Config;
use crate::error::{Error, Result};
use crate::stream::STREAM_SCHEMA;
use crate::table::{registered_tables, TableMeta};

/// The tables of this program that `config` opens, checked for clashes.
pub(crate) fn select_tables(config: &Config) -> Result<Vec<&'static TableMeta>> {
    let all = registered_tables();
    for meta in &all {
        if meta.name.is_empty() || meta.name.starts_with('#') {
            return Err(Error::schema(
                meta.name,
                "table names must be non-empty and must not start with '#'",
            ));
        }
    }
    let selected: Vec<&'static TableMeta> = match &config.schemas {
        None => all,
        Some(schemas) => {
            for name in schemas {
                if name != STREAM_SCHEMA && !all.iter().any(|m| m.schema == name || m.name == name)
                {
                    return Err(Error::schema(
                        name.as_str(),
                        "listed in the URL's schemas, but no registered table has that name or schema",
                    ));
                }
            }
            all.into_iter()
                .filter(|m| schemas.iter().any(|s| s == m.schema || s == m.name))
                .collect()
        }
    };
    // Sorted by name, so clashes are neighbours.
    for pair in selected.windows(2) {
        if pair[0].name == pair[1].name {
            return Err(Error::schema(
                pair[0].name,
                format!(
                    "claimed by two types, {} and {}; give one a different #[kvs(name = ...)] or put them in different schemas",
                    pair[0].rust_type, pair[1].rust_type
                ),
            ));
        }
    }
    Ok(selected)
}
