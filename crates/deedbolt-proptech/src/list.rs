//! List parameters shared by every list endpoint: `limit`, an opaque `cursor`, `sort`
//! (`field` or `-field` for descending) and per-resource filters.
//!
//! Pagination is by keyset, not offset: the cursor carries the last item's sort value and
//! id, so pages stay stable while rows are added and deep pages cost the same as the
//! first. The cursor also carries the sort it was made for; using it with another sort is
//! a validation error rather than a silently wrong page.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};

use super::{FieldError, Problems};

/// Page size when `limit` is not given.
pub const DEFAULT_LIMIT: u32 = 50;
/// The largest page size.
pub const MAX_LIMIT: u32 = 100;

/// A sort key's value, as kept in a cursor.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum SortValue {
    /// An integer column (ids, times, amounts, ranks).
    Int(i64),
    /// A text column (names, dates).
    Text(String),
}

/// A sort order: one of the resource's sortable fields, ascending or descending; ties are
/// broken by id in the same direction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sort {
    /// The field, which is also the store's column name (from the resource's fixed list,
    /// never from the request).
    pub field: &'static str,
    /// Descending?
    pub descending: bool,
}

impl Sort {
    /// The wire spelling: `field` or `-field`.
    pub fn spelling(&self) -> String {
        if self.descending {
            format!("-{}", self.field)
        } else {
            self.field.to_owned()
        }
    }
}

/// What a resource allows in its list query.
#[derive(Debug)]
pub struct ListSpec {
    /// Sortable fields; the first is the default (ascending).
    pub sort_fields: &'static [&'static str],
    /// Filter parameters.
    pub filters: &'static [&'static str],
}

/// A parsed list query.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListParams {
    /// Page size.
    pub limit: u32,
    /// Sort order.
    pub sort: Sort,
    /// Start after this (sort value, id), from the cursor.
    pub after: Option<(SortValue, i64)>,
    /// Filter parameters as given (validated by the resource).
    pub filters: Vec<(&'static str, String)>,
}

impl ListParams {
    /// The filter value of `name`, if given.
    pub fn filter(&self, name: &str) -> Option<&str> {
        self.filters
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Serialize, Deserialize)]
struct CursorBody {
    s: String,
    v: SortValue,
    i: i64,
}

