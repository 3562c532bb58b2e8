//! The financial ledger: rent charges, payments and credits per tenant, append-only.
//!
//! Entries are never changed or deleted; a mistake is corrected by a new entry (a credit
//! or a charge), so the ledger stays an audit trail. Amounts are exact minor units in the
//! tenant's currency.

use serde::{Deserialize, Serialize};

use super::list::{ListSpec, Listed, SortValue};
use super::money::{Amount, Currency};
use super::{Date, FieldError, Problems};
use deedbolt_core::clock::UnixTime;

/// The kind of a ledger entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    /// Money the tenant owes (rent, fees): raises the balance.
    Charge,
    /// Money the tenant paid: lowers the balance.
    Payment,
    /// A reduction granted to the tenant (a correction, a refund): lowers the balance.
    Credit,
}

impl EntryKind {
    /// The stored and wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            EntryKind::Charge => "charge",
            EntryKind::Payment => "payment",
            EntryKind::Credit => "credit",
        }
    }

    /// +1 for charges, -1 for payments and credits.
    pub const fn sign(self) -> i64 {
        match self {
            EntryKind::Charge => 1,
            EntryKind::Payment | EntryKind::Credit => -1,
        }
    }
}

impl std::str::FromStr for EntryKind {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "charge" => Ok(EntryKind::Charge),
            "payment" => Ok(EntryKind::Payment),
            "credit" => Ok(EntryKind::Credit),
            _ => Err(()),
        }
    }
}

/// A stored ledger entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct LedgerEntry {
    /// Its id.
    pub id: i64,
    /// The tenant.
    pub tenant_id: i64,
    /// Charge, payment or credit.
    pub kind: EntryKind,
    /// The amount (always positive; `kind` gives the direction).
    pub amount: Amount,
    /// The amount in minor units.
    pub amount_minor: i64,
    /// The tenant's currency.
    pub currency: Currency,
    /// What it is for.
    pub description: String,
    /// The date it takes effect.
    pub effective_on: Date,
    /// When it was recorded.
    pub created_at: UnixTime,
    /// The `sub` of the token that recorded it.
    pub created_by: String,
}

impl Listed for LedgerEntry {
    fn id(&self) -> i64 {
        self.id
    }

    fn sort_value(&self, field: &str) -> SortValue {
        match field {
            "effective_on" => SortValue::Text(self.effective_on.as_str().to_owned()),
            _ => SortValue::Int(self.id),
        }
    }
}

/// What `GET /api/tenants/{id}/ledger` accepts: filters by kind and by an inclusive
/// `from`/`to` date range.
pub const LIST: ListSpec = ListSpec {
    sort_fields: &["id", "effective_on"],
    filters: &["kind", "from", "to"],
};

/// A tenant's balance: what they owe (negative when in credit).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Balance {
    /// The tenant.
    pub tenant_id: i64,
    /// The currency.
    pub currency: Currency,
    /// Charges minus payments and credits.
    pub balance: Amount,
    /// The same in minor units.
    pub balance_minor: i64,
    /// Sum of charges.
    pub charged: Amount,
    /// Sum of payments and credits.
    pub paid: Amount,
}

impl Balance {
    /// The balance from the sums of charges and of payments and credits (minor units).
    pub fn new(tenant_id: i64, currency: Currency, charged: i64, paid: i64) -> Self {
        let balance = charged - paid;
        Balance {
            tenant_id,
            currency,
            balance: Amount(balance),
            balance_minor: balance,
            charged: Amount(charged),
            paid: Amount(paid),
        }
    }
}

/// The body of a new entry.
#[derive(Clone, Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EntryDraft {
    /// `charge`, `payment` or `credit`.
    pub kind: Option<String>,
    /// A positive decimal string in the tenant's currency, e.g. `"1250.00"`.
    pub amount: Option<String>,
    /// What it is for, 1–500 characters.
    pub description: Option<String>,
    /// `YYYY-MM-DD`.
    pub effective_on: Option<String>,
}

/// A validated entry to record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewEntry {
    /// Kind.
    pub kind: EntryKind,
    /// Amount.
    pub amount: Amount,
    /// Description.
    pub description: String,
    /// Effective date.
    pub effective_on: Date,
}

impl TryFrom<EntryDraft> for NewEntry {
    type Error = Vec<FieldError>;

    fn try_from(d: EntryDraft) -> Result<Self, Self::Error> {
        let mut p = Problems::default();
        let kind = p.parsed("kind", d.kind.as_deref(), "charge, payment or credit");
        let amount = match d.amount.as_deref().map(str::parse::<Amount>) {
            Some(Ok(a)) => Some(a),
            Some(Err(e)) => {
                p.add("amount", e.to_string());
                None
            }
            None => {
                p.add("amount", "is required");
                None
            }
        };
        let description = p.text("description", d.description, 500);
        let effective_on = p.parsed(
            "effective_on",
            d.effective_on.as_deref(),
            "a date as YYYY-MM-DD",
        );
        p.finish(|| {
            Some(NewEntry {
                kind: kind?,
                amount: amount?,
                description: description?,
                effective_on: effective_on?,
            })
        })
    }
}

/// The filters of `GET /api/tenants/{id}/ledger`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EntryFilter {
    /// Only this kind.
    pub kind: Option<EntryKind>,
    /// Effective on or after.
    pub from: Option<Date>,
    /// Effective on or before.
    pub to: Option<Date>,
}

impl EntryFilter {
    /// Reads the filters of a parsed list query.
    pub fn from_params(params: &super::list::ListParams) -> Result<Self, Vec<FieldError>> {
        let mut p = Problems::default();
        let f = EntryFilter {
            kind: params.parsed_filter("kind", "charge, payment or credit", &mut p),
            from: params.parsed_filter("from", "a date as YYYY-MM-DD", &mut p),
            to: params.parsed_filter("to", "a date as YYYY-MM-DD", &mut p),
        };
        if let (Some(from), Some(to)) = (&f.from, &f.to) {
            if from > to {
                p.add("to", "must not be before from");
            }
        }
        p.finish(|| Some(f))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_validates_with_exact_money() {
        let e = NewEntry::try_from(EntryDraft {
            kind: Some("payment".into()),
            amount: Some("0.10".into()),
            description: Some("Part payment".into()),
            effective_on: Some("2025-03-01".into()),
        })
        .unwrap();
        assert_eq!(e.amount, Amount(10));
        assert_eq!(e.kind.sign(), -1);
    }

    #[test]
    fn bad_fields_are_all_reported() {
        let errs = NewEntry::try_from(EntryDraft {
            kind: Some("refund".into()),
            amount: Some("-5".into()),
            description: None,
            effective_on: Some("yesterday".into()),
        })
        .unwrap_err();
        let fields: Vec<_> = errs.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["kind", "amount", "description", "effective_on"]);
    }

    #[test]
    fn balances_subtract_payments_from_charges() {
        let b = Balance::new(1, "GBP".parse().unwrap(), 125_000, 130_000);
        assert_eq!(b.balance.to_string(), "-50.00");
    }
}
