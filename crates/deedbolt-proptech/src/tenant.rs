//! Tenants: contact details, the user account they sign in with, and where they live.

use serde::{Deserialize, Serialize};

use super::list::{ListSpec, Listed, SortValue};
use super::money::{Amount, Currency};
use super::{Date, FieldError, Problems};
use deedbolt_core::clock::UnixTime;
use deedbolt_core::ids::UserId;
use deedbolt_core::user::Email;

/// A stored tenant.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Tenant {
    /// Its id.
    pub id: i64,
    /// Full name.
    pub name: String,
    /// Contact email address.
    pub email: Option<String>,
    /// Contact phone number.
    pub phone: Option<String>,
    /// The user (role tenant) who signs in as this tenant, if any. A token acting for that
    /// user sees this record, its ledger and its maintenance requests, and nothing else.
    pub user_id: Option<UserId>,
    /// The property they rent in.
    pub property_id: i64,
    /// The unit ("4B").
    pub unit: String,
    /// Monthly rent.
    pub rent: Amount,
    /// The currency of the rent and of every ledger entry.
    pub currency: Currency,
    /// When the lease started.
    pub lease_start: Date,
    /// When the record was created.
    pub created_at: UnixTime,
}

impl Listed for Tenant {
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

/// What `GET /api/tenants` accepts.
pub const LIST: ListSpec = ListSpec {
    sort_fields: &["id", "name", "created_at"],
    filters: &["property_id"],
};

/// The body of a create (required: name, property_id, unit, rent, currency, lease_start)
/// or update (all optional) request.
#[derive(Clone, Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TenantDraft {
    /// Full name, 1–200 characters.
    pub name: Option<String>,
    /// Contact email.
    pub email: Option<String>,
    /// Contact phone: digits, spaces and `+()-`, 5–32 characters.
    pub phone: Option<String>,
    /// The id of the tenant's user account (role tenant).
    pub user_id: Option<String>,
    /// The property (must be one the caller can see).
    pub property_id: Option<i64>,
    /// The unit, 1–32 characters.
    pub unit: Option<String>,
    /// Monthly rent as a decimal string, e.g. `"1250.00"`.
    pub rent: Option<String>,
    /// ISO 4217 code, e.g. `GBP`.
    pub currency: Option<String>,
    /// `YYYY-MM-DD`.
    pub lease_start: Option<String>,
}

/// A validated tenant to create.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewTenant {
    /// Name.
    pub name: String,
    /// Email.
    pub email: Option<String>,
    /// Phone.
    pub phone: Option<String>,
    /// Linked user.
    pub user_id: Option<UserId>,
    /// Property.
    pub property_id: i64,
    /// Unit.
    pub unit: String,
    /// Rent.
    pub rent: Amount,
    /// Currency.
    pub currency: Currency,
    /// Lease start.
    pub lease_start: Date,
}

/// A validated change to a tenant; `None` leaves a field as it is. The currency cannot
/// change (the ledger is kept in it).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TenantChanges {
    /// Name.
    pub name: Option<String>,
    /// Email.
    pub email: Option<String>,
    /// Phone.
    pub phone: Option<String>,
    /// Linked user.
    pub user_id: Option<UserId>,
    /// Property (must be visible to the caller).
    pub property_id: Option<i64>,
    /// Unit.
    pub unit: Option<String>,
    /// Rent.
    pub rent: Option<Amount>,
    /// Lease start.
    pub lease_start: Option<Date>,
}

fn email(p: &mut Problems, v: String) -> Option<String> {
    match Email::parse(&v) {
        Ok(e) => Some(e.as_str().to_owned()),
        Err(_) => {
            p.add("email", "must be an email address");
            None
        }
    }
}

fn phone(p: &mut Problems, v: String) -> Option<String> {
    let t = v.trim();
    let ok = (5..=32).contains(&t.len())
        && t.chars().all(|c| c.is_ascii_digit() || " +()-".contains(c))
        && t.chars().any(|c| c.is_ascii_digit());
    if ok {
        Some(t.to_owned())
    } else {
        p.add("phone", "must be 5–32 digits, spaces or +()-");
        None
    }
}

fn rent(p: &mut Problems, v: &str) -> Option<Amount> {
    match v.parse::<Amount>() {
        Ok(a) => Some(a),
        Err(e) => {
            p.add("rent", e.to_string());
            None
        }
    }
}

const CURRENCY: &str = "an ISO 4217 code such as GBP";
const DATE: &str = "a date as YYYY-MM-DD";

