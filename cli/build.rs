//! Records the git commit the binary is built from, for `xvtep --version`. A build outside a
//! git checkout (a source tarball) says `unknown`, or what `XVTEP_COMMIT` says.

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=XVTEP_COMMIT");
    // Only paths that exist: cargo reruns a build script whose watched path is missing
    // every time, which would rebuild the binary on every cargo command.
    for watched in ["../.git/HEAD", "../.git/refs/heads", "../.git/packed-refs"] {
        if std::path::Path::new(watched).exists() {
            println!("cargo:rerun-if-changed={watched}");
        }
    }
    let commit = std::env::var("XVTEP_COMMIT").ok().filter(|c| !c.is_empty()).or_else(|| {
        let out = Command::new("git").args(["rev-parse", "--short=12", "HEAD"]).output().ok()?;
        let text = String::from_utf8(out.stdout).ok()?;
        out.status.success().then(|| text.trim().to_string())
    });
    println!("cargo:rustc-env=XVTEP_COMMIT={}", commit.as_deref().unwrap_or("unknown"));
}
