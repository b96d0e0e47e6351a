//! The module-graph check shared by the crates' tests (dataplane/tests/module_graph.rs,
//! cli/tests/module_graph.rs): see the former's docs.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// Subtrees whose inner graph is not checked (their edges to the rest still are).
const UNCHECKED_INSIDE: &[&str] = &[];

/// (module, what it re-exports) pairs not counted as edges: a re-export kept at an old path
/// for a module that still imports from there, while it moves. None now.
const REEXPORTS_AWAITING_IMPORTERS: &[(&str, &str)] = &[];

/// A module path from the crate root, e.g. `["pipeline", "gro"]`.
pub type ModPath = Vec<String>;

pub struct Module {
    pub path: ModPath,
    /// The source with comments and literals blanked out.
    pub code: String,
}

pub fn module(path: &[&str], code: &str) -> Module {
    Module { path: path.iter().map(|s| s.to_string()).collect(), code: blank_comments_and_literals(code) }
}

pub fn read_modules(src: &Path) -> Vec<Module> {
    let mut files = Vec::new();
    collect_rs(src, &mut files);
    files
        .iter()
        .map(|file| {
            let text = fs::read_to_string(file).unwrap();
            Module { path: mod_path(src, file), code: blank_comments_and_literals(&text) }
        })
        .collect()
}

