//! Output for people: aligned tables, records as pretty JSON.

use std::fmt::Write;

use serde_json::Value;

/// An aligned table with a header row; the last column is not padded.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut text = String::new();
        for (i, (cell, w)) in cells.zip(&widths).enumerate() {
            if i > 0 {
                text.push_str("  ");
            }
            let _ = write!(text, "{cell:<w$}");
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(&mut headers.iter().copied());
    for row in rows {
        line(&mut row.iter().map(String::as_str));
    }
    out
}

/// A JSON value in a table cell: strings without quotes, the rest compact, long ones cut.
pub fn cell(value: Option<&Value>) -> String {
    const MAX: usize = 40;
    let text = match value {
        None => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    };
    if text.chars().count() > MAX {
        let cut: String = text.chars().take(MAX - 1).collect();
        format!("{cut}…")
    } else {
        text
    }
}

/// Records as an aligned table whose columns are `fields` (with its header).
pub fn table_of(fields: &[String], records: &[Value]) -> String {
    let headers: Vec<&str> = fields.iter().map(String::as_str).collect();
    let rows: Vec<Vec<String>> = records
        .iter()
        .map(|r| fields.iter().map(|f| cell(r.get(f))).collect())
        .collect();
    table(&headers, &rows)
}

/// Records as a table whose columns are `fields`, and their count.
pub fn records(fields: &[String], records: &[Value]) -> String {
    let mut out = table_of(fields, records);
    let _ = write!(
        out,
        "({} record{})",
        records.len(),
        if records.len() == 1 { "" } else { "s" }
    );
    out
}

/// A value as pretty JSON.
pub fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align() {
        let t = table(&["A", "BB"], &[vec!["long".into(), "x".into()]]);
        assert_eq!(t, "A     BB\nlong  x\n");
    }
}
