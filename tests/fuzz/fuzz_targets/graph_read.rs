//! A graph file from the input, in the format its first byte picks (GRUG,
//! JGF, rv1exec, hwloc XML, or the id and host lists of rv1exec): read it,
//! and write a small graph that loaded back out as JGF and read that.
#![no_main]

use fluxion_core::io;
use libfuzzer_sys::fuzz_target;

/// Graphs past this many vertices are not written back: JGF text of a
/// large graph is slow to build and says nothing new about the reader.
const ROUND_TRIP_VERTICES: usize = 20_000;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, bytes)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(bytes) else {
        return;
    };
    let read = match pick % 5 {
        0 => io::read_grug(text),
        1 => io::read_jgf(text),
        2 => io::read_rv1exec(text),
        3 => io::read_hwloc(text, &[]),
        _ => {
            let _ = io::expand_hostlist(text, 1000);
            let _ = io::expand_idset(text, 1000);
            let _ = io::count_idset(text);
            return;
        }
    };
    if let Ok(g) = read
        && g.vertex_count() < ROUND_TRIP_VERTICES
    {
        // Not always accepted back (rv1exec may name a host twice, which
        // JGF paths cannot), but never a panic.
        let _ = io::read_jgf(&io::write_jgf(&g));
    }
});
