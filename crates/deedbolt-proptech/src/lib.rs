//! # deedbolt-proptech
//!
//! The PropTech resource model (the "CRM"): properties, tenants, the financial ledger and
//! maintenance requests, with the rules that validate them, exact money, list parameters
//! (cursor, filter, sort) and [`Viewer`], the one description of what a token may see;
//! and [`store::CrmStore`], the storage port for them.
//!
//! Everything here but the port is pure: the store takes a [`Viewer`] and applies it in
//! its queries, so an object the caller may not see is indistinguishable from one that
//! does not exist (404, never 403 — ids cannot be probed).
//!
//! This crate sits beside `deedbolt-core`, not inside it: the authorization server, the
//! resource-server guard and the client library know nothing of properties or tenants.
//! It uses core's typed ids, clock and [`deedbolt_core::ports::StoreError`]; the storage
//! backends implement [`store::CrmStore`] next to core's ports, and the composition root
//! hands the same backend out as each.
//!
//! # Layout
//! - [`property`], [`tenant`], [`ledger`], [`maintenance`]: the resources and their drafts.
//! - [`money`]: exact amounts and currencies.
//! - [`list`]: keyset paging, sorting and filtering parameters.
//! - [`store`]: the [`store::CrmStore`] port and the [`store::Write`] outcome.
#![forbid(unsafe_code, unused_must_use)]
#![warn(missing_docs)]

pub mod ledger;
pub mod list;
pub mod maintenance;
pub mod money;
pub mod property;
pub mod store;
pub mod tenant;

use std::fmt;

use serde::Serialize;

use deedbolt_core::ids::UserId;

/// The most field errors one 422 response lists; the response says when there were more.
/// A request full of bad fields gets a short answer, not one as large as (or larger than)
/// the request.
pub const MAX_FIELD_ERRORS: usize = 20;
/// The longest field name a [`FieldError`] echoes (an unknown field's name is client input).
pub const MAX_FIELD_NAME: usize = 64;
/// The longest message a [`FieldError`] carries (a message may quote client input).
pub const MAX_FIELD_MESSAGE: usize = 200;

/// One field's validation failure, reported as 422 with every failing field at once (up
/// to [`MAX_FIELD_ERRORS`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct FieldError {
    /// The JSON field (or query parameter).
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

impl FieldError {
    /// A failure of `field`. The name and the message are cut to [`MAX_FIELD_NAME`] and
    /// [`MAX_FIELD_MESSAGE`] bytes, since either may echo client input.
    ///
    /// ```
    /// use deedbolt_proptech::FieldError;
    /// let e = FieldError::new("x".repeat(10_000), format!("bad `{}`", "y".repeat(10_000)));
    /// assert!(e.field.len() <= 64 + '…'.len_utf8());
    /// assert!(e.message.len() <= 200 + '…'.len_utf8());
    /// ```
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        let (field, message) = (field.into(), message.into());
        FieldError {
            field: deedbolt_core::text::truncated(&field, MAX_FIELD_NAME),
            message: deedbolt_core::text::truncated(&message, MAX_FIELD_MESSAGE),
        }
    }
}

/// Collects field errors while a draft is checked.
#[derive(Debug, Default)]
pub struct Problems(Vec<FieldError>);

impl Problems {
    /// Records a failure.
    pub fn add(&mut self, field: &str, message: impl Into<String>) {
        self.0.push(FieldError::new(field, message));
    }

    /// `Ok(value)` if nothing failed, else every failure.
    pub fn finish<T>(self, value: impl FnOnce() -> Option<T>) -> Result<T, Vec<FieldError>> {
        if self.0.is_empty() {
            if let Some(v) = value() {
                return Ok(v);
            }
        }
        Err(self.0)
    }

    /// A required, trimmed text of 1..=`max` characters without control characters.
    pub fn text(&mut self, field: &str, value: Option<String>, max: usize) -> Option<String> {
        match value {
            None => {
                self.add(field, "is required");
                None
            }
            Some(v) => self.some_text(field, v, max),
        }
    }

    /// Like [`Problems::text`] for a value that is present (an optional field that was sent).
    pub fn some_text(&mut self, field: &str, value: String, max: usize) -> Option<String> {
        let trimmed = value.trim();
        if trimmed.is_empty() {
            self.add(field, "must not be empty");
            None
        } else if trimmed.chars().count() > max {
            self.add(field, format!("must be at most {max} characters"));
            None
        } else if trimmed.chars().any(char::is_control) {
            self.add(field, "must not contain control characters");
            None
        } else {
            Some(trimmed.to_owned())
        }
    }

