//! Distinguished names as `tls_client_auth` registers them (RFC 8705 §2.1.2:
//! `tls_client_auth_subject_dn`, "a string representation … as specified in RFC 4514"),
//! parsed into a comparable form, so that a certificate subject matches by content, not
//! by spelling.
//!
//! The comparison rules: the RDN sequence in RFC 4514 order (most specific first, the
//! reverse of the certificate's ASN.1 order, which the adapter reverses); attribute types by
//! OID (`CN` and `2.5.4.3` are the same type; names are case-insensitive); values after
//! unescaping, case-insensitively (X.520 names use `caseIgnoreMatch`); the attributes of a
//! multi-valued RDN (`+`) in any order. Spaces around the `,`, `+` and `=` separators are
//! ignored (RFC 4514 allows none, but people write `CN=a, O=b`); spaces that are part of a
//! value at its start or end must be escaped (`\ `). Hex-encoded values (`#04…`) are
//! refused: they would need a BER decoder to compare, and no client needs them.
//!
//! ```
//! use deedbolt_core::dn::DistinguishedName;
//! let registered: DistinguishedName = "CN=valuation-bot, O=Acme\\, Inc.".parse().unwrap();
//! // A certificate's subject, its ASN.1 order (O, then CN) reversed into RFC 4514 order.
//! let from_cert = DistinguishedName::from_rdns(vec![
//!     vec![("2.5.4.3".to_owned(), "Valuation-Bot".to_owned())],
//!     vec![("2.5.4.10".to_owned(), "acme, inc.".to_owned())],
//! ]);
//! assert_eq!(registered, from_cert);
//! assert!("CN=a,#O=b".parse::<DistinguishedName>().is_err());
//! assert!("CN=#0403616263".parse::<DistinguishedName>().is_err());
//! ```

use std::str::FromStr;

/// The longest DN string accepted.
const MAX_LEN: usize = 1024;

/// Attribute type names RFC 4514 §3 lists, plus `emailAddress` (PKCS #9, common in client
/// certificates), with their OIDs.
const NAMES: &[(&str, &str)] = &[
    ("CN", "2.5.4.3"),
    ("L", "2.5.4.7"),
    ("ST", "2.5.4.8"),
    ("O", "2.5.4.10"),
    ("OU", "2.5.4.11"),
    ("C", "2.5.4.6"),
    ("STREET", "2.5.4.9"),
    ("DC", "0.9.2342.19200300.100.1.25"),
    ("UID", "0.9.2342.19200300.100.1.1"),
    ("SERIALNUMBER", "2.5.4.5"),
    ("EMAILADDRESS", "1.2.840.113549.1.9.1"),
    ("E", "1.2.840.113549.1.9.1"),
];

/// Why a DN string is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DnError {
    /// Empty, too long, or not `type=value` pairs.
    #[error("not an RFC 4514 distinguished name: {0}")]
    Syntax(&'static str),
    /// An attribute type that is neither a known name nor a numeric OID.
    #[error("unknown attribute type in the distinguished name")]
    UnknownType,
    /// A `#hex` value.
    #[error("hex-encoded values are not supported in a distinguished name")]
    HexValue,
}

/// One attribute: its type as a dotted OID and its value, lower-cased.
type Attribute = (String, String);

/// A parsed distinguished name in RFC 4514 order; equality is the matching rule of the
/// module docs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DistinguishedName {
    /// Each RDN's attributes, sorted.
    rdns: Vec<Vec<Attribute>>,
}

impl DistinguishedName {
    /// A DN from RDNs in RFC 4514 order (most specific first), each a list of
    /// (dotted OID, value) pairs: what an adapter reads from a certificate.
    pub fn from_rdns(rdns: Vec<Vec<(String, String)>>) -> Self {
        DistinguishedName {
            rdns: rdns
                .into_iter()
                .map(|rdn| {
                    let mut attrs: Vec<Attribute> = rdn
                        .into_iter()
                        .map(|(t, v)| (t, v.to_lowercase()))
                        .collect();
                    attrs.sort();
                    attrs
                })
                .collect(),
        }
    }
}

/// The OID of an attribute type name or numeric OID.
fn attribute_oid(name: &str) -> Result<String, DnError> {
    if let Some((_, oid)) = NAMES.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)) {
        return Ok((*oid).to_owned());
    }
    let numeric = name
        .split('.')
        .all(|arc| !arc.is_empty() && arc.bytes().all(|b| b.is_ascii_digit()));
    if numeric && name.contains('.') {
        Ok(name.to_owned())
    } else {
        Err(DnError::UnknownType)
    }
}

/// Splits `s` at unescaped `sep`, keeping escapes in the parts.
fn split_unescaped(s: &str, sep: char) -> Result<Vec<&str>, DnError> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == sep {
            parts.push(&s[start..i]);
            start = i + 1;
        }
    }
    if escaped {
        return Err(DnError::Syntax("a trailing backslash"));
    }
    parts.push(&s[start..]);
    Ok(parts)
}

