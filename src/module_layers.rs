//! The module layering that ARCHITECTURE.md declares, checked against the
//! code.
//!
//! Why: a module that imports only modules below it can be read, tested and
//! replaced on its own, and a cycle between modules creeps back unnoticed in
//! review. This test reads the layer table from ARCHITECTURE.md, finds every
//! `crate::<module>` path in `src/` (`use` statements, paths in code, doc
//! links, `$crate` in macros, and `super::` chains that reach the crate
//! root), and fails on any cycle between top-level modules and on any
//! import of a module that the table does not place below the importer.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// This file names modules in its tests; it is not part of the layering.
const SELF: &str = "module_layers";
/// The comment in ARCHITECTURE.md that the layer table follows.
const MARKER: &str = "<!-- module layers: checked by src/module_layers.rs -->";

/// From-module → to-module → the places (`file:line`) of the references.
type Graph = BTreeMap<String, BTreeMap<String, Vec<String>>>;

/// The rank of each module: its row (0 = the bottom one) and its place in
/// the row. A module may import only modules of a lower rank.
type Ranks = BTreeMap<String, (usize, usize)>;

/// Reads the table: rows `label │ a, b, c`, the top row first; a row with
/// an empty label continues the row above it.
fn parse_layers(doc: &str) -> Result<Ranks, String> {
    let start = doc
        .find(MARKER)
        .ok_or_else(|| format!("ARCHITECTURE.md has no {MARKER:?}"))?;
    let mut rows: Vec<Vec<String>> = Vec::new();
    let mut fenced = false;
    for line in doc[start + MARKER.len()..].lines() {
        if line.trim_start().starts_with("```") {
            if fenced {
                break;
            }
            fenced = true;
            continue;
        }
        let Some((label, modules)) = line.split_once('│').filter(|_| fenced) else {
            continue;
        };
        let names = modules
            .split(',')
            .map(|m| m.trim().to_string())
            .filter(|m| !m.is_empty());
        match rows.last_mut() {
            Some(row) if label.trim().is_empty() => row.extend(names),
            _ => rows.push(names.collect()),
        }
    }
    let mut ranks = Ranks::new();
    for (row, modules) in rows.iter().rev().enumerate() {
        for (place, m) in modules.iter().enumerate() {
            if ranks.insert(m.clone(), (row, place)).is_some() {
                return Err(format!("{m} is listed twice in the layer table"));
            }
        }
    }
    Ok(ranks)
}

/// The top-level modules `lib.rs` declares.
fn declared_modules(lib: &str) -> BTreeSet<String> {
    lib.lines()
        .filter_map(|l| {
            let l = l.trim_start();
            let l = l
                .strip_prefix("pub(crate) ")
                .or_else(|| l.strip_prefix("pub "))
                .unwrap_or(l);
            let name = l.strip_prefix("mod ")?;
            Some(name.trim_end_matches([';', '{', ' ']).to_string())
        })
        .collect()
}

