//! Tidy tests: what ARCHITECTURE.md says about the shape of `src/`, checked
//! on the source text, the way rust-analyzer's tidy tests keep its
//! invariants. Test code (from a file's `#[cfg(test)]` on) is left out of
//! every check, and so are comments and the insides of string literals.
//!
//! - no cycle of imports between files;
//! - the foundation modules import nothing above them;
//! - each outside crate with a say over a boundary (object_store, cryptoki,
//!   the AWS SDK, hyper, serde) is named only where ARCHITECTURE.md says;
//! - nothing outside `pki` names PKCS#11;
//! - every document a comment cites is in the repository, with the item or
//!   section cited;
//! - files and functions stay within the size guides.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The guides of ARCHITECTURE.md ("Shape of the code").
const MAX_FILE_LINES: usize = 800;
const MAX_FN_LINES: usize = 150;

/// Where each outside crate may be named, by module path prefix.
const CONFINED: &[(&str, &[&str])] = &[
    ("object_store", &["publish"]),
    ("cryptoki", &["pki::pkcs11"]),
    // ML-DSA keys and signatures; rustls names it for its provider.
    ("aws_lc_rs", &["pki", "http::tls"]),
    ("aws_config", &["aws"]),
    ("aws_sdk_sqs", AWS),
    ("aws_sdk_acmpca", AWS),
    ("aws_sdk_cloudfront", AWS),
    ("aws_smithy_types", AWS),
    ("aws_smithy_runtime_api", AWS),
    ("aws_types", AWS),
    (
        "hyper",
        &["http", "tools::client", "tools::query", "tools::sync"],
    ),
    (
        "hyper_util",
        &["http", "tools::client", "tools::query", "tools::sync"],
    ),
    (
        "serde",
        &[
            "config::raw",
            "admin",
            "tools::client",
            "tools::commands",
            "crl",
            "sources::aws_events::event",
            "sources::upstream::plan",
        ],
    ),
    (
        "serde_json",
        &[
            "admin",
            "tools::client",
            "tools::bulk",
            "tools::commands",
            "crl",
            "sources::aws_events::event",
            "sources::upstream::plan",
        ],
    ),
];

/// The modules that call AWS APIs through the SDK's clients.
const AWS: &[&str] = &["aws", "cdn", "sources::aws_events"];

/// The foundation, lowest first: each may import only the ones before it.
const FOUNDATION: &[&str] = &[
    "fault", "shutdown", "asn1", "clock", "state", "pki", "metrics",
];

