//! The order Fluxion's evaluators leave equal scores in. Fluxion sorts its
//! candidate lists with C++'s `std::sort`, which is not stable: when two
//! candidates score the same (two nodes' `core35` under the high-id
//! policy), which one comes first is decided by the algorithm itself. To
//! pick the same vertex, we sort by the same algorithm (GNU libstdc++'s
//! introsort: median-of-three quicksort down to runs of 16, a heapsort
//! past twice the depth of a balanced split, then one insertion sort),
//! on a list in the order Fluxion builds it (depth-first graph order).

/// Runs below this length are left to the final insertion sort.
const THRESHOLD: usize = 16;

/// Reorders `v` as libstdc++'s `std::sort(v, less)` would.
pub(crate) fn sort_by<T, F: FnMut(&T, &T) -> bool>(v: &mut [T], mut less: F) {
    let n = v.len();
    if n < 2 {
        return;
    }
    // The indices are sorted, so the moves below are cheap copies.
    let mut ix: Vec<usize> = (0..n).collect();
    let mut lt = |a: usize, b: usize| less(&v[a], &v[b]);
    let depth = 2 * n.ilog2() as usize;
    introsort_loop(&mut ix, 0, n, depth, &mut lt);
    if n > THRESHOLD {
        insertion_sort(&mut ix, 0, THRESHOLD, &mut lt);
        for i in THRESHOLD..n {
            unguarded_linear_insert(&mut ix, i, &mut lt);
        }
    } else {
        insertion_sort(&mut ix, 0, n, &mut lt);
    }
    apply(v, ix);
}

/// Puts `v[ix[k]]` at position `k`, following the permutation's cycles.
fn apply<T>(v: &mut [T], mut ix: Vec<usize>) {
    for start in 0..ix.len() {
        let mut cur = start;
        while ix[cur] != start {
            let next = ix[cur];
            v.swap(cur, next);
            ix[cur] = cur;
            cur = next;
        }
        ix[cur] = cur;
    }
}

fn introsort_loop<F: FnMut(usize, usize) -> bool>(
    ix: &mut [usize],
    first: usize,
    mut last: usize,
    mut depth: usize,
    lt: &mut F,
) {
    // Recursion goes to the right part only and is bounded by `depth`
    // (twice log2 of the length), never by the input's content.
    while last - first > THRESHOLD {
        if depth == 0 {
            heap_sort(ix, first, last, lt);
            return;
        }
        depth -= 1;
        let mid = first + (last - first) / 2;
        median_to_first(ix, first, first + 1, mid, last - 1, lt);
        let cut = unguarded_partition(ix, first + 1, last, first, lt);
        introsort_loop(ix, cut, last, depth, lt);
        last = cut;
    }
}

fn median_to_first<F: FnMut(usize, usize) -> bool>(
    ix: &mut [usize],
    result: usize,
    a: usize,
    b: usize,
    c: usize,
    lt: &mut F,
) {
    let (xa, xb, xc) = (ix[a], ix[b], ix[c]);
    let pick = if lt(xa, xb) {
        if lt(xb, xc) {
            b
        } else if lt(xa, xc) {
            c
        } else {
            a
        }
    } else if lt(xa, xc) {
        a
    } else if lt(xb, xc) {
        c
    } else {
        b
    };
    ix.swap(result, pick);
}

fn unguarded_partition<F: FnMut(usize, usize) -> bool>(
    ix: &mut [usize],
    mut first: usize,
    mut last: usize,
    pivot: usize,
    lt: &mut F,
) -> usize {
    loop {
        while lt(ix[first], ix[pivot]) {
            first += 1;
        }
        last -= 1;
        while lt(ix[pivot], ix[last]) {
            last -= 1;
        }
        if first >= last {
            return first;
        }
        ix.swap(first, last);
        first += 1;
    }
}

fn insertion_sort<F: FnMut(usize, usize) -> bool>(
    ix: &mut [usize],
    first: usize,
    last: usize,
    lt: &mut F,
) {
    for i in first + 1..last {
        let val = ix[i];
        if lt(val, ix[first]) {
            ix.copy_within(first..i, first + 1);
            ix[first] = val;
        } else {
            unguarded_linear_insert(ix, i, lt);
        }
    }
}