fn is_ident(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

fn ident_at(s: &[u8], mut i: usize) -> (String, usize) {
    while i < s.len() && s[i] == b' ' {
        i += 1;
    }
    let start = i;
    while i < s.len() && is_ident(s[i]) {
        i += 1;
    }
    (String::from_utf8_lossy(&s[start..i]).into_owned(), i)
}

/// The first path segments after `crate::` (several for `crate::{a, b}`)
/// and after `super::` chains of at least `depth` steps, with their line.
fn references(text: &str, depth: usize) -> Vec<(String, usize)> {
    let s = text.as_bytes();
    let mut out = Vec::new();
    let line_of = |i: usize| text[..i].bytes().filter(|&b| b == b'\n').count() + 1;
    let mut i = 0;
    while i < s.len() {
        let starts = i == 0 || !(is_ident(s[i - 1]) || s[i - 1] == b':');
        if starts && s[i..].starts_with(b"crate::") {
            i += "crate::".len();
            if s.get(i) == Some(&b'{') {
                let mut level = 0;
                let mut at_segment = true;
                while i < s.len() {
                    match s[i] {
                        b'{' => {
                            level += 1;
                            at_segment = level == 1;
                        }
                        b'}' => {
                            level -= 1;
                            if level == 0 {
                                break;
                            }
                        }
                        b',' if level == 1 => at_segment = true,
                        c if at_segment && is_ident(c) => {
                            let (name, end) = ident_at(s, i);
                            out.push((name, line_of(i)));
                            at_segment = false;
                            i = end;
                            continue;
                        }
                        _ => {}
                    }
                    i += 1;
                }
            } else {
                let (name, end) = ident_at(s, i);
                out.push((name, line_of(i)));
                i = end;
            }
            continue;
        }
        if starts && s[i..].starts_with(b"super::") {
            let at = i;
            let mut steps = 0;
            while s[i..].starts_with(b"super::") {
                steps += 1;
                i += "super::".len();
            }
            if steps >= depth {
                let (name, end) = ident_at(s, i);
                out.push((name, line_of(at)));
                i = end;
            }
            continue;
        }
        i += 1;
    }
    out
}

/// The module path of a source file below `src/`: `a/b.rs` and
/// `a/b/mod.rs` are `[a, b]`.
fn module_path(rel: &Path) -> Vec<String> {
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    if let Some(last) = parts.pop() {
        if last != "mod.rs" {
            parts.push(last.trim_end_matches(".rs").to_string());
        }
    }
    parts
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

/// The import graph between the top-level modules of the crate in `src`.
fn import_graph(src: &Path, modules: &BTreeSet<String>) -> Graph {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let mut graph = Graph::new();
    for file in files {
        let rel = file.strip_prefix(src).unwrap();
        let path = module_path(rel);
        let Some(from) = path.first().filter(|m| modules.contains(*m)) else {
            continue; // lib.rs, main.rs
        };
        if from == SELF {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        for (to, line) in references(&text, path.len()) {
            if &to != from && modules.contains(&to) {
                let place = format!("src/{}:{line}", rel.display());
                let edges = graph.entry(from.clone()).or_default();
                edges.entry(to).or_default().push(place);
            }
        }
    }
    graph
}

/// A cycle of modules (the first module repeated at the end), if any.
fn find_cycle(graph: &Graph) -> Option<Vec<String>> {
    fn visit(
        m: &str,
        graph: &Graph,
        done: &mut BTreeSet<String>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = stack.iter().position(|s| s == m) {
            let mut cycle = stack[at..].to_vec();
            cycle.push(m.to_string());
            return Some(cycle);
        }
        if done.contains(m) {
            return None;
        }
        stack.push(m.to_string());
        for to in graph.get(m).into_iter().flat_map(|e| e.keys()) {
            if let Some(c) = visit(to, graph, done, stack) {
                return Some(c);
            }
        }
        stack.pop();
        done.insert(m.to_string());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|m| visit(m, graph, &mut done, &mut Vec::new()))
}

/// Every import of a module not ranked below the importer.
fn violations(graph: &Graph, ranks: &Ranks) -> Vec<String> {
    let mut out = Vec::new();
    for (from, edges) in graph {
        for (to, places) in edges {
            match (ranks.get(from), ranks.get(to)) {
                (Some(a), Some(b)) if b < a => {}
                (Some(_), Some(_)) => out.push(format!(
                    "{from} imports {to}, which is not below it ({})",
                    places.join(", ")
                )),
                _ => out.push(format!("{from} → {to}: not in the layer table")),
            }
        }
    }
    out
}

#[test]
fn imports_follow_the_layers_of_architecture_md() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let doc = std::fs::read_to_string(root.join("ARCHITECTURE.md")).unwrap();
    let lib = std::fs::read_to_string(root.join("src/lib.rs")).unwrap();
    let ranks = parse_layers(&doc).unwrap_or_else(|e| panic!("{e}"));
    let mut modules = declared_modules(&lib);
    modules.remove(SELF);
    let listed: BTreeSet<String> = ranks.keys().cloned().collect();
    assert_eq!(
        listed, modules,
        "the layer table of ARCHITECTURE.md lists exactly the modules of src/lib.rs"
    );
    let graph = import_graph(&root.join("src"), &modules);
    if let Some(cycle) = find_cycle(&graph) {
        let edges: Vec<String> = cycle
            .windows(2)
            .map(|w| format!("{} → {} ({})", w[0], w[1], graph[&w[0]][&w[1]].join(", ")))
            .collect();
        panic!(
            "modules import each other in a cycle:\n  {}",
            edges.join("\n  ")
        );
    }
    let bad = violations(&graph, &ranks);
    assert!(
        bad.is_empty(),
        "imports against the layers:\n  {}",
        bad.join("\n  ")
    );
}

#[test]
fn references_are_found_in_every_form() {
    let text = "use crate::a::X;\nuse crate::{b::Y, c};\nfn f() { crate::d::g(); $crate::e!(); }\n\
                use super::super::f;\nlet s = mycrate::h;";
    let names: Vec<(String, usize)> = references(text, 2);
    let names: Vec<&str> = names.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["a", "b", "c", "d", "e", "f"]);
    assert_eq!(references("use super::super::f;", 3), []);
    assert_eq!(
        references("use crate::x;\n\nuse crate::y;", 1)[1],
        ("y".into(), 3)
    );
}

#[test]
fn a_cycle_and_an_upward_import_are_reported() {
    fn edge(graph: &mut Graph, a: &str, b: &str) {
        let places = graph.entry(a.into()).or_default().entry(b.into());
        places.or_default().push(format!("src/{a}.rs:1"));
    }
    let mut graph = Graph::new();
    edge(&mut graph, "top", "mid");
    edge(&mut graph, "mid", "low");
    assert_eq!(find_cycle(&graph), None);
    edge(&mut graph, "low", "top");
    assert_eq!(
        find_cycle(&graph).unwrap(),
        ["low", "top", "mid", "low"].map(String::from)
    );
    let doc = format!("{MARKER}\n```text\nups │ mid\n    │ top\nlow │ low\n```\n");
    let ranks = parse_layers(&doc).unwrap();
    assert_eq!(ranks["top"], (1, 1));
    assert_eq!(
        violations(&graph, &ranks),
        ["low imports top, which is not below it (src/low.rs:1)"]
    );
}
