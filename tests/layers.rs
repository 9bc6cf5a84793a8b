//! The module layering ARCHITECTURE.md describes, checked on the source text: no import circle
//! among the modules of one folder (so each stage can change in the file named for it), and the
//! leaf modules stay leaves (`tensor` imports nothing of the crate; `decode` and `preprocess`
//! never reach into `engine`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Module path (e.g. ["engine", "cpu_kernels", "conv"]) of every source file under src/.
fn modules() -> BTreeMap<Vec<String>, PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = vec![];
    walk(&src, &mut files);
    let mut map = BTreeMap::new();
    for f in files {
        let rel = f.strip_prefix(&src).unwrap();
        let mut parts: Vec<String> = rel.iter().map(|c| c.to_string_lossy().into_owned()).collect();
        let last = parts.pop().unwrap();
        let stem = last.trim_end_matches(".rs");
        if !matches!(stem, "mod" | "lib" | "main") {
            parts.push(stem.to_string());
        }
        if stem == "main" {
            continue; // the binary is the top of every layer
        }
        map.insert(parts, f);
    }
    map
}

/// The longest known module that `path` names or lies inside.
fn resolve(path: &[String], known: &BTreeMap<Vec<String>, PathBuf>) -> Option<Vec<String>> {
    (0..=path.len()).rev().map(|n| path[..n].to_vec()).find(|p| known.contains_key(p))
}

/// Every module a file refers to: `crate::a::b`, `super::x`, `super::super::x`, `self::x`,
/// including the names inside `super::{x, y}` groups.
fn references(module: &[String], text: &str, known: &BTreeMap<Vec<String>, PathBuf>) -> BTreeSet<Vec<String>> {
    let mut out = BTreeSet::new();
    let bytes = text.as_bytes();
    let ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let mut i = 0;
    while i < bytes.len() {
        let starts_word = i == 0 || !ident(bytes[i - 1]);
        let rest = &bytes[i..];
        let (mut base, skip): (Vec<String>, usize) = if starts_word && rest.starts_with(b"crate::") {
            (vec![], 7)
        } else if starts_word && rest.starts_with(b"super::") {
            let mut base = module.to_vec();
            base.pop();
            let mut skip = 7;
            while bytes[i + skip..].starts_with(b"super::") {
                base.pop();
                skip += 7;
            }
            (base, skip)
        } else if starts_word && rest.starts_with(b"self::") {
            (module.to_vec(), 6)
        } else {
            i += 1;
            continue;
        };
        let mut j = i + skip;
        // a::b::c
        loop {
            let s = j;
            while j < bytes.len() && ident(bytes[j]) {
                j += 1;
            }
            if j > s {
                base.push(String::from_utf8_lossy(&bytes[s..j]).into_owned());
            }
            if bytes[j..].starts_with(b"::") && j + 2 < bytes.len() && bytes[j + 2] != b'{' {
                j += 2;
                continue;
            }
            break;
        }
        if bytes[j..].starts_with(b"::{") {
            let end = bytes[j..].iter().position(|&b| b == b'}').map_or(bytes.len(), |e| j + e);
            for name in String::from_utf8_lossy(&bytes[j + 3..end]).split(',') {
                let name: String = name.trim().chars().take_while(|&c| ident(c as u8) || c == ':').collect();
                let mut p = base.clone();
                p.extend(name.split("::").filter(|s| !s.is_empty()).map(str::to_string));
                if let Some(m) = resolve(&p, known) {
                    out.insert(m);
                }
            }
        }
        if let Some(m) = resolve(&base, known) {
            out.insert(m);
        }
        i = j.max(i + 1);
    }
    out
}

fn graph() -> (BTreeMap<Vec<String>, PathBuf>, BTreeMap<Vec<String>, BTreeSet<Vec<String>>>) {
    let known = modules();
    let mut refs = BTreeMap::new();
    for (m, f) in &known {
        let text = std::fs::read_to_string(f).unwrap();
        let mut r = references(m, &text, &known);
        r.remove(m);
        refs.insert(m.clone(), r);
    }
    (known, refs)
}

