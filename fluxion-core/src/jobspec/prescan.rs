//! A cheap look at a jobspec's text before the YAML parser sees it: its
//! size, and the nesting of its flow collections ([`crate::flow_nesting`]),
//! where YAML scanners go quadratic (200 KB of `[[[[...` took 39 s).

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
    crate::flow_nesting::check(text, MAX_FLOW_NESTING)
        .map_err(|e| JobspecError::new(".", format!("{e} (MAX_FLOW_NESTING)")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_and_nesting_are_named_by_their_limits() {
        assert!(check("a: [[1], {b: [2]}]").is_ok());
        let deep = format!("a: {}{}", "[".repeat(65), "]".repeat(65));
        let e = check(&deep).unwrap_err();
        assert!(e.message.contains("limit of 64"), "{e}");
        assert!(e.message.contains("MAX_FLOW_NESTING"), "{e}");
        assert!(check(&format!("a: {}{}", "[".repeat(64), "]".repeat(64))).is_ok());
        let e = check(&"x".repeat(MAX_JOBSPEC_BYTES + 1)).unwrap_err();
        assert!(e.message.contains("MAX_JOBSPEC_BYTES"), "{e}");
    }
}
