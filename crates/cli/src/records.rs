//! The records `kit-oauth import` reads and `kit-oauth export` writes: the fields of
//! `POST /v1/connections`, one JSON object per line, or CSV with a header row naming them.
//!
//! The CSV reader handles RFC 4180 quoting within a line; a quoted field spanning lines is
//! refused (no token, tenant or date contains a line break), so a line number always names one
//! record — what the resumable `.progress` file counts.

use kit_oauth_server::import::{ExpiresAt, ImportBody};

/// The columns an import understands.
const COLUMNS: [&str; 4] = ["refresh_token", "access_token", "expires_at", "tenant"];

/// One record and the line it came from (1-based).
pub(crate) struct Record {
    /// The line in the file.
    pub(crate) line: usize,
    /// The record, or why the line is not one.
    pub(crate) body: Result<ImportBody, String>,
}

/// Parses a whole file: JSON lines when the first non-empty line starts with `{`, else CSV.
///
/// # Errors
/// A message when a CSV header is missing `refresh_token` or names an unknown column.
pub(crate) fn parse(text: &str) -> Result<Vec<Record>, String> {
    let first = text.lines().find(|l| !l.trim().is_empty());
    match first {
        None => Ok(Vec::new()),
        Some(line) if line.trim_start().starts_with('{') => Ok(json_lines(text)),
        Some(_) => csv(text),
    }
}

fn json_lines(text: &str) -> Vec<Record> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| Record {
            line: i + 1,
            body: serde_json::from_str::<ImportBody>(l).map_err(|e| format!("not an import: {e}")),
        })
        .collect()
}

fn csv(text: &str) -> Result<Vec<Record>, String> {
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let Some((_, header)) = lines.next() else {
        return Ok(Vec::new());
    };
    let header = fields(header).map_err(|e| format!("header: {e}"))?;
    let mut at = [None; 4];
    for (index, name) in header.iter().enumerate() {
        let slot = COLUMNS
            .iter()
            .position(|c| c.eq_ignore_ascii_case(name.trim()))
            .ok_or_else(|| {
                format!(
                    "header: unknown column {name:?} (expected {})",
                    COLUMNS.join(", ")
                )
            })?;
        at[slot] = Some(index);
    }
    if at[0].is_none() {
        return Err("header: a refresh_token column is required".into());
    }
    Ok(lines
        .map(|(i, line)| Record {
            line: i + 1,
            body: fields(line).and_then(|values| {
                if values.len() != header.len() {
                    return Err(format!(
                        "{} fields where the header has {}",
                        values.len(),
                        header.len()
                    ));
                }
                let get = |slot: usize| {
                    at[slot]
                        .and_then(|i| values.get(i))
                        .map(|v| v.trim().to_owned())
                        .filter(|v| !v.is_empty())
                };
                Ok(ImportBody {
                    refresh_token: get(0).unwrap_or_default(),
                    access_token: get(1),
                    expires_at: get(2).map(ExpiresAt::Text),
                    tenant: get(3),
                })
            }),
        })
        .collect())
}

/// The fields of one CSV line (RFC 4180 quoting: `"a,b"`, `""` for a quote).
fn fields(line: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut field = String::new();
    let mut chars = line.chars().peekable();
    let mut quoted = false;
    let mut was_quoted = false;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (false, '"') if field.is_empty() && !was_quoted => {
                quoted = true;
                was_quoted = true;
            }
            (false, ',') => {
                out.push(std::mem::take(&mut field));
                was_quoted = false;
            }
            (false, '"') => return Err("a quote inside an unquoted field".into()),
            (_, c) => field.push(c),
        }
    }
    if quoted {
        return Err("an unterminated quoted field (fields cannot span lines)".into());
    }
    out.push(field);
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn json_lines_keep_their_line_numbers_and_refuse_bad_lines() {
        let text = "{\"refresh_token\":\"r1\",\"tenant\":\"t\"}\n\n{\"nope\":1}\n{\"refresh_token\":\"r3\",\"expires_at\":1700000000}\n";
        let records = parse(text).unwrap();
        assert_eq!(records.len(), 3);
        assert_eq!(records[0].line, 1);
        assert_eq!(
            records[0].body.as_ref().unwrap().tenant.as_deref(),
            Some("t")
        );
        assert_eq!(records[1].line, 3);
        assert!(records[1].body.is_err());
        assert_eq!(records[2].line, 4);
        assert!(records[2].body.as_ref().unwrap().expires_at.is_some());
    }

    #[test]
    fn csv_maps_columns_by_header_in_any_order_with_quotes() {
        let text = "tenant,Refresh_Token,expires_at\n\"shop, a\",r1,2030-01-01T00:00:00Z\n,r2,\n";
        let records = parse(text).unwrap();
        assert_eq!(records.len(), 2);
        let first = records[0].body.as_ref().unwrap();
        assert_eq!(records[0].line, 2);
        assert_eq!(first.refresh_token, "r1");
        assert_eq!(first.tenant.as_deref(), Some("shop, a"));
        assert!(first.access_token.is_none());
        let second = records[1].body.as_ref().unwrap();
        assert_eq!(second.refresh_token, "r2");
        assert!(second.tenant.is_none() && second.expires_at.is_none());
    }

    #[test]
    fn csv_refuses_unknown_columns_missing_refresh_tokens_and_ragged_rows() {
        assert!(parse("refresh_token,color\nr,blue\n").is_err());
        assert!(parse("access_token,tenant\na,t\n").is_err());
        let records = parse("refresh_token,tenant\nr1\n\"r2,t\n").unwrap();
        assert!(records[0].body.is_err());
        assert!(records[1].body.is_err());
        assert_eq!(fields("a,\"b\"\"c\",").unwrap(), ["a", "b\"c", ""]);
        assert!(fields("a\"b").is_err());
    }
}
