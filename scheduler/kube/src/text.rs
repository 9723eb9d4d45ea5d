//! Cutting text to a size the API server (or a log line) accepts.

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
pub(crate) fn prefix(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::prefix;

    #[test]
    fn a_prefix_never_splits_a_character() {
        assert_eq!(prefix("abc", 2), "ab");
        assert_eq!(prefix("abc", 10), "abc");
        assert_eq!(prefix("éé", 3), "é");
        assert_eq!(prefix("é", 1), "");
    }
}
