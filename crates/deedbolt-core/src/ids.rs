//! Typed identifiers, so a key id can never be passed where a client id is expected.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::rand::{self, RandomError};

/// Why an identifier was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// Empty, too long, or with characters outside the allowed set.
    #[error("malformed {0}")]
    Malformed(&'static str),
}

/// Characters allowed in identifiers: RFC 6749 Appendix A `VSCHAR` minus space, so an id
/// always survives a header, a form and a log line unchanged.
fn is_id_char(c: char) -> bool {
    ('\x21'..='\x7e').contains(&c)
}

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident, $what:literal, $max:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Parses an identifier received from outside.
            pub fn parse(s: &str) -> Result<Self, IdError> {
                if s.is_empty() || s.len() > $max || !s.chars().all(is_id_char) {
                    return Err(IdError::Malformed($what));
                }
                Ok($name(s.to_owned()))
            }

            /// The identifier as a string.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl std::str::FromStr for $name {
            type Err = IdError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                $name::parse(s)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0)
            }
        }

        impl schemars::JsonSchema for $name {
            fn schema_name() -> std::borrow::Cow<'static, str> {
                stringify!($name).into()
            }

            fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
                schemars::json_schema!({ "type": "string", "maxLength": $max })
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                $name::parse(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

string_id!(
    /// A client identifier (RFC 6749 §2.2): public, unique, server-generated.
    ClientId,
    "client_id",
    128
);
string_id!(
    /// A signing key's `kid`: its RFC 7638 JWK thumbprint.
    KeyId,
    "kid",
    128
);
string_id!(
    /// A token's unique identifier, its `jti` (RFC 7519 §4.1.7).
    TokenId,
    "jti",
    128
);

string_id!(
    /// A user's identifier: random, stable, and the `sub` of their tokens.
    UserId,
    "user id",
    64
);

impl UserId {
    /// A fresh random user id (128 bits).
    pub fn generate() -> Result<Self, RandomError> {
        Ok(UserId(format!("usr_{}", rand::token::<16>()?)))
    }
}

impl ClientId {
    /// A fresh random client id (128 bits).
    pub fn generate() -> Result<Self, RandomError> {
        Ok(ClientId(format!("dbc_{}", rand::token::<16>()?)))
    }
}

impl TokenId {
    /// A fresh random token id (128 bits).
    pub fn generate() -> Result<Self, RandomError> {
        Ok(TokenId(rand::token::<16>()?))
    }
}

impl KeyId {
    /// Wraps a computed thumbprint; thumbprints are base64url and always valid ids.
    pub(crate) fn from_thumbprint(s: String) -> Self {
        KeyId(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_client_ids_parse_back() {
        let id = ClientId::generate().unwrap();
        assert_eq!(ClientId::parse(id.as_str()), Ok(id));
    }

    #[test]
    fn ids_reject_spaces_controls_and_overlong_input() {
        assert!(ClientId::parse("").is_err());
        assert!(ClientId::parse("a b").is_err());
        assert!(ClientId::parse("a\nb").is_err());
        assert!(ClientId::parse("é").is_err());
        assert!(ClientId::parse(&"a".repeat(129)).is_err());
        assert!(ClientId::parse(&"a".repeat(128)).is_ok());
    }
}
