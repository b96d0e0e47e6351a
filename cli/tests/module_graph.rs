//! No two modules of the `xvtep` crate import each other, directly or around a loop: the check
//! of `dataplane/tests/module_graph.rs` over `cli/src`, where the binary's root (`main.rs`) and
//! the library's (`lib.rs`) are both the crate root (their modules do not overlap, and the
//! binary reaches the library as `xvtep::…`, which is no edge).

use std::path::Path;

#[path = "../../dataplane/tests/module_graph/check.rs"]
mod check;

#[test]
fn no_module_of_the_cli_imports_another_that_imports_it_back() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let cycles = check::cycles(&check::read_modules(&src));
    assert!(cycles.is_empty(), "import cycles among the cli's modules:\n{}", cycles.join("\n"));
}