/// A cycle among the child modules of `parent`, where A depends on B when any file inside A
/// refers to anything inside B (references between a module and its own ancestors or
/// descendants are structure, not dependencies).
fn sibling_cycle(parent: &[String], known: &BTreeMap<Vec<String>, PathBuf>, refs: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>) -> Option<Vec<String>> {
    let children: Vec<String> =
        known.keys().filter(|m| m.len() == parent.len() + 1 && m.starts_with(parent)).map(|m| m[parent.len()].clone()).collect();
    let child_of = |m: &Vec<String>| (m.len() > parent.len() && m.starts_with(parent)).then(|| m[parent.len()].clone());
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (m, targets) in refs {
        let Some(a) = child_of(m) else { continue };
        for t in targets {
            if let Some(b) = child_of(t) {
                if a != b {
                    edges.entry(a.clone()).or_default().insert(b);
                }
            }
        }
    }
    // Depth-first search for a back edge.
    fn visit(n: &String, edges: &BTreeMap<String, BTreeSet<String>>, state: &mut BTreeMap<String, u8>, stack: &mut Vec<String>) -> Option<Vec<String>> {
        state.insert(n.clone(), 1);
        stack.push(n.clone());
        for m in edges.get(n).into_iter().flatten() {
            match state.get(m).copied().unwrap_or(0) {
                1 => {
                    let at = stack.iter().position(|s| s == m).unwrap();
                    let mut cycle = stack[at..].to_vec();
                    cycle.push(m.clone());
                    return Some(cycle);
                }
                0 => {
                    if let Some(c) = visit(m, edges, state, stack) {
                        return Some(c);
                    }
                }
                _ => {}
            }
        }
        stack.pop();
        state.insert(n.clone(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for c in &children {
        if state.get(c).copied().unwrap_or(0) == 0 {
            if let Some(cycle) = visit(c, &edges, &mut state, &mut vec![]) {
                return Some(cycle);
            }
        }
    }
    None
}

#[test]
fn no_import_circle_among_the_modules_of_the_engine() {
    let (known, refs) = graph();
    let folders: BTreeSet<Vec<String>> =
        known.keys().filter(|m| m.first().is_some_and(|f| f == "engine")).map(|m| m[..m.len() - 1].to_vec()).collect();
    assert!(folders.contains(&vec!["engine".to_string(), "cpu_kernels".to_string()]), "module walk found no cpu_kernels: {folders:?}");
    let mut cycles = vec![];
    for parent in &folders {
        if let Some(c) = sibling_cycle(parent, &known, &refs) {
            cycles.push(format!("{}: {}", parent.join("::"), c.join(" -> ")));
        }
    }
    assert!(cycles.is_empty(), "import circles:\n{}", cycles.join("\n"));
}

#[test]
fn the_cycle_check_finds_a_circle() {
    // The checker itself: two modules that use each other form a circle.
    let mut known = BTreeMap::new();
    for m in [vec!["p"], vec!["p", "a"], vec!["p", "b"]] {
        known.insert(m.iter().map(|s| s.to_string()).collect::<Vec<_>>(), PathBuf::new());
    }
    let a = vec!["p".to_string(), "a".to_string()];
    let b = vec!["p".to_string(), "b".to_string()];
    let mut refs = BTreeMap::new();
    refs.insert(a.clone(), references(&a, "use super::b::X; use super::{self as q};", &known));
    refs.insert(b.clone(), references(&b, "fn f() { crate::p::a::g() }", &known));
    assert!(refs[&a].contains(&b) && refs[&b].contains(&a), "{refs:?}");
    assert!(sibling_cycle(&["p".to_string()], &known, &refs).is_some());
    refs.insert(b.clone(), BTreeSet::new());
    assert!(sibling_cycle(&["p".to_string()], &known, &refs).is_none());
}

#[test]
fn leaf_modules_stay_leaves() {
    let (_, refs) = graph();
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let tensor = &refs[&s(&["tensor"])];
    assert!(tensor.is_empty(), "tensor refers to {tensor:?}");
    for (m, targets) in &refs {
        if m.first().is_some_and(|f| f == "decode" || f == "preprocess") {
            let bad: Vec<_> = targets.iter().filter(|t| t.first().is_some_and(|f| f == "engine")).collect();
            assert!(bad.is_empty(), "{} refers to the engine: {bad:?}", m.join("::"));
        }
    }
}
