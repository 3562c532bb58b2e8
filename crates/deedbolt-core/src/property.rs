//! The PropTech property record and the rules for creating one.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::clock::UnixTime;

/// What kind of property it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PropertyKind {
    /// Homes and apartments.
    Residential,
    /// Offices, shops, warehouses.
    Commercial,
    /// Both.
    MixedUse,
}

impl PropertyKind {
    /// The stored and wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            PropertyKind::Residential => "residential",
            PropertyKind::Commercial => "commercial",
            PropertyKind::MixedUse => "mixed_use",
        }
    }
}

impl fmt::Display for PropertyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for PropertyKind {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "residential" => Ok(PropertyKind::Residential),
            "commercial" => Ok(PropertyKind::Commercial),
            "mixed_use" => Ok(PropertyKind::MixedUse),
            _ => Err(()),
        }
    }
}

/// A stored property.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Property {
    /// Its id.
    pub id: i64,
    /// A short name ("Harbour View").
    pub name: String,
    /// The postal address.
    pub address: String,
    /// Residential, commercial or mixed use.
    pub kind: PropertyKind,
    /// Number of lettable units.
    pub units: u32,
    /// When it was created.
    pub created_at: UnixTime,
    /// The `sub` of the token that created it.
    pub created_by: String,
}

/// The body of a create request, before validation; every field optional so that all
/// problems can be reported at once.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PropertyDraft {
    /// Name.
    pub name: Option<String>,
    /// Address.
    pub address: Option<String>,
    /// Kind.
    pub kind: Option<String>,
    /// Units.
    pub units: Option<i64>,
}

/// A validated property to create.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewProperty {
    /// Name, 1–200 characters.
    pub name: String,
    /// Address, 1–500 characters.
    pub address: String,
    /// Kind.
    pub kind: PropertyKind,
    /// Units, 1–100 000.
    pub units: u32,
}

/// One field's validation failure.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FieldError {
    /// The JSON field.
    pub field: &'static str,
    /// What is wrong with it.
    pub message: &'static str,
}

fn text(
    field: &'static str,
    value: Option<String>,
    max: usize,
    errors: &mut Vec<FieldError>,
) -> String {
    let value = value.unwrap_or_default();
    let trimmed = value.trim();
    if trimmed.is_empty() {
        errors.push(FieldError {
            field,
            message: "is required",
        });
    } else if trimmed.chars().count() > max || trimmed.chars().any(char::is_control) {
        errors.push(FieldError {
            field,
            message: "is too long or contains control characters",
        });
    }
    trimmed.to_owned()
}

impl TryFrom<PropertyDraft> for NewProperty {
    type Error = Vec<FieldError>;

    fn try_from(draft: PropertyDraft) -> Result<Self, Self::Error> {
        let mut errors = Vec::new();
        let name = text("name", draft.name, 200, &mut errors);
        let address = text("address", draft.address, 500, &mut errors);
        let kind = match draft.kind.as_deref().map(str::parse::<PropertyKind>) {
            Some(Ok(kind)) => Some(kind),
            Some(Err(())) => {
                errors.push(FieldError {
                    field: "kind",
                    message: "must be residential, commercial or mixed_use",
                });
                None
            }
            None => {
                errors.push(FieldError {
                    field: "kind",
                    message: "is required",
                });
                None
            }
        };
        let units = match draft.units {
            Some(n @ 1..=100_000) => Some(n as u32),
            Some(_) => {
                errors.push(FieldError {
                    field: "units",
                    message: "must be between 1 and 100000",
                });
                None
            }
            None => {
                errors.push(FieldError {
                    field: "units",
                    message: "is required",
                });
                None
            }
        };
        match (kind, units) {
            (Some(kind), Some(units)) if errors.is_empty() => Ok(NewProperty {
                name,
                address,
                kind,
                units,
            }),
            _ => Err(errors),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_complete_draft_validates() {
        let p = NewProperty::try_from(PropertyDraft {
            name: Some(" Harbour View ".into()),
            address: Some("1 Quay St".into()),
            kind: Some("residential".into()),
            units: Some(12),
        })
        .unwrap();
        assert_eq!(p.name, "Harbour View");
        assert_eq!(p.units, 12);
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let errs = NewProperty::try_from(PropertyDraft {
            name: None,
            address: Some("x".repeat(501)),
            kind: Some("castle".into()),
            units: Some(0),
        })
        .unwrap_err();
        let fields: Vec<_> = errs.iter().map(|e| e.field).collect();
        assert_eq!(fields, vec!["name", "address", "kind", "units"]);
    }
}
