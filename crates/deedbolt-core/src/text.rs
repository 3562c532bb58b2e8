//! Bounded echoes of client input in error messages: a client that sends a huge value
//! gets a short message, never its own input back in full.

/// `s` cut to at most `max` bytes (on a character boundary), with `…` when it was cut.
///
/// ```
/// use deedbolt_core::text::truncated;
/// assert_eq!(truncated("short", 64), "short");
/// assert_eq!(truncated("ééé", 3), "é…");
/// assert!(truncated(&"x".repeat(10_000), 64).len() < 70);
/// ```
pub fn truncated(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}
