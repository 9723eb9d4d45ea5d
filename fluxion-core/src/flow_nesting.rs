//! A linear look at YAML or JSON text before a parser sees it.
//!
//! YAML scanners keep one pending "simple key" per open flow collection
//! (`[...]`, `{...}`) and recheck all of them at every token, so their time
//! grows with the square of the nesting: 200 KB of `[[[[...` takes tens of
//! seconds. [`check`] bounds that nesting in one pass. It over-estimates (a
//! text whose strings hold many unclosed brackets may be refused; a deeply
//! nested one is never let through): every `[` or `{` counts as an
//! opening, and a `]` or `}` counts as a closing only outside comments and
//! outside what may be a quoted string. Every reader of YAML from a user
//! (jobspecs, scenario files, gRPC requests) runs it first.

use std::fmt;

/// Flow collections nest deeper than the limit: where, and the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooDeep {
    /// 1-based line of the opening that went past the limit.
    pub line: usize,
    /// The limit that was passed.
    pub limit: usize,
}

impl fmt::Display for TooDeep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "line {}: lists and mappings in brackets ([ ], {{ }}) nest deeper than the limit of {} levels",
            self.line, self.limit
        )
    }
}

impl std::error::Error for TooDeep {}

/// Checks that flow collections in `text` nest at most `limit` deep.
pub fn check(text: &str, limit: usize) -> Result<(), TooDeep> {
    let b = text.as_bytes();
    let mut depth = 0usize;
    let mut line = 1usize;
    let mut i = 0;
    // The byte before `i` that was not a space or tab (a newline counts).
    let mut prev = b'\n';
    let open = |depth: &mut usize, line: usize| {
        *depth += 1;
        if *depth > limit {
            Err(TooDeep { line, limit })
        } else {
            Ok(())
        }
    };
    while i < b.len() {
        let c = b[i];
        match c {
            b'[' | b'{' => open(&mut depth, line)?,
            b']' | b'}' => depth = depth.saturating_sub(1),
            // A comment starts at a '#' after a space or at a line start,
            // and runs to the end of the line; openings in it still count.
            b'#' if i == 0 || matches!(b[i - 1], b' ' | b'\t' | b'\n' | b'\r') => {
                while i < b.len() && b[i] != b'\n' {
                    if matches!(b[i], b'[' | b'{') {
                        open(&mut depth, line)?;
                    }
                    i += 1;
                }
                continue;
            }
            // A quote may start a quoted string where a token starts.
            b'"' | b'\'' if is_token_start(prev) || matches!(b[i - 1], b' ' | b'\t') => {
                i += 1;
                while i < b.len() {
                    let d = b[i];
                    // Openings inside count too: over-estimating is safe.
                    if matches!(d, b'[' | b'{') {
                        open(&mut depth, line)?;
                    }
                    line += usize::from(d == b'\n');
                    if c == b'"' && d == b'\\' {
                        i += 2;
                        continue;
                    }
                    if d == c {
                        // '' inside a single-quoted string is a quote.
                        if c == b'\'' && b.get(i + 1) == Some(&b'\'') {
                            i += 2;
                            continue;
                        }
                        break;
                    }
                    i += 1;
                }
                prev = c;
                i += 1;
                continue;
            }
            _ => {}
        }
        line += usize::from(c == b'\n');
        if !matches!(c, b' ' | b'\t') {
            prev = c;
        }
        i += 1;
    }
    Ok(())
}

/// Whether a token may start after `prev`, the last byte that was not a
/// space or tab.
fn is_token_start(prev: u8) -> bool {
    matches!(
        prev,
        b'\n' | b'\r' | b'[' | b'{' | b',' | b':' | b'?' | b'-' | b'!' | b'&' | b'*' | b'|' | b'>'
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_nesting_and_skips_comments_and_strings() {
        // `[` `{` `[` is three levels deep.
        assert!(check("a: [[1], {b: [2]}]", 3).is_ok());
        assert_eq!(
            check("a: [[1], {b: [2]}]", 2),
            Err(TooDeep { line: 1, limit: 2 })
        );
        let deep = format!("a:\n {}{}", "[".repeat(65), "]".repeat(65));
        assert_eq!(check(&deep, 64), Err(TooDeep { line: 2, limit: 64 }));
        assert!(check(&format!("a: {}{}", "[".repeat(64), "]".repeat(64)), 64).is_ok());
        // Closings hidden in a comment or a string do not hide depth.
        let hidden = "a: [".to_string() + &"[ \"]]\", ".repeat(70);
        assert!(check(&hidden, 64).is_err());
        let commented = "a: [".to_string() + &"[ # ]]\n".repeat(70);
        assert!(check(&commented, 64).is_err());
        let single = "a: [".to_string() + &"[ 'it''s ]]', ".repeat(70);
        assert!(check(&single, 64).is_err());
        // Quotes inside plain words and brackets in strings are fine.
        assert!(check("command: [\"don't\", 'a [b] c', \"x\\\"]\"]", 64).is_ok());
    }
}
