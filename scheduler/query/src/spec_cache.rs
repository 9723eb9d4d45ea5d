//! Parsed jobspecs, remembered by their text.
//!
//! A session often matches the same jobspec file over and over (job arrays,
//! benchmarks, a test's command list). Parsing YAML is then most of the cost
//! of a small match, and the same text always parses to the same jobspec,
//! so the shell still reads the file every time (an edited file is seen at
//! once) but parses a text only the first time it sees it.

use std::collections::HashMap;
use std::rc::Rc;

use fluxion_core::jobspec::{Jobspec, JobspecError};

/// How many distinct texts are kept; past that the cache starts over.
const CAPACITY: usize = 64;

/// Jobspecs parsed so far in a session, by text.
#[derive(Default)]
pub(crate) struct SpecCache {
    by_text: HashMap<String, Rc<Jobspec>>,
}

impl SpecCache {
    /// The jobspec `text` describes. Errors are not remembered: a bad file
    /// is parsed (and reported) each time.
    pub(crate) fn parse(&mut self, text: &str) -> Result<Rc<Jobspec>, JobspecError> {
        if let Some(spec) = self.by_text.get(text) {
            return Ok(spec.clone());
        }
        let spec = Rc::new(Jobspec::parse(text)?);
        if self.by_text.len() >= CAPACITY {
            self.by_text.clear();
        }
        self.by_text.insert(text.to_string(), spec.clone());
        Ok(spec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ONE_CORE: &str = "version: 9999\nresources:\n  - type: slot\n    count: 1\n    label: default\n    with:\n      - type: core\n        count: 1\nattributes:\n  system:\n    duration: 60\ntasks:\n  - command: [app]\n    slot: default\n    count:\n      per_slot: 1\n";

    #[test]
    fn same_text_same_jobspec_other_text_parsed_anew() {
        let mut cache = SpecCache::default();
        let a = cache.parse(ONE_CORE).unwrap();
        let b = cache.parse(ONE_CORE).unwrap();
        assert!(Rc::ptr_eq(&a, &b), "the second parse reuses the first");
        let longer = ONE_CORE.replace("duration: 60", "duration: 120");
        let c = cache.parse(&longer).unwrap();
        assert_eq!(c.duration, 120);
        assert_eq!(a.duration, 60);
    }

    #[test]
    fn errors_are_reported_every_time_and_not_kept() {
        let mut cache = SpecCache::default();
        let bad = ONE_CORE.replace("count: 1\nattributes", "count: 0\nattributes");
        assert!(cache.parse(&bad).is_err());
        assert!(cache.parse(&bad).is_err());
        assert!(cache.by_text.is_empty());
    }

    #[test]
    fn the_cache_stays_bounded() {
        let mut cache = SpecCache::default();
        for d in 1..=(CAPACITY as u64 * 2 + 1) {
            let text = ONE_CORE.replace("duration: 60", &format!("duration: {d}"));
            assert_eq!(cache.parse(&text).unwrap().duration, d);
            assert!(cache.by_text.len() <= CAPACITY);
        }
    }
}
