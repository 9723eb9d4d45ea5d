//! Compressed node lists in the style of Flux's hostlists: `node[0-3,7],gpu1`.

use std::collections::BTreeMap;

/// Compresses node names: names that share a prefix and end in a number are
/// grouped as `prefix[ranges]`; others are listed as they are. Order: by
/// prefix, then by number. Zero-padded numbers keep their width.
pub fn compress<'a>(names: impl IntoIterator<Item = &'a str>) -> String {
    // prefix -> (width, number) so that node01 and node1 stay distinct.
    let mut numbered: BTreeMap<&str, Vec<(usize, u64)>> = BTreeMap::new();
    let mut plain: Vec<&str> = Vec::new();
    for name in names {
        let digits = name.len() - name.trim_end_matches(|c: char| c.is_ascii_digit()).len();
        let (prefix, num) = name.split_at(name.len() - digits);
        match num.parse::<u64>() {
            Ok(n) if digits > 0 => {
                // Only a leading zero makes the width significant: node9 and
                // node10 belong to one run, node09 and node10 do too, node9 and
                // node09 do not.
                let width = if digits > 1 && num.starts_with('0') {
                    digits
                } else {
                    0
                };
                numbered.entry(prefix).or_default().push((width, n))
            }
            _ => plain.push(name),
        }
    }
    let mut parts: Vec<String> = Vec::new();
    for (prefix, mut nums) in numbered {
        nums.sort_unstable_by_key(|&(w, n)| (n, w));
        nums.dedup();
        let fmt = |w: usize, n: u64| {
            if w > 1 && n.to_string().len() < w {
                format!("{n:0w$}")
            } else {
                n.to_string()
            }
        };
        let mut ranges: Vec<String> = Vec::new();
        let mut i = 0;
        while i < nums.len() {
            let (w, start) = nums[i];
            let mut j = i;
            while j + 1 < nums.len()
                && nums[j + 1].1 == nums[j].1 + 1
                && (nums[j + 1].0 == w || fmt(nums[j + 1].0, nums[j + 1].1).len() >= w.max(1))
            {
                j += 1;
            }
            let end = nums[j].1;
            ranges.push(if j == i {
                fmt(w, start)
            } else {
                format!("{}-{}", fmt(w, start), fmt(w, end))
            });
            i = j + 1;
        }
        if ranges.len() == 1 && !ranges[0].contains('-') {
            parts.push(format!("{prefix}{}", ranges[0]));
        } else {
            parts.push(format!("{prefix}[{}]", ranges.join(",")));
        }
    }
    plain.sort_unstable();
    plain.dedup();
    parts.extend(plain.into_iter().map(str::to_owned));
    parts.join(",")
}

#[cfg(test)]
mod tests {
    use super::compress;

    #[test]
    fn groups_runs_and_keeps_singletons() {
        assert_eq!(compress(["node0", "node1", "node2", "node3"]), "node[0-3]");
        assert_eq!(
            compress(["node3", "node1", "node0", "node7"]),
            "node[0-1,3,7]"
        );
        assert_eq!(compress(["node5"]), "node5");
        assert_eq!(compress(["login", "node1", "node2"]), "node[1-2],login");
        assert_eq!(compress(["n01", "n02", "n03", "n10"]), "n[01-03,10]");
        assert_eq!(compress(Vec::<&str>::new()), "");
    }

    #[test]
    fn runs_cross_a_change_in_digit_count() {
        let names: Vec<String> = (0..100).map(|i| format!("node{i}")).collect();
        assert_eq!(compress(names.iter().map(String::as_str)), "node[0-99]");
        assert_eq!(compress(["n08", "n09", "n10", "n11"]), "n[08-11]");
    }
}
