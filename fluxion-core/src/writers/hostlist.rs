//! Host lists the way Flux encodes them: names keep the order they are
//! given in (R's `nodelist` lists hosts by rank, not by name), a name joins
//! the run before it only when it continues that run by one, and runs that
//! follow each other with the same prefix share one pair of brackets.

/// One run of hosts: `prefix` then the numbers `lo..=hi` of `width` digits
/// (zero padded when `padded`), or a name without a numeric suffix.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Run {
    prefix: String,
    lo: u64,
    hi: u64,
    width: usize,
    /// The number has leading zeros (`node01`), so its width is part of it.
    padded: bool,
    /// The whole name is the prefix (no numeric suffix).
    single: bool,
}

/// Longest numeric suffix Flux treats as a number; longer ones stay text.
const MAX_SUFFIX_DIGITS: usize = 18;

impl Run {
    fn parse(name: &str) -> Run {
        let digits = name.len() - name.trim_end_matches(|c: char| c.is_ascii_digit()).len();
        let (prefix, suffix) = name.split_at(name.len() - digits);
        match suffix.parse::<u64>() {
            Ok(n) if digits > 0 && digits <= MAX_SUFFIX_DIGITS => Run {
                prefix: prefix.to_string(),
                lo: n,
                hi: n,
                width: digits,
                padded: digits > 1 && suffix.starts_with('0'),
                single: false,
            },
            _ => Run {
                prefix: name.to_string(),
                lo: 0,
                hi: 0,
                width: 0,
                padded: false,
                single: true,
            },
        }
    }

    /// Both runs can share brackets: same prefix, both numbered, and the
    /// same width unless neither is zero padded (`node01` is not `node1`,
    /// but `node9` and `node10` are one run).
    fn same_family(&self, other: &Run) -> bool {
        !self.single
            && !other.single
            && self.prefix == other.prefix
            && (self.width == other.width || (!self.padded && !other.padded))
    }

    fn write_numbers(&self, out: &mut String) {
        if self.single {
            return;
        }
        let w = if self.padded { self.width } else { 0 };
        out.push_str(&format!("{:0w$}", self.lo));
        if self.hi > self.lo {
            out.push_str(&format!("-{:0w$}", self.hi));
        }
    }
}

/// Compresses host names, kept in the order given: `node[3,0-2],login`.
pub fn hostlist<S: AsRef<str>>(names: &[S]) -> String {
    let mut runs: Vec<Run> = Vec::new();
    for name in names {
        let next = Run::parse(name.as_ref());
        if let Some(tail) = runs.last_mut()
            && tail.same_family(&next)
            && tail.hi.checked_add(1) == Some(next.lo)
        {
            tail.hi = next.hi;
            continue;
        }
        runs.push(next);
    }
    let mut out = String::new();
    let mut i = 0;
    while i < runs.len() {
        if i > 0 {
            out.push(',');
        }
        let first = &runs[i];
        let bracket =
            first.hi > first.lo || runs.get(i + 1).is_some_and(|next| first.same_family(next));
        out.push_str(&first.prefix);
        if bracket {
            out.push('[');
        }
        first.write_numbers(&mut out);
        i += 1;
        while i < runs.len() && runs[i].same_family(&runs[i - 1]) {
            if bracket {
                out.push(',');
            }
            runs[i].write_numbers(&mut out);
            i += 1;
        }
        if bracket {
            out.push(']');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::hostlist;

    #[test]
    fn names_keep_their_order_and_only_ascending_neighbours_merge() {
        // Rank order put node3 first: it stays first, outside the 0-2 run.
        assert_eq!(
            hostlist(&["node3", "node0", "node1", "node2"]),
            "node[3,0-2]"
        );
        assert_eq!(
            hostlist(&["node0", "node1", "node2", "node5"]),
            "node[0-2,5]"
        );
        assert_eq!(hostlist(&["node2", "node1"]), "node[2,1]");
    }

    #[test]
    fn prefixes_bracket_separately_and_plain_names_stay_plain() {
        assert_eq!(hostlist(&["login"]), "login");
        assert_eq!(hostlist(&["node1"]), "node1");
        assert_eq!(hostlist(&["a1", "b1", "a2"]), "a1,b1,a2");
        assert_eq!(hostlist(&["a1", "a2", "login", "b7"]), "a[1-2],login,b7");
        assert_eq!(hostlist::<&str>(&[]), "");
    }

    #[test]
    fn zero_padding_is_kept_and_not_mixed_with_unpadded_numbers() {
        assert_eq!(hostlist(&["n01", "n02", "n03"]), "n[01-03]");
        assert_eq!(hostlist(&["n01", "n2"]), "n01,n2");
        assert_eq!(hostlist(&["n9", "n10", "n11"]), "n[9-11]");
        assert_eq!(hostlist(&["n08", "n09", "n10"]), "n[08-10]");
    }
}
