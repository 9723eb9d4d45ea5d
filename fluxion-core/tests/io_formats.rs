//! GRUG expansion, JGF round trip and R reading on the project's fixtures.

use fluxion_core::io::{attach_jgf, read_grug, read_hwloc, read_jgf, read_rv1exec, write_jgf};

const MINI: &str = include_str!("data/mini.graphml");

#[test]
fn grug_ids_follow_scope_and_creation_order() {
    let g = read_grug(MINI).expect("fixture loads");
    // 1 cluster + 2 racks + 4 nodes + 8 sockets + 8*(4 cores + 1 gpu + 2 memory)
    assert_eq!(g.vertex_count(), 1 + 2 + 4 + 8 + 8 * 7);
    // id_scope 1 on rack->node: node ids run on across racks.
    let n3 = g
        .find_path("/mini0/rack1/node3")
        .expect("node3 under rack1");
    // id_scope 1 on socket->core: core ids run per node.
    let c7 = g
        .find_path("/mini0/rack1/node3/socket1/core7")
        .expect("core7 on socket1");
    assert!(g.is_in_subtree(c7, n3));
    let mem = g
        .find_path("/mini0/rack0/node0/socket1/memory3")
        .expect("memory3");
    let m = g.vertex(mem).expect("live");
    assert_eq!((m.size, &*m.unit), (8, "GB"));
    // Vertices are created recipe edge by recipe edge: all racks, then all
    // nodes, ... so uniq ids grow level by level.
    let r1 = g
        .vertex(g.find_path("/mini0/rack1").expect("rack1"))
        .expect("live")
        .uniq_id;
    let n0 = g
        .vertex(g.find_path("/mini0/rack0/node0").expect("node0"))
        .expect("live")
        .uniq_id;
    assert!(r1 < n0);
    // Children keep recipe edge order: cores, then gpu, then memory.
    let s0 = g.find_path("/mini0/rack0/node0/socket0").expect("socket0");
    let kinds: Vec<&str> = g.children(s0).iter().map(|&c| g.kind_name(c)).collect();
    assert_eq!(
        kinds,
        ["core", "core", "core", "core", "gpu", "memory", "memory"]
    );
}

#[test]
fn jgf_round_trip_keeps_names_ids_and_paths() {
    let g = read_grug(MINI).expect("fixture loads");
    let text = write_jgf(&g);
    let h = read_jgf(&text).expect("own JGF reads back");
    assert_eq!(h.vertex_count(), g.vertex_count());
    for v in g.vertices() {
        let p = g.path(v);
        let w = h
            .find_path(&p)
            .unwrap_or_else(|| panic!("{p} missing after round trip"));
        let (a, b) = (g.vertex(v).expect("live"), h.vertex(w).expect("live"));
        assert_eq!(
            (a.id, a.uniq_id, a.rank, a.size, a.name()),
            (b.id, b.uniq_id, b.rank, b.size, b.name())
        );
    }
    // Attaching the same document again adds nothing; a foreign root is refused.
    let mut h2 = h.clone();
    assert!(attach_jgf(&mut h2, &text).expect("idempotent").is_empty());
    let other = text
        .replace("/mini0", "/other0")
        .replace("\"mini0\"", "\"other0\"");
    assert!(attach_jgf(&mut h2, &other).is_err());
}

#[test]
fn malformed_files_get_errors_naming_the_problem() {
    let e = read_grug("<graphml><graph><node id=\"a\"/></graph></graphml>").unwrap_err();
    assert!(e.to_string().contains("node 'a': missing type"), "{e}");
    let e = read_grug(&MINI.replace(
        "<data key=\"multi_scale\">2</data></edge>\n    <edge id=\"r2n\"",
        "<data key=\"multi_scale\">x</data></edge>\n    <edge id=\"r2n\"",
    ))
    .unwrap_err();
    assert!(e.to_string().contains("multi_scale"), "{e}");
    let e = read_jgf("{\"graph\": {\"nodes\": [{\"id\": 1}]}}").unwrap_err();
    assert!(
        e.to_string().contains("graph.nodes[0].metadata.type"),
        "{e}"
    );
    let e = read_rv1exec("{\"execution\": {\"R_lite\": [{\"rank\": \"x\"}]}}").unwrap_err();
    assert!(e.to_string().contains("execution.R_lite[0].rank"), "{e}");
}