fn collect_rs(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            collect_rs(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `lib.rs` (and a binary's `main.rs`) → `[]`, `a.rs` and `a/mod.rs` → `[a]`, `a/b.rs` →
/// `[a, b]`.
fn mod_path(src: &Path, file: &Path) -> ModPath {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let mut path: ModPath = rel.iter().map(|c| c.to_string_lossy().into_owned()).collect();
    if matches!(path.last().map(String::as_str), Some("mod" | "lib")) || path == ["main"] {
        path.pop();
    }
    path
}

/// Every cycle, one per strongly connected group of siblings, as `parent: a → b → a`.
pub fn cycles(modules: &[Module]) -> Vec<String> {
    let defs = Definitions::of(modules);
    let mut edges: BTreeMap<ModPath, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for m in modules {
        for target in paths_named(&m.code).iter().filter_map(|(inline, p)| defs.resolve(&m.path, *inline, p))
        {
            let common = m.path.iter().zip(&target).take_while(|(a, b)| a == b).count();
            if common == m.path.len() || common == target.len() {
                continue; // its own child, or its parent's own item
            }
            if REEXPORTS_AWAITING_IMPORTERS.contains(&(m.path.join("/").as_str(), target.join("/").as_str()))
            {
                continue;
            }
            let parent = m.path[..common].to_vec();
            let checked = !matches!(parent.first(), Some(top) if UNCHECKED_INSIDE.contains(&top.as_str()));
            if checked {
                let (from, to) = (m.path[common].clone(), target[common].clone());
                edges.entry(parent).or_default().entry(from).or_default().insert(to);
            }
        }
    }
    let mut found = Vec::new();
    for (parent, graph) in &edges {
        let name = if parent.is_empty() { "(crate)".to_string() } else { parent.join("/") };
        for cycle in cycles_in(graph) {
            found.push(format!("{name}: {}", cycle.join(" → ")));
        }
    }
    found
}

/// One cycle through each group of nodes that reach one another.
fn cycles_in(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    let reaches = |from: &str, to: &str| path_between(graph, from, to).is_some();
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for node in graph.keys() {
        if seen.contains(node) {
            continue;
        }
        let next = graph[node].iter().find(|n| reaches(n, node));
        if let Some(next) = next {
            let mut cycle = vec![node.clone()];
            cycle.extend(path_between(graph, next, node).unwrap());
            seen.extend(graph.keys().filter(|n| reaches(node, n) && reaches(n, node)).cloned());
            out.push(cycle);
        }
    }
    out
}

/// The nodes from `from` to `to` along edges (breadth first), both ends included.
fn path_between(graph: &BTreeMap<String, BTreeSet<String>>, from: &str, to: &str) -> Option<Vec<String>> {
    let mut came_from: BTreeMap<&str, &str> = BTreeMap::new();
    let mut queue = std::collections::VecDeque::from([from]);
    while let Some(node) = queue.pop_front() {
        if node == to {
            let mut path = vec![to.to_string()];
            let mut at = to;
            while at != from {
                at = came_from[at];
                path.push(at.to_string());
            }
            path.reverse();
            return Some(path);
        }
        for next in graph.get(node).into_iter().flatten() {
            if next != from && !came_from.contains_key(next.as_str()) {
                came_from.insert(next, node);
                queue.push_back(next);
            }
        }
    }
    None
}

/// What each module defines: its child modules, its public names, its re-exports.
struct Definitions {
    children: BTreeMap<ModPath, BTreeSet<String>>,
    names: BTreeMap<ModPath, BTreeSet<String>>,
    /// Re-exported name → the path it names, relative to the re-exporting module.
    reexports: BTreeMap<ModPath, BTreeMap<String, Vec<String>>>,
    /// `pub use child::*` → the children whose names are re-exported.
    globs: BTreeMap<ModPath, Vec<Vec<String>>>,
}

impl Definitions {
    fn of(modules: &[Module]) -> Definitions {
        let mut d = Definitions {
            children: BTreeMap::new(),
            names: BTreeMap::new(),
            reexports: BTreeMap::new(),
            globs: BTreeMap::new(),
        };
        for m in modules {
            if let Some((last, parent)) = m.path.split_last() {
                d.children.entry(parent.to_vec()).or_default().insert(last.clone());
            }
            d.names.insert(m.path.clone(), public_names(&m.code));
            for path in reexported_paths(&m.code) {
                let rel: Vec<String> = path.into_iter().skip_while(|s| s == "self").collect();
                match rel.last().map(String::as_str) {
                    Some("*") => {
                        d.globs.entry(m.path.clone()).or_default().push(rel[..rel.len() - 1].to_vec())
                    }
                    Some(name) => {
                        d.reexports.entry(m.path.clone()).or_default().insert(name.to_string(), rel.clone());
                    }
                    None => {}
                }
            }
        }
        d
    }

    /// The module that defines what `path` (as written in the file of module `at`, inside
    /// `inline` nested `mod name { … }` blocks) names, if it is in this crate.
    fn resolve(&self, at: &ModPath, mut inline: usize, path: &[String]) -> Option<ModPath> {
        let mut module = at.clone();
        let mut rest = path;
        if !matches!(rest.first().map(String::as_str), Some("crate" | "super" | "self")) {
            return None;
        }
        while let Some(first) = rest.first() {
            match first.as_str() {
                "crate" => module.clear(),
                "super" if inline > 0 => inline -= 1,
                "super" => {
                    module.pop()?;
                }
                "self" => {}
                _ => break,
            }
            rest = &rest[1..];
        }
        self.descend(module, rest, 0)
    }

    fn descend(&self, mut module: ModPath, path: &[String], depth: usize) -> Option<ModPath> {
        for (i, segment) in path.iter().enumerate() {
            if self.children.get(&module).is_some_and(|c| c.contains(segment)) {
                module.push(segment.clone());
                continue;
            }
            if depth < 8 && i + 1 == path.len() {
                if let Some(target) = self.reexports.get(&module).and_then(|r| r.get(segment)) {
                    if matches!(target[0].as_str(), "crate" | "super") {
                        return self.resolve(&module, 0, target);
                    }
                    return self.descend(module.clone(), target, depth + 1);
                }
                for child in self.globs.get(&module).into_iter().flatten() {
                    let mut inner = module.clone();
                    inner.extend(child.iter().cloned());
                    if self.names.get(&inner).is_some_and(|n| n.contains(segment)) {
                        return Some(inner);
                    }
                }
            }
            break;
        }
        Some(module)
    }
}

/// The names a module declares `pub` (or `pub(…)`).
fn public_names(code: &str) -> BTreeSet<String> {
    let words = words(code);
    let mut names = BTreeSet::new();
    for (i, w) in words.iter().enumerate() {
        if w != "pub" {
            continue;
        }
        let mut j = i + 1;
        if words.get(j).is_some_and(|w| w == "(") {
            while words.get(j).is_some_and(|w| w != ")") {
                j += 1;
            }
            j += 1;
        }
        let kinds = ["fn", "struct", "enum", "const", "static", "trait", "type", "mod", "union"];
        while words.get(j).is_some_and(|w| ["unsafe", "async", "extern"].contains(&w.as_str())) {
            j += 1;
        }
        if words.get(j).is_some_and(|w| kinds.contains(&w.as_str())) {
            if let Some(name) = words.get(j + 1) {
                names.insert(name.clone());
            }
        }
    }
    names
}

/// The paths of a module's `pub use` items, expanded (`a::{b, c::D}` → `a::b`, `a::c::D`).
fn reexported_paths(code: &str) -> Vec<Vec<String>> {
    let words = words(code);
    let mut out = Vec::new();
    for (i, w) in words.iter().enumerate() {
        if w != "use" || i == 0 {
            continue;
        }
        let public = words[i - 1] == "pub" || (words[i - 1] == ")" && i >= 4 && words[i - 4] == "pub");
        if public {
            let mut at = i + 1;
            expand_tree(&words, &mut at, Vec::new(), &mut out);
        }
    }
    out
}

/// Every `crate::`/`super::`/`self::` path in the code, use trees expanded, with the number
/// of inline `mod name { … }` blocks it is written in.
pub fn paths_named(code: &str) -> Vec<(usize, Vec<String>)> {
    let words = words(code);
    let mut out = Vec::new();
    // Per open brace: whether it opens an inline module.
    let mut braces: Vec<bool> = Vec::new();
    for (i, w) in words.iter().enumerate() {
        match w.as_str() {
            "{" => braces.push(i >= 2 && words[i - 2] == "mod"),
            "}" => {
                braces.pop();
            }
            _ => {}
        }
        let starts = matches!(w.as_str(), "crate" | "super" | "self")
            && words.get(i + 1).is_some_and(|n| n == "::")
            && (i == 0 || words[i - 1] != "::");
        if starts {
            let (mut at, mut paths) = (i, Vec::new());
            expand_tree(&words, &mut at, Vec::new(), &mut paths);
            let inline = braces.iter().filter(|&&m| m).count();
            out.extend(paths.into_iter().map(|p| (inline, p)));
        }
    }
    out
}

/// Expands the use tree (or plain path) at `words[*at]` into `out`, each path prefixed by
/// `prefix`.
fn expand_tree(words: &[String], at: &mut usize, prefix: Vec<String>, out: &mut Vec<Vec<String>>) {
    let mut path = prefix;
    while let Some(w) = words.get(*at) {
        if w == "{" {
            *at += 1;
            while words.get(*at).is_some_and(|w| w != "}") {
                expand_tree(words, at, path.clone(), out);
                if words.get(*at).is_some_and(|w| w == ",") {
                    *at += 1;
                }
            }
            *at += 1;
            return;
        }
        if w == "*" || is_ident(w) {
            path.push(w.clone());
            *at += 1;
            if words.get(*at).is_some_and(|w| w == "::") {
                *at += 1;
                continue;
            }
        }
        break;
    }
    if words.get(*at).is_some_and(|w| w == "as") {
        *at += 2;
    }
    if !path.is_empty() {
        out.push(path);
    }
}

fn is_ident(w: &str) -> bool {
    w.chars().next().is_some_and(|c| c.is_alphabetic() || c == '_')
}

/// The code as identifiers, `::` and single punctuation characters.
fn words(code: &str) -> Vec<String> {
    let chars: Vec<char> = code.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_alphanumeric() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            out.push(chars[start..i].iter().collect());
        } else if c == ':' && chars.get(i + 1) == Some(&':') {
            out.push("::".into());
            i += 2;
        } else {
            if !c.is_whitespace() {
                out.push(c.to_string());
            }
            i += 1;
        }
    }
    out
}

/// `code` with comments, string literals and character literals replaced by spaces, so that
/// a path in a doc comment or a string is not taken for an import.
pub fn blank_comments_and_literals(code: &str) -> String {
    let chars: Vec<char> = code.chars().collect();
    let mut out = String::with_capacity(code.len());
    let mut i = 0;
    let skip_to = |out: &mut String, i: &mut usize, end: usize| {
        out.push_str(&" ".repeat(end - *i));
        *i = end;
    };
    while i < chars.len() {
        let rest = &chars[i..];
        let end = if rest.starts_with(&['/', '/']) {
            Some(i + rest.iter().position(|&c| c == '\n').unwrap_or(rest.len()))
        } else if rest.starts_with(&['/', '*']) {
            Some(block_comment_end(&chars, i))
        } else if let Some(hashes) = raw_string_start(rest).filter(|_| !after_ident(&chars, i)) {
            let close: Vec<char> = format!("\"{}", "#".repeat(hashes)).chars().collect();
            let body = i + hashes + 2 + (chars[i] == 'b') as usize;
            Some(
                (body..chars.len())
                    .find(|&j| chars[j..].starts_with(&close))
                    .map_or(chars.len(), |j| j + close.len()),
            )
        } else if chars[i] == '"' || rest.starts_with(&['b', '"']) && !after_ident(&chars, i) {
            let mut j = i + 1 + (chars[i] == 'b') as usize;
            while j < chars.len() && chars[j] != '"' {
                j += if chars[j] == '\\' { 2 } else { 1 };
            }
            Some((j + 1).min(chars.len()))
        } else if chars[i] == '\'' {
            // A character literal ('a', '\n', '\''), not a lifetime ('a).
            match (chars.get(i + 1), chars.get(i + 2)) {
                (Some('\\'), _) => {
                    (i + 2..chars.len()).find(|&j| chars[j] == '\'' && j > i + 2).map(|j| j + 1)
                }
                (Some(_), Some('\'')) => Some(i + 3),
                _ => None,
            }
        } else {
            None
        };
        match end {
            Some(end) => skip_to(&mut out, &mut i, end),
            None => {
                out.push(chars[i]);
                i += 1;
            }
        }
    }
    out
}

fn after_ident(chars: &[char], i: usize) -> bool {
    i > 0 && (chars[i - 1].is_alphanumeric() || chars[i - 1] == '_')
}

/// Where the (nested) block comment at `start` ends.
fn block_comment_end(chars: &[char], start: usize) -> usize {
    let mut depth = 0;
    let mut i = start;
    while i < chars.len() {
        if chars[i..].starts_with(&['/', '*']) {
            depth += 1;
            i += 2;
        } else if chars[i..].starts_with(&['*', '/']) {
            depth -= 1;
            i += 2;
            if depth == 0 {
                return i;
            }
        } else {
            i += 1;
        }
    }
    chars.len()
}

/// `r"`, `r#"`, `br##"`…: the number of hashes of the raw string starting here.
fn raw_string_start(rest: &[char]) -> Option<usize> {
    let after_b = if rest.first() == Some(&'b') { &rest[1..] } else { rest };
    if after_b.first() != Some(&'r') {
        return None;
    }
    let hashes = after_b[1..].iter().take_while(|&&c| c == '#').count();
    (after_b.get(1 + hashes) == Some(&'"')).then_some(hashes)
}
