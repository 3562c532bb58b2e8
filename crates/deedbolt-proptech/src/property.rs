//! Properties: address, kind, units, and the manager who manages them.

use serde::{Deserialize, Serialize};

use super::list::{Listed, SortValue};
use super::{FieldError, Problems};
use deedbolt_core::clock::UnixTime;
use deedbolt_core::ids::UserId;

/// What kind of property it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
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

impl std::str::FromStr for PropertyKind {
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

const KINDS: &str = "residential, commercial or mixed_use";

/// A stored property.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
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
    /// The user (role manager) who manages it, if any.
    pub manager_id: Option<UserId>,
    /// When it was created.
    pub created_at: UnixTime,
    /// The `sub` of the token that created it.
    pub created_by: String,
}

impl Listed for Property {
    fn id(&self) -> i64 {
        self.id
    }

    fn sort_value(&self, field: &str) -> SortValue {
        match field {
            "name" => SortValue::Text(self.name.clone()),
            "created_at" => SortValue::Int(self.created_at.0),
            _ => SortValue::Int(self.id),
        }
    }
}

/// What `GET /api/properties` accepts.
pub const LIST: super::list::ListSpec = super::list::ListSpec {
    sort_fields: &["id", "name", "created_at"],
    filters: &["kind", "manager_id"],
};

/// The body of a create (all fields required but `manager_id`) or update (every field
/// optional) request, before validation.
#[derive(Clone, Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PropertyDraft {
    /// Name, 1–200 characters.
    pub name: Option<String>,
    /// Address, 1–500 characters.
    pub address: Option<String>,
    /// `residential`, `commercial` or `mixed_use`.
    pub kind: Option<String>,
    /// Units, 1–100 000.
    pub units: Option<i64>,
    /// The managing user's id. Only a portfolio-wide token (an administrator or a machine
    /// client) may set it; a manager's new property is their own.
    pub manager_id: Option<String>,
}

/// A validated property to create.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewProperty {
    /// Name.
    pub name: String,
    /// Address.
    pub address: String,
    /// Kind.
    pub kind: PropertyKind,
    /// Units.
    pub units: u32,
    /// Manager.
    pub manager_id: Option<UserId>,
}

/// A validated change to a property: `None` leaves a field as it is.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PropertyChanges {
    /// New name.
    pub name: Option<String>,
    /// New address.
    pub address: Option<String>,
    /// New kind.
    pub kind: Option<PropertyKind>,
    /// New unit count.
    pub units: Option<u32>,
    /// New manager.
    pub manager_id: Option<UserId>,
}

impl TryFrom<PropertyDraft> for NewProperty {
    type Error = Vec<FieldError>;

    fn try_from(d: PropertyDraft) -> Result<Self, Self::Error> {
        let mut p = Problems::default();
        let name = p.text("name", d.name, 200);
        let address = p.text("address", d.address, 500);
        let kind = p.parsed("kind", d.kind.as_deref(), KINDS);
        let units = p.int("units", d.units, 1..=100_000);
        let manager_id = d
            .manager_id
            .and_then(|m| p.some_parsed("manager_id", &m, "a user id"));
        p.finish(|| {
            Some(NewProperty {
                name: name?,
                address: address?,
                kind: kind?,
                units: units? as u32,
                manager_id,
            })
        })
    }
}

impl TryFrom<PropertyDraft> for PropertyChanges {
    type Error = Vec<FieldError>;

    fn try_from(d: PropertyDraft) -> Result<Self, Self::Error> {
        let mut p = Problems::default();
        let c = PropertyChanges {
            name: d.name.and_then(|v| p.some_text("name", v, 200)),
            address: d.address.and_then(|v| p.some_text("address", v, 500)),
            kind: d.kind.and_then(|v| p.some_parsed("kind", &v, KINDS)),
            units: d
                .units
                .and_then(|v| p.int("units", Some(v), 1..=100_000))
                .map(|v| v as u32),
            manager_id: d
                .manager_id
                .and_then(|m| p.some_parsed("manager_id", &m, "a user id")),
        };
        if c == PropertyChanges::default() && p.0.is_empty() {
            p.add("body", "must change at least one field");
        }
        p.finish(|| Some(c))
    }
}

/// The filters of `GET /api/properties`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PropertyFilter {
    /// Only this kind.
    pub kind: Option<PropertyKind>,
    /// Only properties managed by this user.
    pub manager_id: Option<UserId>,
}

impl PropertyFilter {
    /// Reads the filters of a parsed list query.
    pub fn from_params(params: &super::list::ListParams) -> Result<Self, Vec<FieldError>> {
        let mut p = Problems::default();
        let f = PropertyFilter {
            kind: params.parsed_filter("kind", KINDS, &mut p),
            manager_id: params.parsed_filter("manager_id", "a user id", &mut p),
        };
        p.finish(|| Some(f))
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
            manager_id: None,
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
            manager_id: Some("bad id!".into()),
        })
        .unwrap_err();
        let fields: Vec<_> = errs.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            vec!["name", "address", "kind", "units", "manager_id"]
        );
    }

    #[test]
    fn an_empty_change_is_refused() {
        let errs = PropertyChanges::try_from(PropertyDraft::default()).unwrap_err();
        assert_eq!(errs[0].field, "body");
    }
}
