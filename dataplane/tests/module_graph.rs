//! No two modules of the dataplane import each other, directly or around a loop.
//!
//! The check reads the crate's sources: every `crate::…`, `super::…` and `self::…` path (in
//! `use` items and in code) is resolved to the module that defines what it names, following
//! the re-exports of a parent (`pub use child::Name`, `pub use child::*`). Modules are compared
//! with their siblings, at every level: `pipeline/gro.rs` using `crate::switch::Switch` is an
//! edge `pipeline → switch` among the crate's top-level modules, and `pipeline/gro.rs` using
//! `super::tx::Part` an edge `gro → tx` among `pipeline`'s children. A module using its
//! parent's own items (`super::Ctx`) or its own children is not an edge: a parent is made of
//! its children. Each level's graph must have no cycle.
//!
//! `io/` counts as one module among the top-level ones; the graph inside it is not checked
//! here.

#[path = "module_graph/check.rs"]
mod check;

use std::path::Path;

use check::*;

#[test]
fn no_module_imports_another_that_imports_it_back() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let cycles = cycles(&read_modules(&src));
    assert!(cycles.is_empty(), "import cycles among the dataplane's modules:\n{}", cycles.join("\n"));
}

#[test]
fn a_cycle_between_siblings_is_found() {
    let modules = vec![
        module(&[], "mod a; mod b;"),
        module(&["a"], "use crate::b::B; pub struct A;"),
        module(&["b"], "pub struct B(crate::a::A);"),
    ];
    assert_eq!(cycles(&modules), vec!["(crate): a → b → a"]);
}

#[test]
fn a_cycle_behind_a_parents_re_export_is_found() {
    let modules = vec![
        module(&[], "mod p;"),
        module(&["p"], "mod x; mod y; pub use x::*; pub use y::{Y};"),
        module(&["p", "x"], "use super::Y; pub(crate) fn x() {}"),
        module(&["p", "y"], "pub struct Y; fn f() { super::x() }"),
    ];
    assert_eq!(cycles(&modules), vec!["p: x → y → x"]);
}

#[test]
fn a_test_module_inside_a_file_resolves_super_to_the_file() {
    let modules = vec![
        module(&[], "mod a; mod b;"),
        module(&["a"], "pub struct A; #[cfg(test)] mod tests { use super::A; use super::super::b::B; }"),
        module(&["b"], "pub struct B(crate::a::A);"),
    ];
    assert_eq!(cycles(&modules), vec!["(crate): a → b → a"]);
}

#[test]
fn children_using_their_parent_and_comments_are_not_edges() {
    let modules = vec![
        module(&[], "mod p; mod q;"),
        module(&["p"], "mod x; pub struct Ctx; fn f(_: x::X) {}"),
        module(&["p", "x"], "use super::Ctx; pub struct X; // crate::q::Q\nconst S: &str = \"crate::q::Q\";"),
        module(&["q"], "use crate::p::Ctx; pub struct Q;"),
    ];
    assert!(cycles(&modules).is_empty());
}

#[test]
fn literals_and_comments_are_blanked() {
    let code = "let a = 'x'; fn f<'a>() {} /* crate::a /* nested */ */ let s = r#\"crate::b\"#; // crate::c\nuse crate::d;";
    let paths = paths_named(&blank_comments_and_literals(code));
    assert_eq!(paths, vec![(0, vec!["crate".to_string(), "d".to_string()])]);
}
