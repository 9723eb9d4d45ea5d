//! A cheap look at a jobspec's text before the YAML parser sees it.
//!
//! The YAML scanner keeps one pending "simple key" per open flow
//! collection and rechecks all of them at every token, so its time grows
//! with the square of the nesting: 200 KB of `[[[[...` took 39 s. This scan
//! is linear and over-estimates the nesting (it may refuse a jobspec whose
//! strings hold many unclosed brackets, never let a deep one through):
//! every `[` or `{` counts as an opening, and a `]` or `}` counts as a
//! closing only outside comments and outside what may be a quoted string.

use super::JobspecError;

/// Largest jobspec, in bytes (Fluxion's are a few hundred bytes).
pub const MAX_JOBSPEC_BYTES: usize = 1 << 20;

/// Deepest nesting of flow collections (`[...]`, `{...}`) a jobspec may have.
pub const MAX_FLOW_NESTING: usize = 64;

/// The error for a jobspec of `len` bytes (or more: a reader may stop
/// just past the limit).
pub(super) fn too_big(len: usize) -> JobspecError {
    JobspecError::new(
        ".",
        format!(
            "{len} bytes or more, larger than the limit of {MAX_JOBSPEC_BYTES} bytes (MAX_JOBSPEC_BYTES)"
        ),
    )
}

/// Checks the size of `text` and the nesting of its flow collections.
pub(super) fn check(text: &str) -> Result<(), JobspecError> {
    if text.len() > MAX_JOBSPEC_BYTES {
        return Err(too_big(text.len()));
    }
    let b = text.as_bytes();
    let mut depth = 0usize;
    let mut line = 1usize;
    let mut i = 0;
    // The byte before `i` that was not a space or tab (a newline counts).
    let mut prev = b'\n';
    while i < b.len() {
        let c = b[i];
        match c {
            b'[' | b'{' => {
                depth += 1;
                if depth > MAX_FLOW_NESTING {
                    return Err(JobspecError::new(
                        ".",
                        format!(
                            "line {line}: lists and mappings in brackets nest deeper than the limit of {MAX_FLOW_NESTING} levels (MAX_FLOW_NESTING)"
                        ),
                    ));
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            // A comment starts at a '#' after a space or at a line start,
            // and runs to the end of the line.
            b'#' if i == 0 || matches!(b[i - 1], b' ' | b'\t' | b'\n' | b'\r') => {
                while i < b.len() && b[i] != b'\n' {
                    depth += usize::from(matches!(b[i], b'[' | b'{'));
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
                    depth += usize::from(matches!(d, b'[' | b'{'));
                    if depth > MAX_FLOW_NESTING {
                        return Err(JobspecError::new(
                            ".",
                            format!(
                                "line {line}: too many '[' and '{{' (more than {MAX_FLOW_NESTING} open, MAX_FLOW_NESTING)"
                            ),
                        ));
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
        assert!(check("a: [[1], {b: [2]}]").is_ok());
        let deep = format!("a: {}{}", "[".repeat(65), "]".repeat(65));
        let e = check(&deep).unwrap_err();
        assert!(e.message.contains("limit of 64"), "{e}");
        assert!(check(&format!("a: {}{}", "[".repeat(64), "]".repeat(64))).is_ok());
        // Closings hidden in a comment or a string do not hide depth.
        let hidden = "a: [".to_string() + &"[ \"]]\", ".repeat(70);
        assert!(check(&hidden).is_err());
        let commented = "a: [".to_string() + &"[ # ]]\n".repeat(70);
        assert!(check(&commented).is_err());
        let single = "a: [".to_string() + &"[ 'it''s ]]', ".repeat(70);
        assert!(check(&single).is_err());
        // Quotes inside plain words and brackets in strings are fine.
        assert!(check("command: [\"don't\", 'a [b] c', \"x\\\"]\"]").is_ok());
        let e = check(&"x".repeat(MAX_JOBSPEC_BYTES + 1)).unwrap_err();
        assert!(e.message.contains("MAX_JOBSPEC_BYTES"), "{e}");
    }
}