#[test]
fn no_import_cycle_between_files() {
    let crate_ = Crate::read();
    let cycles = crate_.file_cycles();
    assert!(
        cycles.is_empty(),
        "files that import each other, in a circle:\n{}",
        cycles
            .iter()
            .map(|c| format!("  {}", c.join(" -> ")))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn the_foundation_imports_nothing_above_it() {
    let crate_ = Crate::read();
    let mut wrong = Vec::new();
    for (from, targets) in crate_.imports() {
        let top = top_module(&from);
        let Some(rank) = FOUNDATION.iter().position(|f| *f == top) else {
            continue;
        };
        for to in targets {
            let to_top = top_module(&to);
            if to_top == top {
                continue;
            }
            if !FOUNDATION[..rank].contains(&to_top) {
                wrong.push(format!("{from} imports {to}"));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn outside_crates_are_named_only_where_architecture_says() {
    let crate_ = Crate::read();
    let mut wrong = Vec::new();
    for file in &crate_.files {
        for (name, allowed) in CONFINED {
            if !names_crate(&file.code, name) {
                continue;
            }
            if !allowed.iter().any(|a| within(&file.module, a)) {
                wrong.push(format!(
                    "{} ({}) names {name}",
                    file.module,
                    file.path.display()
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn nothing_outside_pki_names_pkcs11() {
    let crate_ = Crate::read();
    let wrong: Vec<String> = crate_
        .files
        .iter()
        .filter(|f| !within(&f.module, "pki"))
        .filter(|f| f.code.contains("pkcs11::") || names_crate(&f.code, "cryptoki"))
        .map(|f| f.path.display().to_string())
        .collect();
    assert!(wrong.is_empty(), "name PKCS#11 outside pki: {wrong:?}");
}

#[test]
fn every_cited_document_item_and_section_is_in_the_repository() {
    let root = root();
    let conformance = read(&root.join("docs/conformance.md"));
    let items: BTreeSet<u32> = conformance
        .lines()
        .filter_map(|l| l.split_once(". ").and_then(|(n, _)| n.parse().ok()))
        .collect();
    let design = read(&root.join("docs/design.md"));
    let headings: Vec<String> = design
        .lines()
        .filter_map(|l| l.strip_prefix("## "))
        .map(str::to_lowercase)
        .collect();
    let mut wrong = Vec::new();
    for path in rust_files(&root, &["src", "tests", "benches", "loadtest", "fuzz"]) {
        let text = read(&path);
        let shown = path
            .strip_prefix(&root)
            .unwrap_or(&path)
            .display()
            .to_string();
        for (n, line) in text.lines().enumerate() {
            let at = format!("{shown}:{}", n + 1);
            // Documents this repository never held (the shared notes the
            // early code cited): spelled out in pieces so this file passes.
            for gone in [["DESIGN", ".md"], ["CONFORMANCE", ".md"], ["STYLE", ".md"]] {
                if line.contains(&gone.concat()) {
                    wrong.push(format!(
                        "{at}: cites {}, not in the repository",
                        gone.concat()
                    ));
                }
            }
            for (doc, rest) in citations(line) {
                if !root.join("docs").join(doc).is_file() {
                    wrong.push(format!("{at}: cites docs/{doc}, not in the repository"));
                } else if doc == "conformance.md" {
                    for item in cited_items(rest) {
                        if !items.contains(&item) {
                            wrong.push(format!("{at}: docs/conformance.md has no item {item}"));
                        }
                    }
                } else if doc == "design.md" {
                    if let Some(section) = rest.strip_prefix(": ") {
                        let section: String = section
                            .chars()
                            .take_while(|c| !".;)\"`".contains(*c))
                            .collect::<String>()
                            .to_lowercase();
                        if !headings.iter().any(|h| h.starts_with(section.trim())) {
                            wrong.push(format!("{at}: docs/design.md has no section {section:?}"));
                        }
                    }
                }
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn files_and_functions_stay_within_the_size_guides() {
    let crate_ = Crate::read();
    let mut wrong = Vec::new();
    for file in &crate_.files {
        let lines = file.code.lines().count();
        if lines > MAX_FILE_LINES {
            wrong.push(format!(
                "{}: {lines} lines of code (guide: {MAX_FILE_LINES})",
                file.path.display()
            ));
        }
        for (name, line, length) in functions(&file.code) {
            if length > MAX_FN_LINES {
                wrong.push(format!(
                    "{}:{line}: fn {name} is {length} lines (guide: {MAX_FN_LINES})",
                    file.path.display()
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// The checks on themselves: a cycle, a forbidden crate and an oversized
/// function planted in text are found, so a check that passes means
/// something.
#[test]
fn the_checks_find_what_they_look_for() {
    let file = |module: &str, text: &str| SourceFile {
        path: PathBuf::from(format!("{module}.rs")),
        module: module.to_string(),
        code: code_only(text),
    };
    let planted = Crate {
        files: vec![
            file("a", "use crate::b::thing;\n"),
            file("b", "pub fn thing() { crate::c::other() }\n"),
            file("c", "pub fn other() { let _ = super::a::X; }\n"),
            file("d", "use crate::a;\n"),
        ],
    };
    let cycles = planted.file_cycles();
    assert_eq!(cycles.len(), 1, "{cycles:?}");
    assert_eq!(cycles[0].len(), 3, "{cycles:?}");

    let text = "// object_store:: in a comment\nlet s = \"object_store::x\";\nfn f() {}\n";
    assert!(!names_crate(&code_only(text), "object_store"));
    assert!(names_crate(
        &code_only("use object_store::path::Path;"),
        "object_store"
    ));
    assert!(names_crate(
        &code_only("x: object_store::Error,"),
        "object_store"
    ));
    assert!(!names_crate(
        &code_only("use my_object_store::x;"),
        "object_store"
    ));
    assert!(names_crate(
        &code_only("#[derive(serde::Deserialize)]"),
        "serde"
    ));

    let long = format!("fn long() {{\n{}}}\n", "    step();\n".repeat(200));
    let found = functions(&code_only(&long));
    assert_eq!(found, vec![("long".to_string(), 1, 202)]);
    let braces_in_strings = "fn f() {\n    let s = \"{{{\";\n    let c = '{';\n}\nfn g() {}\n";
    assert_eq!(
        functions(&code_only(braces_in_strings)),
        vec![("f".to_string(), 1, 4), ("g".to_string(), 5, 1)]
    );

    let cited: Vec<_> = citations("see (docs/conformance.md 19-21, 3) and docs/design.md: Windows")
        .into_iter()
        .map(|(d, _)| d)
        .collect();
    assert_eq!(cited, vec!["conformance.md", "design.md"]);
    assert_eq!(cited_items(" 19-21, 3) and"), vec![19, 20, 21, 3]);
}

// ---------------------------------------------------------------------
// Reading the crate.

struct SourceFile {
    path: PathBuf,
    /// `ocsp::answers::store` for `src/ocsp/answers/store.rs`; a `mod.rs`
    /// is its directory's module.
    module: String,
    /// The file up to its tests, with comments and literals blanked.
    code: String,
}

struct Crate {
    files: Vec<SourceFile>,
}

impl Crate {
    fn read() -> Self {
        let root = root();
        let src = root.join("src");
        let mut files = Vec::new();
        for path in rust_files(&root, &["src"]) {
            let rel = path.strip_prefix(&src).expect("under src");
            let mut parts: Vec<String> = rel
                .with_extension("")
                .iter()
                .map(|p| p.to_string_lossy().into_owned())
                .collect();
            if parts.last().is_some_and(|p| p == "mod") {
                parts.pop();
            }
            if parts == ["lib"] || parts == ["main"] {
                continue;
            }
            let text = read(&path);
            let before_tests = match text.find("\n#[cfg(test)]") {
                Some(i) => &text[..i + 1],
                None => &text[..],
            };
            files.push(SourceFile {
                path: path.strip_prefix(&root).unwrap_or(&path).to_path_buf(),
                module: parts.join("::"),
                code: code_only(before_tests),
            });
        }
        assert!(files.len() > 50, "src/ not found where expected");
        Self { files }
    }

    fn modules(&self) -> BTreeSet<&str> {
        self.files.iter().map(|f| f.module.as_str()).collect()
    }

    /// Per module, what each re-exports (`pub use x::Y;`): Y -> x::Y, so
    /// that a path through a module that only passes an item on resolves
    /// to the file that defines it.
    fn reexports(&self) -> BTreeMap<String, BTreeMap<String, String>> {
        let mut out: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        for f in &self.files {
            for (public, path) in use_statements(&f.code) {
                if !public {
                    continue;
                }
                for (name, target) in expand_use(&path) {
                    if name == "*" {
                        continue;
                    }
                    let absolute = absolute(&f.module, &target, &self.modules());
                    out.entry(f.module.clone())
                        .or_default()
                        .insert(name, absolute.join("::"));
                }
            }
        }
        out
    }

    /// Which files each file imports from: its `use`s (re-exports aside,
    /// which only pass items on) and the paths its code spells out, each
    /// followed through re-exports to the defining file.
    fn imports(&self) -> BTreeMap<String, BTreeSet<String>> {
        let modules = self.modules();
        let reexports = self.reexports();
        let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for f in &self.files {
            let mut paths: Vec<Vec<String>> = Vec::new();
            for (public, path) in use_statements(&f.code) {
                if public {
                    continue;
                }
                for (_, target) in expand_use(&path) {
                    paths.push(absolute(&f.module, &target, &modules));
                }
            }
            for path in spelled_paths(&without_uses(&f.code), &f.module, &modules) {
                paths.push(path);
            }
            let targets = out.entry(f.module.clone()).or_default();
            for path in paths {
                if let Some(to) = resolve(&path, &modules, &reexports, 0) {
                    if to != f.module {
                        targets.insert(to);
                    }
                }
            }
        }
        out
    }

    /// Every strongly connected group of more than one file (Tarjan).
    fn file_cycles(&self) -> Vec<Vec<String>> {
        let graph = self.imports();
        let nodes: Vec<&String> = graph.keys().collect();
        let mut t = Tarjan::default();
        for n in &nodes {
            if !t.index.contains_key(*n) {
                t.visit(n, &graph);
            }
        }
        t.groups
    }
}

#[derive(Default)]
struct Tarjan {
    next: usize,
    index: BTreeMap<String, usize>,
    low: BTreeMap<String, usize>,
    stack: Vec<String>,
    on_stack: BTreeSet<String>,
    groups: Vec<Vec<String>>,
}

impl Tarjan {
    fn visit(&mut self, v: &str, graph: &BTreeMap<String, BTreeSet<String>>) {
        self.index.insert(v.to_string(), self.next);
        self.low.insert(v.to_string(), self.next);
        self.next += 1;
        self.stack.push(v.to_string());
        self.on_stack.insert(v.to_string());
        for w in graph.get(v).into_iter().flatten() {
            if !self.index.contains_key(w) {
                self.visit(w, graph);
                let lw = self.low[w];
                let lv = self.low.get_mut(v).expect("visited");
                *lv = (*lv).min(lw);
            } else if self.on_stack.contains(w) {
                let iw = self.index[w];
                let lv = self.low.get_mut(v).expect("visited");
                *lv = (*lv).min(iw);
            }
        }
        if self.low[v] == self.index[v] {
            let mut group = Vec::new();
            while let Some(w) = self.stack.pop() {
                self.on_stack.remove(&w);
                let done = w == v;
                group.push(w);
                if done {
                    break;
                }
            }
            if group.len() > 1 {
                group.sort();
                self.groups.push(group);
            }
        }
    }
}

/// `path` made absolute from `module`: `crate::`, `super::` and `self::`
/// resolved, and a bare first segment that names a child module (or a
/// top-level module) taken as that module.
fn absolute(module: &str, path: &[String], modules: &BTreeSet<&str>) -> Vec<String> {
    let mut here: Vec<String> = if module.is_empty() {
        Vec::new()
    } else {
        module.split("::").map(str::to_string).collect()
    };
    let mut rest = path;
    match rest.first().map(String::as_str) {
        Some("crate") => {
            here.clear();
            rest = &rest[1..];
        }
        Some("self") => rest = &rest[1..],
        Some("super") => {
            while rest.first().is_some_and(|s| s == "super") {
                here.pop();
                rest = &rest[1..];
            }
        }
        Some(first) => {
            let child = if here.is_empty() {
                first.to_string()
            } else {
                format!("{}::{first}", here.join("::"))
            };
            if !modules.contains(child.as_str()) {
                // An outside crate or a local name: not a file of ours.
                return Vec::new();
            }
        }
        None => {}
    }
    here.extend(rest.iter().cloned());
    here
}

/// The file a path lands in: its longest prefix that is a module, followed
/// through that module's re-exports when the next segment is one.
fn resolve(
    path: &[String],
    modules: &BTreeSet<&str>,
    reexports: &BTreeMap<String, BTreeMap<String, String>>,
    depth: usize,
) -> Option<String> {
    if path.is_empty() || depth > 8 {
        return None;
    }
    for n in (1..=path.len()).rev() {
        let module = path[..n].join("::");
        if !modules.contains(module.as_str()) {
            continue;
        }
        if let Some(next) = path.get(n) {
            if let Some(target) = reexports.get(&module).and_then(|r| r.get(next)) {
                let mut followed: Vec<String> = target.split("::").map(str::to_string).collect();
                followed.extend(path[n + 1..].iter().cloned());
                if let Some(found) = resolve(&followed, modules, reexports, depth + 1) {
                    return Some(found);
                }
            }
        }
        return Some(module);
    }
    None
}

/// Every `use` item: whether it is a re-export (`pub use`, `pub(crate)
/// use`, ...), its tree as written, and where it ends in `code`.
fn use_statements(code: &str) -> Vec<(bool, String)> {
    use_items(code)
        .into_iter()
        .map(|(public, tree, _)| (public, tree))
        .collect()
}

/// `code` with its `use` items blanked, for the paths spelled elsewhere.
fn without_uses(code: &str) -> String {
    let mut out = code.to_string();
    for (_, _, range) in use_items(code).into_iter().rev() {
        let blank: String = code[range.clone()]
            .chars()
            .map(|c| if c == '\n' { '\n' } else { ' ' })
            .collect();
        out.replace_range(range, &blank);
    }
    out
}

fn use_items(code: &str) -> Vec<(bool, String, std::ops::Range<usize>)> {
    let mut out = Vec::new();
    let bytes = code.as_bytes();
    let mut i = 0;
    while let Some(found) = code[i..].find("use ") {
        let at = i + found;
        i = at + 4;
        if at > 0 && (bytes[at - 1].is_ascii_alphanumeric() || bytes[at - 1] == b'_') {
            continue;
        }
        let line_start = code[..at].rfind('\n').map_or(0, |n| n + 1);
        let before = code[line_start..at].trim();
        let public = before.starts_with("pub");
        if !(before.is_empty() || public) {
            continue;
        }
        let Some(end) = code[at..].find(';') else {
            break;
        };
        out.push((
            public,
            code[at + 4..at + end].trim().to_string(),
            at..at + end,
        ));
        i = at + end;
    }
    out
}

/// A use tree expanded: `a::{b, c::{d as e}}` -> (b, a::b), (e, a::c::d).
fn expand_use(tree: &str) -> Vec<(String, Vec<String>)> {
    fn walk(prefix: &[String], tree: &str, out: &mut Vec<(String, Vec<String>)>) {
        let tree: String = tree.split_whitespace().collect::<Vec<_>>().join(" ");
        let tree = tree.trim();
        if let Some(open) = tree.find('{') {
            let head: Vec<String> = tree[..open]
                .split("::")
                .filter(|s| !s.trim().is_empty())
                .map(|s| s.trim().to_string())
                .collect();
            let mut prefix = prefix.to_vec();
            prefix.extend(head);
            let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
            let mut depth = 0;
            let mut start = 0;
            for (i, c) in inner.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        walk(&prefix, &inner[start..i], out);
                        start = i + 1;
                    }
                    _ => {}
                }
            }
            walk(&prefix, &inner[start..], out);
            return;
        }
        if tree.is_empty() {
            return;
        }
        let (path, alias) = match tree.split_once(" as ") {
            Some((p, a)) => (p.trim(), Some(a.trim())),
            None => (tree, None),
        };
        let mut full = prefix.to_vec();
        full.extend(path.split("::").map(|s| s.trim().to_string()));
        if full.last().is_some_and(|s| s == "self") {
            full.pop();
        }
        let name = alias
            .map(str::to_string)
            .or_else(|| full.last().cloned())
            .unwrap_or_default();
        out.push((name, full));
    }
    let mut out = Vec::new();
    walk(&[], tree, &mut out);
    out
}

/// Paths spelled out in code outside `use`: `crate::a::b`, `super::x`,
/// `self::x`, and `child::x` for a child module of `module`.
fn spelled_paths(code: &str, module: &str, modules: &BTreeSet<&str>) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let bytes = code.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        let starts = (c.is_ascii_alphabetic() || c == b'_')
            && (i == 0
                || !(bytes[i - 1].is_ascii_alphanumeric()
                    || bytes[i - 1] == b'_'
                    || bytes[i - 1] == b':'));
        if !starts {
            i += 1;
            continue;
        }
        let mut j = i;
        while j < bytes.len()
            && (bytes[j].is_ascii_alphanumeric() || bytes[j] == b'_' || bytes[j] == b':')
        {
            j += 1;
        }
        let word = &code[i..j];
        i = j;
        if !word.contains("::") {
            continue;
        }
        let segments: Vec<String> = word
            .split("::")
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
        let first = segments[0].as_str();
        let ours = matches!(first, "crate" | "super" | "self") || {
            let child = if module.is_empty() {
                first.to_string()
            } else {
                format!("{module}::{first}")
            };
            modules.contains(child.as_str())
        };
        if ours {
            let path = absolute(module, &segments, modules);
            if !path.is_empty() {
                out.push(path);
            }
        }
    }
    out
}

fn top_module(module: &str) -> &str {
    module.split("::").next().unwrap_or(module)
}

fn within(module: &str, prefix: &str) -> bool {
    module == prefix || module.starts_with(&format!("{prefix}::"))
}

/// Whether code names the crate `name`: `name::...` or `use name` as a
/// whole word.
fn names_crate(code: &str, name: &str) -> bool {
    let bytes = code.as_bytes();
    let mut from = 0;
    while let Some(found) = code[from..].find(name) {
        let at = from + found;
        from = at + name.len();
        let before_ok = at == 0 || {
            let b = bytes[at - 1];
            !(b.is_ascii_alphanumeric() || b == b'_' || b == b':')
        };
        let after = &code[at + name.len()..];
        let after_ok = after.starts_with("::")
            || (code[..at].trim_end().ends_with("use")
                && !after.starts_with(|c: char| c.is_alphanumeric() || c == '_'));
        if before_ok && after_ok {
            return true;
        }
    }
    false
}

/// Every `fn` with a body: its name, first line (1-based) and length in
/// lines, braces counted on code only.
fn functions(code: &str) -> Vec<(String, usize, usize)> {
    let mut out = Vec::new();
    let lines: Vec<&str> = code.lines().collect();
    for (n, line) in lines.iter().enumerate() {
        let Some(pos) = find_fn_keyword(line) else {
            continue;
        };
        let name: String = line[pos + 3..]
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        if name.is_empty() {
            continue;
        }
        // The body starts at the first `{` before any `;` (a declaration
        // without a body has none).
        let mut depth = 0usize;
        let mut opened = false;
        let mut end = None;
        'scan: for (k, l) in lines.iter().enumerate().skip(n) {
            let text = if k == n { &l[pos..] } else { l };
            for c in text.chars() {
                match c {
                    ';' if !opened => break 'scan,
                    '{' => {
                        opened = true;
                        depth += 1;
                    }
                    '}' if opened => {
                        depth -= 1;
                        if depth == 0 {
                            end = Some(k);
                            break 'scan;
                        }
                    }
                    _ => {}
                }
            }
        }
        if let Some(end) = end {
            out.push((name, n + 1, end - n + 1));
        }
    }
    out
}

fn find_fn_keyword(line: &str) -> Option<usize> {
    let mut from = 0;
    while let Some(found) = line[from..].find("fn ") {
        let at = from + found;
        from = at + 3;
        let before = line[..at].trim_end();
        let word_start = at == 0 || line.as_bytes()[at - 1] == b' ';
        let lead_ok = before.is_empty()
            || before.split_whitespace().all(|w| {
                matches!(
                    w,
                    "pub"
                        | "pub(crate)"
                        | "pub(super)"
                        | "async"
                        | "const"
                        | "unsafe"
                        | "extern"
                        | "\"C\""
                        | "\"\""
                )
            });
        if word_start && lead_ok {
            return Some(at);
        }
    }
    None
}

/// The code of a Rust file with comments removed and the insides of string
/// and character literals blanked (quotes kept), lines preserved.
fn code_only(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let blank = |c: char| if c == '\n' { '\n' } else { ' ' };
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
            continue;
        }
        if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    out.push(blank(chars[i]));
                    i += 1;
                }
            }
            continue;
        }
        // Raw strings: r"..", r#".."#, br#".."#.
        let raw_at = if c == 'r' {
            Some(i + 1)
        } else if c == 'b' && next == Some('r') {
            Some(i + 2)
        } else {
            None
        };
        let prev_ident = i > 0 && (chars[i - 1].is_alphanumeric() || chars[i - 1] == '_');
        if let (Some(mut k), false) = (raw_at, prev_ident) {
            let mut hashes = 0;
            while chars.get(k) == Some(&'#') {
                hashes += 1;
                k += 1;
            }
            if chars.get(k) == Some(&'"') {
                out.extend(&chars[i..=k]);
                k += 1;
                loop {
                    if k >= chars.len() {
                        break;
                    }
                    if chars[k] == '"' && (0..hashes).all(|h| chars.get(k + 1 + h) == Some(&'#')) {
                        out.push('"');
                        for _ in 0..hashes {
                            out.push('#');
                        }
                        k += 1 + hashes;
                        break;
                    }
                    out.push(blank(chars[k]));
                    k += 1;
                }
                i = k;
                continue;
            }
        }
        if c == '"' {
            out.push('"');
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' {
                    out.push(' ');
                    i += 1;
                    if i < chars.len() {
                        out.push(blank(chars[i]));
                    }
                    i += 1;
                    continue;
                }
                out.push(blank(chars[i]));
                i += 1;
            }
            out.push('"');
            i += 1;
            continue;
        }
        if c == '\'' {
            // A character literal ('x', '\n', '\u{..}'), else a lifetime.
            if next == Some('\\') {
                let mut k = i + 2;
                while k < chars.len() && chars[k] != '\'' {
                    k += 1;
                }
                out.push_str("' '");
                i = k + 1;
                continue;
            }
            if chars.get(i + 2) == Some(&'\'') {
                out.push_str("' '");
                i += 3;
                continue;
            }
        }
        out.push(c);
        i += 1;
    }
    out
}

/// `docs/<file>` citations in a line, each with the text after it.
fn citations(line: &str) -> Vec<(&str, &str)> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(found) = line[from..].find("docs/") {
        let at = from + found + "docs/".len();
        let name_len = line[at..]
            .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '-' || c == '.'))
            .unwrap_or(line.len() - at);
        let name = line[at..at + name_len].trim_end_matches('.');
        from = at + name.len();
        if name.ends_with(".md") {
            out.push((name, &line[from..]));
        }
    }
    out
}

/// The item numbers after a conformance citation: ` 19-21, 3)` -> 19, 20,
/// 21, 3.
fn cited_items(rest: &str) -> Vec<u32> {
    let list: String = rest
        .trim_start()
        .chars()
        .take_while(|c| c.is_ascii_digit() || "-, ".contains(*c))
        .collect();
    let mut out = Vec::new();
    for part in list.split(',') {
        let part = part.trim();
        match part.split_once('-') {
            Some((a, b)) => {
                if let (Ok(a), Ok(b)) = (a.trim().parse::<u32>(), b.trim().parse::<u32>()) {
                    out.extend(a..=b);
                }
            }
            None => out.extend(part.parse::<u32>().ok()),
        }
    }
    out
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every `.rs` file under the given directories of `root`, sorted, build
/// output and fuzz corpora aside.
fn rust_files(root: &Path, dirs: &[&str]) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            let name = e.file_name();
            let name = name.to_string_lossy();
            if p.is_dir() {
                if !matches!(
                    name.as_ref(),
                    "target" | "corpus" | "artifacts" | "coverage"
                ) {
                    walk(&p, out);
                }
            } else if name.ends_with(".rs") {
                out.push(p);
            }
        }
    }
    let mut out = Vec::new();
    for d in dirs {
        walk(&root.join(d), &mut out);
    }
    out.sort();
    out
}