/// Moves `ix[i]` left past every element it sorts before; something at or
/// before the start sorts no later than it, so the walk stops in bounds.
fn unguarded_linear_insert<F: FnMut(usize, usize) -> bool>(ix: &mut [usize], i: usize, lt: &mut F) {
    let val = ix[i];
    let mut hole = i;
    while hole > 0 && lt(val, ix[hole - 1]) {
        ix[hole] = ix[hole - 1];
        hole -= 1;
    }
    ix[hole] = val;
}

fn heap_sort<F: FnMut(usize, usize) -> bool>(
    ix: &mut [usize],
    first: usize,
    last: usize,
    lt: &mut F,
) {
    let h = &mut ix[first..last];
    let len = h.len();
    if len < 2 {
        return;
    }
    let mut parent = (len - 2) / 2;
    loop {
        let value = h[parent];
        adjust_heap(h, parent, len, value, lt);
        if parent == 0 {
            break;
        }
        parent -= 1;
    }
    let mut end = len;
    while end > 1 {
        end -= 1;
        let value = h[end];
        h[end] = h[0];
        adjust_heap(h, 0, end, value, lt);
    }
}

fn adjust_heap<F: FnMut(usize, usize) -> bool>(
    h: &mut [usize],
    mut hole: usize,
    len: usize,
    value: usize,
    lt: &mut F,
) {
    let top = hole;
    let mut child = hole;
    while child < (len - 1) / 2 {
        child = 2 * (child + 1);
        if lt(h[child], h[child - 1]) {
            child -= 1;
        }
        h[hole] = h[child];
        hole = child;
    }
    if len.is_multiple_of(2) && child == (len - 2) / 2 {
        child = 2 * (child + 1);
        h[hole] = h[child - 1];
        hole = child - 1;
    }
    let mut parent = hole.saturating_sub(1) / 2;
    while hole > top && lt(h[parent], value) {
        h[hole] = h[parent];
        hole = parent;
        parent = hole.saturating_sub(1) / 2;
    }
    h[hole] = value;
}

#[cfg(test)]
mod tests {
    use super::sort_by;

    /// Two nodes of 36 cores each, in depth-first order, scored by core id
    /// (high first): the tie on the best score goes to the second node's
    /// core, as it does in Fluxion; a stable sort would pick the first's.
    #[test]
    fn equal_best_scores_come_out_in_the_order_std_sort_leaves_them() {
        let mut v: Vec<(u32, u32)> = (0..2)
            .flat_map(|node| (0..36).map(move |core| (node, core)))
            .collect();
        sort_by(&mut v, |a, b| a.1 > b.1);
        assert_eq!(&v[..4], &[(1, 35), (0, 35), (0, 34), (1, 34)]);
        assert!(v.windows(2).all(|w| w[0].1 >= w[1].1));
    }

    /// Short lists are insertion sorted, which keeps equal items in order.
    #[test]
    fn short_lists_keep_equal_items_in_order() {
        let mut v = vec![(1, 'a'), (2, 'b'), (1, 'c'), (2, 'd')];
        sort_by(&mut v, |a, b| a.0 > b.0);
        assert_eq!(v, [(2, 'b'), (2, 'd'), (1, 'a'), (1, 'c')]);
    }

    /// Whatever the input, the result is sorted and a permutation of it,
    /// including inputs that drive the quicksort into its heapsort.
    #[test]
    fn any_input_comes_out_sorted() {
        let mut seed = 12345u64;
        for n in [0usize, 1, 2, 17, 100, 1000] {
            let mut v: Vec<u64> = (0..n)
                .map(|_| {
                    seed = seed
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    (seed >> 33) % 7
                })
                .collect();
            let mut want = v.clone();
            want.sort_unstable();
            sort_by(&mut v, |a, b| a < b);
            assert_eq!(v, want);
        }
        // Median-of-three killer-like input: still sorted.
        let mut v: Vec<u32> = (0..500)
            .map(|i| if i % 2 == 0 { i } else { 500 - i })
            .collect();
        let mut want = v.clone();
        want.sort_unstable();
        sort_by(&mut v, |a, b| a < b);
        assert_eq!(v, want);
    }
}
