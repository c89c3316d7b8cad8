//! The house rules of the workspace's source tree, checked on every test
//! run so that the shape issue #12 gave the code does not erode:
//!
//! * no source file outside tests is over [`MAX_LINES`] lines;
//! * no two source files of a crate import each other, directly or around
//!   a loop (`use crate::…`, `use super::…`, and `crate::…` paths in code;
//!   a `pub use` re-export is a façade, not a dependency);
//! * every source file opens with a `//!` comment saying what it is for.
//!
//! The checker is plain text processing over `*/src/**/*.rs`: it reads no
//! compiler output, so it runs in milliseconds and needs nothing installed.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// Longest source file allowed outside tests.
const MAX_LINES: usize = 800;

/// Files allowed over [`MAX_LINES`], with why.
/// (Issue #12 allowed the TCB; it became a folder by method class instead.)
const LONG_FILES: &[&str] = &[];

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("appliance/ sits in the workspace")
        .to_path_buf()
}

/// Whether `rel` (a path relative to a crate's `src/`) is test code.
fn is_test_file(rel: &Path) -> bool {
    rel.components().any(|c| c.as_os_str() == "tests")
        || rel.file_name().is_some_and(|n| n == "tests.rs")
}

/// One crate's source files: module path (e.g. `["tcp", "tcb"]`) → file.
fn crate_modules(src: &Path) -> BTreeMap<Vec<String>, PathBuf> {
    let mut out = BTreeMap::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                // Binaries are crates of their own; `src/bin` is checked
                // as files (length, doc) but not as modules of the library.
                if p.file_name().is_some_and(|n| n == "bin") && dir == src {
                    continue;
                }
                stack.push(p);
                continue;
            }
            if p.extension().is_none_or(|x| x != "rs") {
                continue;
            }
            let rel = p.strip_prefix(src).expect("under src").to_path_buf();
            if is_test_file(&rel) {
                continue;
            }
            let mut segs: Vec<String> = rel
                .with_extension("")
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            match segs.last().map(String::as_str) {
                Some("mod") => {
                    segs.pop();
                }
                Some("lib") | Some("main") if segs.len() == 1 => {
                    segs.pop();
                }
                _ => {}
            }
            // A crate with both lib.rs and main.rs: the library is what the
            // rest of the crate's modules belong to.
            if segs.is_empty() && out.contains_key(&segs) && rel.ends_with("main.rs") {
                continue;
            }
            out.insert(segs, p);
        }
    }
    out
}

