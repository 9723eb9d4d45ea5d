//! hwloc XML reader: a node's topology as `lstopo --of xml` writes it (hwloc
//! 1.x or 2.x), read into a graph the way Fluxion's hwloc reader builds it.
//!
//! The graph's root is `cluster0`; the machine becomes a node named by its
//! host name (`corona116`: basename `corona`, id 116). Packages become
//! sockets, then cores, PUs, NUMA nodes, groups and caches (`L3cache`, size
//! in KiB), GPUs (co-processors, and AMD `rsmi` GPUs: the id is read from
//! the device name, as `cuda1`, `rsmi0` or `opencl0d1`) and block devices
//! (`storage`, size in GB, with the `LinuxDeviceID` property). Each keeps
//! hwloc's logical index (its rank among objects of its type, in document
//! order) as id. Objects of other types, or of types not in the allowlist,
//! are left out, their children taking their place under the nearest
//! vertex kept.

use std::collections::HashMap;

use quick_xml::Reader;
use quick_xml::events::Event;

use super::IoError;
use super::xml::{attributes, next_event};
use crate::graph::{GraphLimits, ResourceGraph, VertexId, VertexSpec};

fn err(msg: impl Into<String>) -> IoError {
    IoError::Hwloc(msg.into())
}

/// hwloc's OS device types (`osdev_type`).
const OSDEV_BLOCK: i64 = 0;
const OSDEV_GPU: i64 = 1;
const OSDEV_COPROC: i64 = 5;

/// hwloc object types kept as plain vertices: (hwloc type, the type its
/// logical index counts among, graph type). hwloc 1.x calls a package a
/// socket.
const PLAIN: [(&str, &str, &str); 6] = [
    ("Package", "Package", "socket"),
    ("Socket", "Package", "socket"),
    ("Core", "Core", "core"),
    ("PU", "PU", "pu"),
    ("NUMANode", "NUMANode", "numanode"),
    ("Group", "Group", "group"),
];

/// One open `<object>`: what it says until it is placed in the graph, then
/// the vertex its children go under.
struct Frame {
    attrs: HashMap<String, String>,
    infos: HashMap<String, String>,
    /// The vertex children hang under (this object's, or the nearest kept
    /// ancestor's), once placed.
    under: Option<VertexId>,
}

/// Reading state: the graph so far and hwloc's logical index counters.
struct Builder<'a> {
    g: ResourceGraph,
    root: VertexId,
    allow: &'a [String],
    /// Next logical index per hwloc type (caches per level).
    logical: HashMap<String, i64>,
    machines: usize,
    /// Host names of the machines read so far: each names one node.
    hosts: std::collections::HashSet<String>,
}

/// Reads an hwloc XML topology. `allow` lists the graph types to keep
/// (`node`, `socket`, `core`, `pu`, `numanode`, `group`, `L1cache`...,
/// `gpu`, `storage`); empty keeps them all.
pub fn read_hwloc(text: &str, allow: &[String]) -> Result<ResourceGraph, IoError> {
    read_hwloc_with(text, allow, GraphLimits::default())
}

/// [`read_hwloc`] with these graph limits.
pub fn read_hwloc_with(
    text: &str,
    allow: &[String],
    limits: GraphLimits,
) -> Result<ResourceGraph, IoError> {
    let mut g = ResourceGraph::with_limits(limits);
    let root = g.add_vertex(VertexSpec::new("cluster", "cluster", 0), None)?;
    let mut b = Builder {
        g,
        root,
        allow,
        logical: HashMap::new(),
        machines: 0,
        hosts: Default::default(),
    };
    let mut reader = Reader::from_str(text);
    let mut stack: Vec<Frame> = Vec::new();
    loop {
        let ev = next_event(&mut reader).map_err(err)?;
        let (e, empty) = match &ev {
            Event::Start(e) => (e, false),
            Event::Empty(e) => (e, true),
            Event::End(e) if e.name().as_ref() == "object" => {
                b.place(&mut stack)?;
                stack.pop();
                continue;
            }
            Event::Eof => break,
            _ => continue,
        };
        match e.name().as_ref() {
            "info" => {
                let attrs = attributes(e).map_err(err)?;
                if let (Some(top), Some(n), Some(v)) =
                    (stack.last_mut(), attrs.get("name"), attrs.get("value"))
                {
                    top.infos.insert(n.clone(), v.clone());
                }
            }
            "object" => {
                // A parent is placed before its first child.
                b.place(&mut stack)?;
                stack.push(Frame {
                    attrs: attributes(e).map_err(err)?,
                    infos: HashMap::new(),
                    under: None,
                });
                if empty {
                    b.place(&mut stack)?;
                    stack.pop();
                }
            }
            _ => {}
        }
    }
    if !stack.is_empty() {
        return Err(err("an <object> is not closed"));
    }
    if b.machines == 0 {
        return Err(err("no Machine object with a HostName info"));
    }
    Ok(b.g)
}

/// What an object becomes: type, basename, id, name, size, properties.
struct Kept {
    kind: &'static str,
    basename: String,
    id: i64,
    name: Option<String>,
    size: u64,
    properties: Vec<(String, String)>,
}