/// Association edges (a tier linked to units generated elsewhere) load;
/// the associated vertices keep their one parent in the tree. Other
/// generation methods are refused by name.
#[test]
fn grug_association_edges_keep_the_tree() {
    let extra = "<node id=\"tier\"><data key=\"type\">tier</data><data key=\"basename\">tier</data></node>\n    \
        <node id=\"rack_link\"><data key=\"type\">rack</data><data key=\"basename\">rack</data></node>\n    \
        <edge id=\"c2t\" source=\"cluster\" target=\"tier\"></edge>\n    \
        <edge id=\"t2r\" source=\"tier\" target=\"rack_link\"><data key=\"gen_method\">METHOD</data></edge>\n  </graph>";
    let plain = read_grug(MINI).expect("fixture loads");
    let linked = read_grug(&MINI.replace("</graph>", &extra.replace("METHOD", "ASSOCIATE_IN")))
        .expect("an association loads");
    // One more vertex: the tier, with no children; racks stay under the cluster.
    assert_eq!(linked.vertex_count(), plain.vertex_count() + 1);
    let tier = linked.find_by_name("tier0").next().expect("tier0");
    assert!(linked.children(tier).is_empty());
    for rack in linked
        .find_by_name("rack0")
        .chain(linked.find_by_name("rack1"))
    {
        let parent = linked.parent(rack).expect("a parent");
        assert_eq!(linked.kind_name(parent), "cluster");
    }
    let e = read_grug(&MINI.replace("</graph>", &extra.replace("METHOD", "SPLIT"))).unwrap_err();
    assert!(e.to_string().contains("gen_method 'SPLIT'"), "{e}");
}

const TINY_HWLOC: &str = include_str!("data/tiny-hwloc.xml");

/// The paths, sizes and properties of a graph, in id order.
fn describe(g: &fluxion_core::graph::ResourceGraph) -> Vec<String> {
    g.vertices()
        .map(|v| {
            let x = g.vertex(v).unwrap();
            let props: Vec<String> = x
                .properties
                .iter()
                .map(|(k, val)| format!("{k}={val}"))
                .collect();
            format!("{} {} {}", g.path(v), x.size, props.join(","))
                .trim_end()
                .to_string()
        })
        .collect()
}

/// hwloc XML: the machine is a node named by its host, packages are
/// sockets, and devices keep hwloc's logical index among OS devices
/// (the block device is the second one, after the network device).
#[test]
fn hwloc_topologies_keep_hosts_logical_indexes_and_the_allowlist() {
    let all: Vec<String> = ["node", "socket", "core", "gpu", "storage"]
        .map(String::from)
        .to_vec();
    let g = read_hwloc(TINY_HWLOC, &all).expect("fixture loads");
    assert_eq!(
        describe(&g),
        [
            "/cluster0 1",
            "/cluster0/tiny7 1",
            "/cluster0/tiny7/socket0 1",
            "/cluster0/tiny7/socket0/core0 1",
            "/cluster0/tiny7/socket0/core1 1",
            "/cluster0/tiny7/socket0/storage1 500 LinuxDeviceID=259:0",
            "/cluster0/tiny7/socket0/gpu0 1",
        ]
    );
    // Left-out types give their children to the nearest vertex kept; an
    // empty allowlist keeps every type the reader knows.
    let g = read_hwloc(TINY_HWLOC, &["node".into(), "core".into()]).unwrap();
    assert_eq!(
        describe(&g),
        [
            "/cluster0 1",
            "/cluster0/tiny7 1",
            "/cluster0/tiny7/core0 1",
            "/cluster0/tiny7/core1 1"
        ]
    );
    let g = read_hwloc(TINY_HWLOC, &[]).unwrap();
    let kinds: Vec<&str> = g.vertices().map(|v| g.kind_name(v)).collect();
    for k in ["numanode", "cache", "pu", "gpu", "storage"] {
        assert!(kinds.contains(&k), "{k} in {kinds:?}");
    }
    // hwloc 1.x calls a package a Socket.
    let old = read_hwloc(&TINY_HWLOC.replace("\"Package\"", "\"Socket\""), &all).unwrap();
    assert_eq!(describe(&old)[2], "/cluster0/tiny7/socket0 1");
    // Bad input gets errors that name the problem.
    let e = read_hwloc(&TINY_HWLOC.replace("HostName", "Host"), &[]).unwrap_err();
    assert!(e.to_string().contains("HostName"), "{e}");
    let e = read_hwloc(&TINY_HWLOC.replace("name=\"Size\"", "name=\"Bytes\""), &[]).unwrap_err();
    assert!(e.to_string().contains("nvme0n1"), "{e}");
    let e = read_hwloc("<topology><object type=\"Machine\">", &[]).unwrap_err();
    assert!(e.to_string().starts_with("hwloc:"), "{e}");
}