impl TryFrom<TenantDraft> for NewTenant {
    type Error = Vec<FieldError>;

    fn try_from(d: TenantDraft) -> Result<Self, Self::Error> {
        let mut p = Problems::default();
        let name = p.text("name", d.name, 200);
        let email = d.email.and_then(|v| email(&mut p, v));
        let phone = d.phone.and_then(|v| phone(&mut p, v));
        let user_id = d
            .user_id
            .and_then(|v| p.some_parsed("user_id", &v, "a user id"));
        let property_id = p.int("property_id", d.property_id, 1..=i64::MAX);
        let unit = p.text("unit", d.unit, 32);
        let rent = match d.rent {
            Some(v) => rent(&mut p, &v),
            None => {
                p.add("rent", "is required");
                None
            }
        };
        let currency = p.parsed("currency", d.currency.as_deref(), CURRENCY);
        let lease_start = p.parsed("lease_start", d.lease_start.as_deref(), DATE);
        p.finish(|| {
            Some(NewTenant {
                name: name?,
                email,
                phone,
                user_id,
                property_id: property_id?,
                unit: unit?,
                rent: rent?,
                currency: currency?,
                lease_start: lease_start?,
            })
        })
    }
}

impl TryFrom<TenantDraft> for TenantChanges {
    type Error = Vec<FieldError>;

    fn try_from(d: TenantDraft) -> Result<Self, Self::Error> {
        let mut p = Problems::default();
        if d.currency.is_some() {
            p.add("currency", "cannot be changed: the ledger is kept in it");
        }
        let c = TenantChanges {
            name: d.name.and_then(|v| p.some_text("name", v, 200)),
            email: d.email.and_then(|v| email(&mut p, v)),
            phone: d.phone.and_then(|v| phone(&mut p, v)),
            user_id: d
                .user_id
                .and_then(|v| p.some_parsed("user_id", &v, "a user id")),
            property_id: d
                .property_id
                .and_then(|v| p.int("property_id", Some(v), 1..=i64::MAX)),
            unit: d.unit.and_then(|v| p.some_text("unit", v, 32)),
            rent: d.rent.and_then(|v| rent(&mut p, &v)),
            lease_start: d
                .lease_start
                .and_then(|v| p.some_parsed("lease_start", &v, DATE)),
        };
        if c == TenantChanges::default() && p.0.is_empty() {
            p.add("body", "must change at least one field");
        }
        p.finish(|| Some(c))
    }
}

/// The filters of `GET /api/tenants`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TenantFilter {
    /// Only tenants of this property.
    pub property_id: Option<i64>,
}

impl TenantFilter {
    /// Reads the filters of a parsed list query.
    pub fn from_params(params: &super::list::ListParams) -> Result<Self, Vec<FieldError>> {
        let mut p = Problems::default();
        let f = TenantFilter {
            property_id: params.parsed_filter("property_id", "an integer id", &mut p),
        };
        p.finish(|| Some(f))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draft() -> TenantDraft {
        TenantDraft {
            name: Some("Ada Tenant".into()),
            email: Some("Ada@Example.com".into()),
            phone: Some("+44 20 7946 0000".into()),
            user_id: None,
            property_id: Some(1),
            unit: Some("4B".into()),
            rent: Some("1250.00".into()),
            currency: Some("GBP".into()),
            lease_start: Some("2025-01-01".into()),
        }
    }

    #[test]
    fn a_complete_draft_validates() {
        let t = NewTenant::try_from(draft()).unwrap();
        assert_eq!(t.rent, Amount(125_000));
        assert_eq!(t.email.as_deref(), Some("ada@example.com"));
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let errs = NewTenant::try_from(TenantDraft {
            email: Some("nope".into()),
            phone: Some("call me".into()),
            rent: Some("12.345".into()),
            currency: Some("pounds".into()),
            lease_start: Some("2025-02-30".into()),
            ..TenantDraft::default()
        })
        .unwrap_err();
        let fields: Vec<_> = errs.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "name",
                "email",
                "phone",
                "property_id",
                "unit",
                "rent",
                "currency",
                "lease_start"
            ]
        );
    }

    #[test]
    fn the_currency_cannot_change() {
        let errs = TenantChanges::try_from(TenantDraft {
            currency: Some("EUR".into()),
            ..TenantDraft::default()
        })
        .unwrap_err();
        assert_eq!(errs[0].field, "currency");
    }
}
