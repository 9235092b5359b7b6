//! The words of the `#[kvs(...)]` attribute.

pub const KVS: &str = "kvs";
pub const NAME: &str = "name";
pub const SCHEMA: &str = "schema";
pub const CRATE: &str = "crate";
pub const KEY: &str = "key";
pub const INDEX: &str = "index";
pub const UNIQUE: &str = "unique";

/// The schema of a table that names none.
pub const DEFAULT_SCHEMA: &str = "default";

/// serde's attribute, read for the names and presence of stored fields.
pub const SERDE: &str = "serde";
