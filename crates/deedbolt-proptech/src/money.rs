//! Exact money: integer minor units with an ISO 4217 currency code, never floating point.
//!
//! On the wire an amount is a decimal *string* with exactly two fraction digits at most
//! (`"1250.00"`, `"7.5"`), so no JSON number ever passes through a float; the integer
//! minor units are returned beside it.

use std::fmt;
use std::str::FromStr;

use serde::{Serialize, Serializer};

/// The largest amount accepted in one ledger entry or rent: 100 million in major units.
pub const MAX_MINOR: i64 = 10_000_000_000;

/// An amount in minor units (cents, pence). Signed: balances may be negative (credit).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Amount(pub i64);

impl Amount {
    /// The amount in minor units.
    pub const fn minor(self) -> i64 {
        self.0
    }
}

impl fmt::Display for Amount {
    /// ```
    /// use deedbolt_proptech::money::Amount;
    /// assert_eq!(Amount(125000).to_string(), "1250.00");
    /// assert_eq!(Amount(-5).to_string(), "-0.05");
    /// assert_eq!(Amount(0).to_string(), "0.00");
    /// ```
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        write!(f, "{sign}{}.{:02}", abs / 100, abs % 100)
    }
}

impl Serialize for Amount {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl schemars::JsonSchema for Amount {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Amount".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "pattern": r"^-?\d+\.\d{2}$",
            "description": "An exact decimal amount in major units with two fraction digits",
            "examples": ["1250.00"]
        })
    }
}

/// Why an amount string was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    /// Not `digits[.d[d]]`.
    #[error("must be a decimal string such as \"1250.00\" with at most two fraction digits")]
    Malformed,
    /// Zero or negative where a positive amount is needed.
    #[error("must be greater than zero")]
    NotPositive,
    /// Larger than [`MAX_MINOR`].
    #[error("must be at most 100000000.00")]
    TooLarge,
}

impl FromStr for Amount {
    type Err = AmountError;

    /// Parses a positive amount.
    ///
    /// ```
    /// use deedbolt_proptech::money::{Amount, AmountError};
    /// assert_eq!("1250.00".parse::<Amount>(), Ok(Amount(125000)));
    /// assert_eq!("7.5".parse::<Amount>(), Ok(Amount(750)));
    /// assert_eq!("12".parse::<Amount>(), Ok(Amount(1200)));
    /// assert_eq!("0.00".parse::<Amount>(), Err(AmountError::NotPositive));
    /// assert_eq!("1.005".parse::<Amount>(), Err(AmountError::Malformed));
    /// assert_eq!("1e3".parse::<Amount>(), Err(AmountError::Malformed));
    /// assert_eq!("-1.00".parse::<Amount>(), Err(AmountError::Malformed));
    /// assert_eq!("100000000.01".parse::<Amount>(), Err(AmountError::TooLarge));
    /// ```
    fn from_str(s: &str) -> Result<Self, AmountError> {
        let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
        let digits = |t: &str| t.bytes().all(|c| c.is_ascii_digit());
        if whole.is_empty()
            || whole.len() > 12
            || !digits(whole)
            || frac.len() > 2
            || !digits(frac)
            || (s.contains('.') && frac.is_empty())
        {
            return Err(AmountError::Malformed);
        }
        let whole: i64 = whole.parse().map_err(|_| AmountError::Malformed)?;
        let frac: i64 = match frac.len() {
            0 => 0,
            1 => frac.parse::<i64>().map_err(|_| AmountError::Malformed)? * 10,
            _ => frac.parse().map_err(|_| AmountError::Malformed)?,
        };
        let minor = whole
            .checked_mul(100)
            .and_then(|w| w.checked_add(frac))
            .ok_or(AmountError::TooLarge)?;
        if minor == 0 {
            return Err(AmountError::NotPositive);
        }
        if minor > MAX_MINOR {
            return Err(AmountError::TooLarge);
        }
        Ok(Amount(minor))
    }
}

/// An ISO 4217 currency code: three upper-case letters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Currency([u8; 3]);

impl Currency {
    /// The code.
    pub fn as_str(&self) -> &str {
        // Only ASCII upper-case letters are ever stored (see `from_str`).
        std::str::from_utf8(&self.0).unwrap_or("XXX")
    }
}

impl FromStr for Currency {
    type Err = ();

    /// ```
    /// use deedbolt_proptech::money::Currency;
    /// assert_eq!("GBP".parse::<Currency>().unwrap().as_str(), "GBP");
    /// assert!("gbp".parse::<Currency>().is_err());
    /// assert!("EURO".parse::<Currency>().is_err());
    /// ```
    fn from_str(s: &str) -> Result<Self, ()> {
        match s.as_bytes() {
            [a, b, c] if [a, b, c].iter().all(|x| x.is_ascii_uppercase()) => {
                Ok(Currency([*a, *b, *c]))
            }
            _ => Err(()),
        }
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Currency {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl schemars::JsonSchema for Currency {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Currency".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "pattern": "^[A-Z]{3}$",
            "description": "ISO 4217 currency code",
            "examples": ["GBP"]
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn display_and_parse_round_trip(minor in 1i64..=MAX_MINOR) {
            let a = Amount(minor);
            prop_assert_eq!(a.to_string().parse::<Amount>(), Ok(a));
        }
    }
}