    /// A required value parsed with `FromStr`; `expected` says what is allowed.
    pub fn parsed<T: std::str::FromStr>(
        &mut self,
        field: &str,
        value: Option<&str>,
        expected: &str,
    ) -> Option<T> {
        match value {
            None => {
                self.add(field, "is required");
                None
            }
            Some(v) => self.some_parsed(field, v, expected),
        }
    }

    /// Like [`Problems::parsed`] for a value that is present.
    pub fn some_parsed<T: std::str::FromStr>(
        &mut self,
        field: &str,
        value: &str,
        expected: &str,
    ) -> Option<T> {
        match value.parse() {
            Ok(v) => Some(v),
            Err(_) => {
                self.add(field, format!("must be {expected}"));
                None
            }
        }
    }

    /// A required integer in `range`.
    pub fn int(
        &mut self,
        field: &str,
        value: Option<i64>,
        range: std::ops::RangeInclusive<i64>,
    ) -> Option<i64> {
        match value {
            None => {
                self.add(field, "is required");
                None
            }
            Some(n) if range.contains(&n) => Some(n),
            Some(_) => {
                self.add(
                    field,
                    format!("must be between {} and {}", range.start(), range.end()),
                );
                None
            }
        }
    }
}

/// What a verified access token may see of the CRM, derived once per request from the
/// token (see `deedbolt-http`'s `access` module) and applied by the store in every query.
///
/// The scopes say which *operations* a token may call; the viewer says which *records*
/// those operations reach.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Viewer {
    /// The whole portfolio: an administrator's token, or a client-credentials token of a
    /// client registered without a property list (it sees what its registered scopes
    /// allow, across the portfolio).
    Portfolio,
    /// A client-credentials token of a client registered for some properties: those
    /// properties and their tenants, ledgers and maintenance requests.
    Properties {
        /// The property ids (sorted; may be empty: nothing).
        ids: Vec<i64>,
    },
    /// A property manager: the properties they manage, and those properties' tenants,
    /// ledgers and maintenance requests.
    Manager {
        /// The manager.
        user: UserId,
    },
    /// A tenant: their own tenant record, ledger and maintenance requests.
    Tenant {
        /// The tenant user.
        user: UserId,
    },
}

impl Viewer {
    /// Whether this viewer acts for staff (may change records it can see), as opposed to a
    /// tenant, who may only read their own records and open maintenance requests.
    pub fn is_staff(&self) -> bool {
        !matches!(self, Viewer::Tenant { .. })
    }

    /// Whether the viewer may create properties and assign them to any manager (only a
    /// portfolio-wide viewer: anyone else could not see what they created, or would hand
    /// properties to someone else).
    pub fn is_portfolio(&self) -> bool {
        matches!(self, Viewer::Portfolio)
    }
}

impl fmt::Display for Viewer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Viewer::Portfolio => f.write_str("portfolio"),
            Viewer::Properties { ids } => write!(f, "properties {ids:?}"),
            Viewer::Manager { user } => write!(f, "manager {user}"),
            Viewer::Tenant { user } => write!(f, "tenant {user}"),
        }
    }
}

/// A calendar date, `YYYY-MM-DD` (ISO 8601), validated; sorts correctly as text.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, schemars::JsonSchema)]
#[serde(transparent)]
#[schemars(transparent)]
pub struct Date(#[schemars(regex(pattern = r"^\d{4}-\d{2}-\d{2}$"))] String);

impl Date {
    /// The date as `YYYY-MM-DD`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for Date {
    type Err = ();

    /// ```
    /// use deedbolt_proptech::Date;
    /// assert!("2024-02-29".parse::<Date>().is_ok());
    /// assert!("2023-02-29".parse::<Date>().is_err());
    /// assert!("2024-13-01".parse::<Date>().is_err());
    /// assert!("24-01-01".parse::<Date>().is_err());
    /// ```
    fn from_str(s: &str) -> Result<Self, ()> {
        let b = s.as_bytes();
        if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
            return Err(());
        }
        let num = |r: std::ops::Range<usize>| -> Result<u32, ()> {
            let part = &s[r];
            if part.bytes().all(|c| c.is_ascii_digit()) {
                part.parse().map_err(|_| ())
            } else {
                Err(())
            }
        };
        let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
        let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
        let days = match m {
            1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
            4 | 6 | 9 | 11 => 30,
            2 if leap => 29,
            2 => 28,
            _ => return Err(()),
        };
        if !(1900..=2999).contains(&y) || d == 0 || d > days {
            return Err(());
        }
        Ok(Date(s.to_owned()))
    }
}