impl ListSpec {
    /// Parses query pairs. Unknown or repeated parameters are errors.
    pub fn parse<'a>(
        &self,
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<ListParams, Vec<FieldError>> {
        let mut p = Problems::default();
        let mut limit = DEFAULT_LIMIT;
        let mut sort = Sort {
            field: self.sort_fields[0],
            descending: false,
        };
        let mut cursor = None;
        let mut filters: Vec<(&'static str, String)> = Vec::new();
        let mut seen: Vec<String> = Vec::new();
        for (k, v) in pairs {
            if seen.iter().any(|s| s == k) {
                p.add(k, "must not be repeated");
                continue;
            }
            seen.push(k.to_owned());
            match k {
                "limit" => match v.parse::<u32>() {
                    Ok(n) if (1..=MAX_LIMIT).contains(&n) => limit = n,
                    _ => p.add("limit", format!("must be an integer from 1 to {MAX_LIMIT}")),
                },
                "sort" => {
                    let (descending, name) = match v.strip_prefix('-') {
                        Some(rest) => (true, rest),
                        None => (false, v),
                    };
                    match self.sort_fields.iter().find(|f| **f == name) {
                        Some(field) => sort = Sort { field, descending },
                        None => p.add(
                            "sort",
                            format!(
                                "must be one of {} (prefix - for descending)",
                                self.sort_fields.join(", ")
                            ),
                        ),
                    }
                }
                "cursor" => cursor = Some(v.to_owned()),
                other => match self.filters.iter().find(|f| **f == other) {
                    Some(name) => filters.push((name, v.to_owned())),
                    None => p.add(other, "is not a known parameter"),
                },
            }
        }
        let mut after = None;
        if let Some(c) = cursor {
            match decode_cursor(&c) {
                Some(body) if body.s == sort.spelling() => after = Some((body.v, body.i)),
                Some(_) => p.add("cursor", "was made for another sort order"),
                None => p.add("cursor", "is malformed"),
            }
        }
        p.finish(|| {
            Some(ListParams {
                limit,
                sort,
                after,
                filters,
            })
        })
    }
}

fn decode_cursor(s: &str) -> Option<CursorBody> {
    if s.len() > 512 {
        return None;
    }
    let bytes = URL_SAFE_NO_PAD.decode(s).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// An item of a list, which knows its sort values.
pub trait Listed {
    /// Its id (the tie-breaker).
    fn id(&self) -> i64;
    /// Its value of sortable `field`.
    fn sort_value(&self, field: &str) -> SortValue;
}

/// A page of a list endpoint.
#[derive(Debug, Serialize, schemars::JsonSchema)]
#[schemars(rename = "PageOf{T}")]
pub struct Page<T> {
    /// The items.
    pub items: Vec<T>,
    /// Pass as `cursor` (with the same `sort`) for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

impl<T: Listed> Page<T> {
    /// Makes a page from up to `limit + 1` rows fetched in order (one extra row tells
    /// whether a next page exists).
    pub fn from_rows(mut rows: Vec<T>, params: &ListParams) -> Self {
        let limit = params.limit as usize;
        let next_cursor = if rows.len() > limit {
            rows.truncate(limit);
            rows.last().map(|last| {
                let body = CursorBody {
                    s: params.sort.spelling(),
                    v: last.sort_value(params.sort.field),
                    i: last.id(),
                };
                // Serializing this plain struct cannot fail.
                URL_SAFE_NO_PAD.encode(serde_json::to_vec(&body).unwrap_or_default())
            })
        } else {
            None
        };
        Page {
            items: rows,
            next_cursor,
        }
    }
}

impl ListParams {
    /// Parses filter `name` with `FromStr`, recording a problem if it does not parse.
    pub fn parsed_filter<T: std::str::FromStr>(
        &self,
        name: &str,
        expected: &str,
        problems: &mut Problems,
    ) -> Option<T> {
        self.filter(name)
            .and_then(|v| problems.some_parsed(name, v, expected))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: ListSpec = ListSpec {
        sort_fields: &["id", "name"],
        filters: &["kind"],
    };

    struct Row(i64, &'static str);
    impl Listed for Row {
        fn id(&self) -> i64 {
            self.0
        }
        fn sort_value(&self, field: &str) -> SortValue {
            match field {
                "name" => SortValue::Text(self.1.into()),
                _ => SortValue::Int(self.0),
            }
        }
    }

    #[test]
    fn defaults_apply() {
        let p = SPEC.parse([]).unwrap();
        assert_eq!(p.limit, DEFAULT_LIMIT);
        assert_eq!(p.sort.spelling(), "id");
        assert!(p.after.is_none());
    }

    #[test]
    fn every_bad_parameter_is_reported() {
        let errs = SPEC
            .parse([
                ("limit", "0"),
                ("sort", "-colour"),
                ("cursor", "%%%"),
                ("colour", "red"),
                ("kind", "a"),
                ("kind", "b"),
            ])
            .unwrap_err();
        let fields: Vec<_> = errs.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["limit", "sort", "colour", "kind", "cursor"]);
    }

    #[test]
    fn a_cursor_round_trips_only_with_its_sort() {
        let params = SPEC.parse([("sort", "-name"), ("limit", "1")]).unwrap();
        let page = Page::from_rows(vec![Row(7, "b"), Row(3, "a")], &params);
        assert_eq!(page.items.len(), 1);
        let cursor = page.next_cursor.unwrap();
        let next = SPEC
            .parse([("sort", "-name"), ("cursor", cursor.as_str())])
            .unwrap();
        assert_eq!(next.after, Some((SortValue::Text("b".into()), 7)));
        let err = SPEC.parse([("cursor", cursor.as_str())]).unwrap_err();
        assert_eq!(err[0].message, "was made for another sort order");
    }

    #[test]
    fn the_last_page_has_no_cursor() {
        let params = SPEC.parse([("limit", "2")]).unwrap();
        let page = Page::from_rows(vec![Row(1, "a"), Row(2, "b")], &params);
        assert!(page.next_cursor.is_none());
    }
}