/// The text of a file without its `#[cfg(test)]` tail (unit tests import
/// their parent freely) and without comments.
fn code_of(text: &str) -> String {
    let mut out = String::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let t = line.trim_start();
        if t.starts_with("#[cfg(test)]") {
            let next = lines.peek().map(|l| l.trim_start()).unwrap_or("");
            if next.starts_with("mod ") || next.starts_with("pub mod ") {
                if next.ends_with(';') {
                    // `#[cfg(test)] mod tests;`: a file of its own.
                    lines.next();
                    continue;
                }
                break;
            }
        }
        if t.starts_with("//") {
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// Expands one `use` tree (`a::{b, c::{d, e}}`) into its paths.
fn expand_use(tree: &str) -> Vec<String> {
    let tree = tree.trim();
    let Some(open) = tree.find('{') else {
        // `a::b as c` and `a::b::*`
        let path = tree.split(" as ").next().unwrap_or(tree).trim();
        return vec![path.trim_end_matches("::*").to_string()];
    };
    let prefix = tree[..open].trim_end_matches("::").trim();
    let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (i, ch) in inner.char_indices() {
        match ch {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&inner[start..]);
    parts
        .into_iter()
        .filter(|p| !p.trim().is_empty())
        .flat_map(expand_use)
        .map(|p| {
            if p == "self" {
                prefix.to_string()
            } else if prefix.is_empty() {
                p
            } else {
                format!("{prefix}::{p}")
            }
        })
        .collect()
}

/// Every module path (relative to the crate root) that `code` of the
/// module at `here` refers to through `use` or a `crate::` path.
fn references(here: &[String], is_dir_module: bool, code: &str) -> Vec<Vec<String>> {
    let mut paths = Vec::new();
    // `use` statements, not counting `pub use` re-exports.
    let mut rest = code;
    while let Some(at) = rest.find("use ") {
        let before = &rest[..at];
        let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
        let lead = before[line_start..].trim();
        let end = rest[at..].find(';').map(|e| at + e).unwrap_or(rest.len());
        // Only statements: `use` at the start of a line (after
        // attributes), and not `pub use` / `pub(crate) use` re-exports.
        let is_statement = lead.is_empty() || lead.ends_with(']');
        if is_statement {
            paths.extend(expand_use(&rest[at + 4..end]));
        }
        rest = &rest[(at + 4).min(rest.len())..];
    }
    // `crate::a::b` in code.
    let bytes = code.as_bytes();
    let mut i = 0;
    while let Some(off) = code[i..].find("crate::") {
        let at = i + off;
        let boundary = at == 0
            || !(bytes[at - 1].is_ascii_alphanumeric()
                || bytes[at - 1] == b'_'
                || bytes[at - 1] == b':');
        let tail: String = code[at..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':')
            .collect();
        if boundary {
            paths.push(tail.clone());
        }
        i = at + tail.len().max(1);
    }
    paths
        .into_iter()
        .filter_map(|p| {
            let segs: Vec<&str> = p.split("::").filter(|s| !s.is_empty()).collect();
            let (first, tail) = segs.split_first()?;
            let mut base: Vec<String> = match *first {
                "crate" => Vec::new(),
                "self" if is_dir_module => here.to_vec(),
                // A file module's `self::x` names its own items or an
                // inline module: no other file.
                "self" => return None,
                "super" => {
                    let mut b = here.to_vec();
                    b.pop()?;
                    b
                }
                _ => return None, // another crate, or std
            };
            let mut tail = tail.iter().peekable();
            while tail.peek() == Some(&&"super") {
                base.pop()?;
                tail.next();
            }
            base.extend(tail.map(|s| s.to_string()));
            Some(base)
        })
        .collect()
}

/// Import edges between the files of one crate.
fn import_graph(src: &Path) -> BTreeMap<PathBuf, BTreeSet<PathBuf>> {
    let modules = crate_modules(src);
    let mut graph: BTreeMap<PathBuf, BTreeSet<PathBuf>> = BTreeMap::new();
    for (path, file) in &modules {
        let Ok(text) = fs::read_to_string(file) else {
            continue;
        };
        let is_dir_module = path.is_empty()
            || file
                .file_name()
                .is_some_and(|n| n == "mod.rs" || n == "lib.rs" || n == "main.rs");
        let edges = graph.entry(file.clone()).or_default();
        for mut target in references(path, is_dir_module, &code_of(&text)) {
            // The longest prefix that is a file of its own.
            while !target.is_empty() && !modules.contains_key(&target) {
                target.pop();
            }
            if let Some(to) = modules.get(&target) {
                if to != file {
                    edges.insert(to.clone());
                }
            }
        }
    }
    graph
}

/// Strongly connected components with more than one file (Tarjan).
fn cycles(graph: &BTreeMap<PathBuf, BTreeSet<PathBuf>>) -> Vec<Vec<PathBuf>> {
    struct State<'a> {
        graph: &'a BTreeMap<PathBuf, BTreeSet<PathBuf>>,
        index: BTreeMap<&'a PathBuf, usize>,
        low: BTreeMap<&'a PathBuf, usize>,
        on_stack: BTreeSet<&'a PathBuf>,
        stack: Vec<&'a PathBuf>,
        next: usize,
        out: Vec<Vec<PathBuf>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a PathBuf) {
        s.index.insert(v, s.next);
        s.low.insert(v, s.next);
        s.next += 1;
        s.stack.push(v);
        s.on_stack.insert(v);
        if let Some(edges) = s.graph.get(v) {
            for w in edges {
                let Some((w, _)) = s.graph.get_key_value(w) else {
                    continue;
                };
                if !s.index.contains_key(w) {
                    visit(s, w);
                    let lw = s.low[w];
                    let lv = s.low.get_mut(v).expect("visited");
                    *lv = (*lv).min(lw);
                } else if s.on_stack.contains(w) {
                    let iw = s.index[w];
                    let lv = s.low.get_mut(v).expect("visited");
                    *lv = (*lv).min(iw);
                }
            }
        }
        if s.low[v] == s.index[v] {
            let mut scc = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                scc.push(w.clone());
                if w == v {
                    break;
                }
            }
            if scc.len() > 1 {
                scc.sort();
                s.out.push(scc);
            }
        }
    }
    let mut s = State {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        on_stack: BTreeSet::new(),
        stack: Vec::new(),
        next: 0,
        out: Vec::new(),
    };
    for v in graph.keys() {
        if !s.index.contains_key(v) {
            visit(&mut s, v);
        }
    }
    s.out
}

/// The workspace's crates' `src/` folders.
fn crate_sources() -> Vec<PathBuf> {
    let root = workspace_root();
    let mut out = Vec::new();
    for e in fs::read_dir(&root)
        .expect("workspace root readable")
        .flatten()
    {
        let src = e.path().join("src");
        if e.path().join("Cargo.toml").is_file() && src.is_dir() {
            out.push(src);
        }
    }
    assert!(
        out.len() >= 5,
        "found only {out:?}: is the workspace layout different?"
    );
    out.sort();
    out
}

fn all_source_files(src: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in fs::read_dir(&dir).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs")
                && !is_test_file(p.strip_prefix(src).expect("under src"))
            {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

fn rel(p: &Path) -> String {
    p.strip_prefix(workspace_root())
        .unwrap_or(p)
        .display()
        .to_string()
}

#[test]
fn no_source_file_outside_tests_is_over_800_lines() {
    let mut long = Vec::new();
    for src in crate_sources() {
        for f in all_source_files(&src) {
            let lines = fs::read_to_string(&f)
                .map(|t| t.lines().count())
                .unwrap_or(0);
            if lines > MAX_LINES && !LONG_FILES.contains(&rel(&f).as_str()) {
                long.push(format!("{} ({lines} lines)", rel(&f)));
            }
        }
    }
    assert!(long.is_empty(), "split these along their jobs: {long:#?}");
}

#[test]
fn no_two_source_files_import_each_other_directly_or_around_a_loop() {
    let mut found = Vec::new();
    for src in crate_sources() {
        for scc in cycles(&import_graph(&src)) {
            found.push(scc.iter().map(|p| rel(p)).collect::<Vec<_>>().join(" ↔ "));
        }
    }
    assert!(found.is_empty(), "import cycles: {found:#?}");
}

#[test]
fn every_source_file_opens_with_a_doc_comment_saying_what_it_is_for() {
    let mut bare = Vec::new();
    for src in crate_sources() {
        for f in all_source_files(&src) {
            let text = fs::read_to_string(&f).unwrap_or_default();
            let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
            if !first.starts_with("//!") {
                bare.push(rel(&f));
            }
        }
    }
    assert!(bare.is_empty(), "no `//!` module doc: {bare:#?}");
}

/// Issue 14: `tls/` is a foundation the dataplane, the appliance, the
/// segment and HTTP will build on, so it depends on no Baton crate (they
/// depend on it), in its manifest or in its code.
#[test]
fn the_tls_crate_depends_on_no_other_baton_crate() {
    let root = workspace_root().join("tls");
    let manifest = fs::read_to_string(root.join("Cargo.toml")).expect("tls/Cargo.toml");
    let deps: Vec<&str> = manifest
        .lines()
        .filter(|l| l.trim_start().starts_with("baton"))
        .collect();
    assert!(
        deps.is_empty(),
        "tls/Cargo.toml names Baton crates: {deps:?}"
    );
    let mut uses = Vec::new();
    for f in all_source_files(&root.join("src")) {
        let text = fs::read_to_string(&f).unwrap_or_default();
        if text.contains("baton_") {
            uses.push(rel(&f));
        }
    }
    assert!(uses.is_empty(), "tls sources use Baton crates: {uses:?}");
}

/// Issue 17: `ftp/` is a sans-IO protocol crate like `tls/`: the appliance
/// uses it, it knows no Baton crate (manifest or code).
#[test]
fn the_ftp_crate_depends_on_no_other_baton_crate() {
    let root = workspace_root().join("ftp");
    let manifest = fs::read_to_string(root.join("Cargo.toml")).expect("ftp/Cargo.toml");
    let deps: Vec<&str> = manifest
        .lines()
        .filter(|l| l.trim_start().starts_with("baton"))
        .collect();
    assert!(
        deps.is_empty(),
        "ftp/Cargo.toml names Baton crates: {deps:?}"
    );
    let mut uses = Vec::new();
    for f in all_source_files(&root.join("src")) {
        let text = fs::read_to_string(&f).unwrap_or_default();
        if text.contains("baton_") {
            uses.push(rel(&f));
        }
    }
    assert!(uses.is_empty(), "ftp sources use Baton crates: {uses:?}");
}

/// The checker itself, on a tree made to break each rule: a checker that
/// cannot find a cycle would pass any tree.
#[test]
fn the_checker_finds_a_planted_cycle_and_ignores_reexports_and_unit_tests() {
    let dir = std::env::temp_dir().join(format!("baton-arch-{}", std::process::id()));
    let src = dir.join("src");
    fs::create_dir_all(src.join("net")).expect("temp dir");
    let write = |p: &str, s: &str| fs::write(src.join(p), s).expect("write");
    write(
        "lib.rs",
        "//! root\npub mod a;\npub mod b;\npub mod c;\npub mod net;\npub use a::A;\n",
    );
    write(
        "a.rs",
        "//! a\nuse crate::{b::B, net::{self}};\npub struct A;\n",
    );
    write(
        "b.rs",
        "//! b\npub struct B;\nfn f() { let _ = crate::c::C; }\n",
    );
    write(
        "c.rs",
        "//! c\nuse super::a::A;\npub struct C;\n#[cfg(test)]\nmod tests {\n use crate::b::B;\n}\n",
    );
    write("net/mod.rs", "//! net\npub mod ip;\npub use ip::Ip;\n");
    write(
        "net/ip.rs",
        "//! ip\nuse super::super::c::C;\npub struct Ip;\n",
    );
    let graph = import_graph(&src);
    let found = cycles(&graph);
    fs::remove_dir_all(&dir).ok();
    // a → b → c → a is a loop; net's re-export of ip and c's unit test
    // (c → b) are not edges, so net/ and ip.rs stay out of it.
    assert_eq!(found.len(), 1, "{found:?} in {graph:#?}");
    let names: Vec<String> = found[0]
        .iter()
        .map(|p| p.file_name().expect("file").to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["a.rs", "b.rs", "c.rs"]);
}
