//! `application/x-www-form-urlencoded` request bodies, parsed strictly (RFC 6749 §3.2).

use deedbolt_core::error::OAuthError;

/// The parameters of a form body, each at most once.
#[derive(Debug, Default)]
pub struct FormParams {
    pairs: Vec<(String, String)>,
}

impl FormParams {
    /// Parses a body. A parameter given twice is `invalid_request` ("Request and response
    /// parameters MUST NOT be included more than once", RFC 6749 §3.1/§3.2).
    pub fn parse(body: &[u8]) -> Result<Self, OAuthError> {
        let mut pairs: Vec<(String, String)> = Vec::new();
        for (k, v) in form_urlencoded::parse(body) {
            if pairs.iter().any(|(seen, _)| *seen == k) {
                return Err(OAuthError::invalid_request(format!(
                    "parameter `{}` given more than once",
                    k.chars().take(40).collect::<String>()
                )));
            }
            if pairs.len() >= 64 {
                return Err(OAuthError::invalid_request("too many parameters"));
            }
            pairs.push((k.into_owned(), v.into_owned()));
        }
        Ok(FormParams { pairs })
    }

    /// The value of `name`; a parameter sent without a value counts as omitted (RFC 6749 §3.2).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }

    /// Removes and returns `name`, so secrets do not linger in the parameter list.
    pub fn take(&mut self, name: &str) -> Option<String> {
        let i = self.pairs.iter().position(|(k, _)| k == name)?;
        Some(self.pairs.swap_remove(i).1).filter(|v| !v.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_parameter_is_invalid_request() {
        let err = FormParams::parse(b"grant_type=a&scope=x&grant_type=b").unwrap_err();
        assert_eq!(err.code(), "invalid_request");
        assert!(err.description().contains("grant_type"));
    }

    #[test]
    fn empty_value_counts_as_omitted() {
        let p = FormParams::parse(b"scope=&grant_type=client_credentials").unwrap();
        assert_eq!(p.get("scope"), None);
        assert_eq!(p.get("grant_type"), Some("client_credentials"));
    }

    #[test]
    fn values_are_percent_and_plus_decoded() {
        let mut p = FormParams::parse(b"scope=property%3Aread+tenant%3Aread&x=%2B").unwrap();
        assert_eq!(p.get("scope"), Some("property:read tenant:read"));
        assert_eq!(p.take("x").as_deref(), Some("+"));
        assert_eq!(p.get("x"), None);
    }
}