impl Builder<'_> {
    fn allowed(&self, t: &str) -> bool {
        self.allow.is_empty() || self.allow.iter().any(|a| a == t)
    }

    fn next_logical(&mut self, key: &str) -> i64 {
        let n = self.logical.entry(key.to_string()).or_insert(0);
        *n += 1;
        *n - 1
    }

    /// Places the innermost open object if it is not placed yet: adds its
    /// vertex when it is kept, and notes where its children go.
    fn place(&mut self, stack: &mut [Frame]) -> Result<(), IoError> {
        let Some((top, above)) = stack.split_last_mut() else {
            return Ok(());
        };
        if top.under.is_some() {
            return Ok(());
        }
        // Open objects are placed before their first child.
        let parent = above.last().and_then(|f| f.under).unwrap_or(self.root);
        let kept = self.classify(top)?;
        top.under = Some(match kept {
            None => parent,
            Some(k) => {
                let mut spec = VertexSpec::new(k.kind, &k.basename, k.id);
                if let Some(name) = k.name {
                    spec.name = name;
                }
                spec.size = k.size;
                spec.properties = k.properties;
                self.g.add_vertex(spec, Some(parent))?
            }
        });
        Ok(())
    }

    /// The vertex an object becomes, if it is kept; counts its logical
    /// index either way.
    fn classify(&mut self, f: &Frame) -> Result<Option<Kept>, IoError> {
        let ty = f
            .attrs
            .get("type")
            .ok_or_else(|| err("object: missing type"))?
            .as_str();
        let plain = |kind: &'static str, id: i64| Kept {
            kind,
            basename: kind.to_string(),
            id,
            name: None,
            size: 1,
            properties: Vec::new(),
        };
        if let Some(&(_, index, kind)) = PLAIN.iter().find(|(t, ..)| *t == ty) {
            let id = self.next_logical(index);
            return Ok(self.allowed(kind).then(|| plain(kind, id)));
        }
        Ok(match ty {
            "Machine" => {
                let Some(host) = f.infos.get("HostName") else {
                    return Ok(None);
                };
                if !self.allowed("node") {
                    return Ok(None);
                }
                self.machines += 1;
                if !self.hosts.insert(host.clone()) {
                    return Err(err(format!(
                        "HostName '{host}': two Machine objects have this host name"
                    )));
                }
                let digits = host.len() - host.trim_end_matches(|c: char| c.is_ascii_digit()).len();
                let (base, num) = host.split_at(host.len() - digits);
                let id = if num.is_empty() {
                    -1
                } else {
                    num.parse::<i64>()
                        .map_err(|_| err(format!("HostName '{host}': node id out of range")))?
                };
                Some(Kept {
                    kind: "node",
                    basename: base.to_string(),
                    id,
                    name: Some(host.clone()),
                    size: 1,
                    properties: Vec::new(),
                })
            }
            "Cache" | "L1Cache" | "L2Cache" | "L3Cache" | "L4Cache" | "L5Cache" => {
                let depth = match ty {
                    "Cache" => f.attrs.get("depth").cloned().unwrap_or_default(),
                    _ => ty[1..2].to_string(),
                };
                // Instruction caches are not data caches.
                if f.attrs.get("cache_type").is_some_and(|t| t == "2") {
                    return Ok(None);
                }
                let basename = format!("L{depth}cache");
                let id = self.next_logical(&basename);
                if !self.allowed(&basename) {
                    return Ok(None);
                }
                let bytes: u64 = f
                    .attrs
                    .get("cache_size")
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
                Some(Kept {
                    kind: "cache",
                    basename,
                    id,
                    name: None,
                    size: bytes / 1024,
                    properties: Vec::new(),
                })
            }
            "OSDev" => {
                let index = self.next_logical("OSDev");
                let osdev: i64 = f
                    .attrs
                    .get("osdev_type")
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(-1);
                let name = f.attrs.get("name").map(String::as_str).unwrap_or("");
                if osdev == OSDEV_COPROC || (osdev == OSDEV_GPU && name.starts_with("rsmi")) {
                    if !self.allowed("gpu") {
                        return Ok(None);
                    }
                    Some(plain("gpu", gpu_id(name)))
                } else if osdev == OSDEV_BLOCK {
                    if !self.allowed("storage") {
                        return Ok(None);
                    }
                    let kb: u64 = f
                        .infos
                        .get("Size")
                        .ok_or_else(|| err(format!("block device '{name}': no Size info")))?
                        .trim()
                        .parse()
                        .map_err(|_| err(format!("block device '{name}': Size is not a number")))?;
                    let dev = f.infos.get("LinuxDeviceID").cloned().unwrap_or("-1".into());
                    Some(Kept {
                        kind: "storage",
                        basename: "storage".into(),
                        id: index,
                        name: None,
                        size: kb / 1_000_000,
                        properties: vec![("LinuxDeviceID".into(), dev)],
                    })
                } else {
                    None
                }
            }
            _ => None,
        })
    }
}

/// A GPU's index from its hwloc name: `cuda1` and `rsmi1` give 1, and
/// `opencl0d1` (platform 0, device 1) gives 1; -1 when there is none.
fn gpu_id(name: &str) -> i64 {
    let digits = if let Some(rest) = name.strip_prefix("cuda") {
        rest
    } else if let Some(rest) = name.strip_prefix("rsmi") {
        rest
    } else if let Some(rest) = name.strip_prefix("opencl") {
        rest.split_once('d').map_or("", |(_, d)| d)
    } else {
        ""
    };
    let end = digits
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(digits.len());
    digits[..end].parse().unwrap_or(-1)
}
