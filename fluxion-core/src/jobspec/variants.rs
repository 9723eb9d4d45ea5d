//! Alternative slots: a jobspec whose resources list several `xor_slot`
//! siblings asks for exactly one of them. It stands for the plain jobspecs
//! that keep one alternative of each such group, tried in order.

use super::{Jobspec, JobspecError, Resource};

/// At most this many plain jobspecs are made from one with alternatives.
pub const MAX_VARIANTS: usize = 4096;

impl Jobspec {
    /// The plain jobspecs this one stands for when it lists alternative
    /// slots (`xor_slot` siblings): each keeps one alternative of every
    /// group, the first alternatives first, so a match may try them in
    /// order and take the first that fits; `None` when there are no
    /// alternatives (the jobspec stands for itself). An error when they
    /// combine in more than [`MAX_VARIANTS`] ways.
    pub fn xor_variants(&self) -> Result<Option<Vec<Jobspec>>, JobspecError> {
        if !any_xor(&self.resources) {
            return Ok(None);
        }
        let lists = expand(&self.resources).ok_or_else(|| {
            JobspecError::new(
                "resources",
                format!("xor_slot alternatives combine in more than {MAX_VARIANTS} ways"),
            )
        })?;
        Ok(Some(
            lists
                .into_iter()
                .map(|resources| Jobspec {
                    version: self.version,
                    resources,
                    tasks: self.tasks.clone(),
                    duration: self.duration,
                })
                .collect(),
        ))
    }
}

fn any_xor(list: &[Resource]) -> bool {
    list.iter().any(|r| r.is_xor_slot() || any_xor(&r.with))
}

/// Every way to pick one `xor_slot` of `list` (when it has any) and expand
/// the `with` of each kept resource, in order; `None` past the limit.
fn expand(list: &[Resource]) -> Option<Vec<Vec<Resource>>> {
    let xors: Vec<usize> = (0..list.len()).filter(|&i| list[i].is_xor_slot()).collect();
    // Each choice keeps the plain resources and one alternative.
    let choices: Vec<Vec<&Resource>> = if xors.is_empty() {
        vec![list.iter().collect()]
    } else {
        xors.iter()
            .map(|&keep| {
                list.iter()
                    .enumerate()
                    .filter(|&(i, r)| !r.is_xor_slot() || i == keep)
                    .map(|(_, r)| r)
                    .collect()
            })
            .collect()
    };
    let mut out: Vec<Vec<Resource>> = Vec::new();
    for choice in choices {
        // The expansions of each kept resource, combined in order.
        let mut partial: Vec<Vec<Resource>> = vec![Vec::new()];
        for r in choice {
            let inner = if any_xor(&r.with) {
                expand(&r.with)?
            } else {
                vec![r.with.clone()]
            };
            let mut next = Vec::with_capacity(partial.len() * inner.len());
            for p in &partial {
                for with in &inner {
                    let mut p = p.clone();
                    p.push(Resource {
                        kind: r.kind.clone(),
                        count: r.count,
                        with: with.clone(),
                        exclusive: r.exclusive,
                        label: r.label.clone(),
                        unit: r.unit.clone(),
                    });
                    next.push(p);
                }
            }
            if next.len() > MAX_VARIANTS {
                return None;
            }
            partial = next;
        }
        out.extend(partial);
        if out.len() > MAX_VARIANTS {
            return None;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The kinds along each variant, depth first, for comparison.
    fn shapes(spec: &Jobspec) -> Vec<String> {
        fn walk(list: &[Resource], out: &mut String) {
            for r in list {
                out.push_str(&format!(
                    "{}{}",
                    r.label.as_deref().unwrap_or(&r.kind),
                    r.count.min
                ));
                if !r.with.is_empty() {
                    out.push('(');
                    walk(&r.with, out);
                    out.push(')');
                }
                out.push(' ');
            }
        }
        spec.xor_variants()
            .unwrap()
            .unwrap_or_default()
            .iter()
            .map(|v| {
                let mut s = String::new();
                walk(&v.resources, &mut s);
                s.trim_end().to_string()
            })
            .collect()
    }

    #[test]
    fn alternatives_expand_in_order_and_nest() {
        let spec = Jobspec::parse(
            "version: 9999
resources:
  - type: xor_slot
    count: 1
    label: a
    with:
      - type: socket
        count: 1
        with:
          - type: xor_slot
            count: 1
            label: a1
            with: [{type: core, count: 8}]
          - type: xor_slot
            count: 1
            label: a2
            with: [{type: core, count: 10}]
  - type: xor_slot
    count: 2
    label: b
    with: [{type: core, count: 1}]
attributes: {system: {duration: 10}}
tasks: [{command: [app], slot: a, count: {per_slot: 1}}]
",
        )
        .unwrap();
        assert_eq!(
            shapes(&spec),
            [
                "a1(socket1(a11(core8 ) ) )",
                "a1(socket1(a21(core10 ) ) )",
                "b2(core1 )"
            ]
        );
        let plain = Jobspec::parse(
            "version: 1\nresources: [{type: slot, count: 1, label: s, with: [{type: core, count: 1}]}]\nattributes: {system: {duration: 10}}\n",
        )
        .unwrap();
        assert!(plain.xor_variants().unwrap().is_none());
    }

    #[test]
    fn too_many_alternatives_are_an_error() {
        let alt = |i: usize| {
            format!(
                "          - {{type: xor_slot, count: 1, label: x{i}, with: [{{type: core, count: 1}}]}}\n"
            )
        };
        // 70 * 70 = 4,900 combinations > MAX_VARIANTS.
        let mut text = String::from(
            "version: 1\nresources:\n  - type: node\n    count: 1\n    with:\n      - type: socket\n        count: 1\n        with:\n",
        );
        text.push_str(&(0..70).map(alt).collect::<String>());
        text.push_str("      - type: gpu\n        count: 1\n        with:\n");
        text.push_str(&(0..70).map(alt).collect::<String>());
        text.push_str("attributes: {system: {duration: 10}}\n");
        let spec = Jobspec::parse(&text).unwrap();
        let e = spec.xor_variants().unwrap_err();
        assert_eq!(e.path, "resources");
        assert!(e.message.contains("4096"), "{e}");
    }
}