/// Unescapes an RFC 4514 value: `\` before a special character, or `\XX` hex pairs that
/// together form UTF-8.
fn unescape(raw: &str) -> Result<String, DnError> {
    let mut bytes = Vec::with_capacity(raw.len());
    let mut chars = raw.char_indices().peekable();
    while let Some((_, c)) = chars.next() {
        if c != '\\' {
            let mut buf = [0; 4];
            bytes.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            continue;
        }
        let Some((_, next)) = chars.next() else {
            return Err(DnError::Syntax("a trailing backslash"));
        };
        if next.is_ascii_hexdigit() {
            let Some((_, low)) = chars.next().filter(|(_, l)| l.is_ascii_hexdigit()) else {
                return Err(DnError::Syntax("a bad hex escape"));
            };
            let pair = [next as u8, low as u8];
            let text = std::str::from_utf8(&pair).map_err(|_| DnError::Syntax("a bad escape"))?;
            let byte = u8::from_str_radix(text, 16).map_err(|_| DnError::Syntax("a bad escape"))?;
            bytes.push(byte);
        } else if "\"+,;<>\\ #=".contains(next) {
            bytes.push(next as u8);
        } else {
            return Err(DnError::Syntax("an escape of an ordinary character"));
        }
    }
    String::from_utf8(bytes).map_err(|_| DnError::Syntax("escapes that are not UTF-8"))
}

/// Trims unescaped spaces around a value (an escaped trailing space is kept).
fn trim_value(raw: &str) -> &str {
    let start = raw.trim_start_matches(' ');
    let mut end = start.len();
    while end > 0 && start.as_bytes()[end - 1] == b' ' {
        // A space preceded by an odd number of backslashes is escaped.
        let backslashes = start.as_bytes()[..end - 1]
            .iter()
            .rev()
            .take_while(|b| **b == b'\\')
            .count();
        if backslashes % 2 == 1 {
            break;
        }
        end -= 1;
    }
    &start[..end]
}

impl FromStr for DistinguishedName {
    type Err = DnError;

    fn from_str(s: &str) -> Result<Self, DnError> {
        if s.trim().is_empty() {
            return Err(DnError::Syntax("empty"));
        }
        if s.len() > MAX_LEN {
            return Err(DnError::Syntax("too long"));
        }
        let mut rdns = Vec::new();
        for rdn in split_unescaped(s, ',')? {
            let mut attrs = Vec::new();
            for ava in split_unescaped(rdn, '+')? {
                let (name, value) = ava
                    .split_once('=')
                    .ok_or(DnError::Syntax("an attribute without `=`"))?;
                let name = name.trim();
                if name.is_empty() {
                    return Err(DnError::Syntax("an attribute without a type"));
                }
                let value = trim_value(value);
                if value.starts_with('#') {
                    return Err(DnError::HexValue);
                }
                let value = unescape(value)?;
                if value.is_empty() {
                    return Err(DnError::Syntax("an empty value"));
                }
                attrs.push((attribute_oid(name)?, value));
            }
            rdns.push(attrs);
        }
        Ok(DistinguishedName::from_rdns(rdns))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dn(s: &str) -> DistinguishedName {
        s.parse().unwrap()
    }

    #[test]
    fn names_and_oids_spacing_and_case_do_not_matter() {
        assert_eq!(dn("CN=bot,O=Acme,C=GB"), dn("cn=BOT, 2.5.4.10=acme , c=gb"));
        assert_eq!(dn("E=a@b.example"), dn("emailAddress=A@B.example"));
    }

    #[test]
    fn order_and_content_do_matter() {
        assert_ne!(dn("CN=bot,O=Acme"), dn("O=Acme,CN=bot"));
        assert_ne!(dn("CN=bot,O=Acme"), dn("CN=bot,O=Acme,C=GB"));
        assert_ne!(dn("CN=bot"), dn("CN=bot2"));
        assert_ne!(dn("CN=bot"), dn("OU=bot"));
    }

    #[test]
    fn multi_valued_rdns_match_in_any_order() {
        assert_eq!(dn("CN=bot+UID=7,O=Acme"), dn("UID=7+CN=bot,O=Acme"));
    }

    #[test]
    fn escapes_are_decoded() {
        assert_eq!(
            dn("CN=Acme\\, Inc.\\2C Ltd"),
            DistinguishedName::from_rdns(vec![vec![("2.5.4.3".into(), "Acme, Inc., Ltd".into())]])
        );
        assert_eq!(
            dn("CN=caf\\C3\\A9"),
            DistinguishedName::from_rdns(vec![vec![("2.5.4.3".into(), "café".into())]])
        );
        // An escaped trailing space stays part of the value.
        assert_ne!(dn("CN=bot\\ "), dn("CN=bot"));
    }

    #[test]
    fn malformed_names_are_refused() {
        for bad in [
            "", "   ", "CN", "=bot", "CN=", "CN=bot,", "XX=bot", "1=bot", "CN=bot\\", "CN=b\\qx",
            "CN=\\C3", "CN=#04",
        ] {
            assert!(bad.parse::<DistinguishedName>().is_err(), "{bad:?}");
        }
        assert!("CN=a".repeat(300).parse::<DistinguishedName>().is_err());
    }
}
