//! Man pages and shell completions, generated from the definitions they document: `xvtep(8)`
//! and one page per subcommand from the clap definitions (clap_mangen), and `xvtep.toml(5)`
//! from the config file's key table, which a test keeps equal to what the parser accepts.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};
use xvtep_dataplane::config::keys::{TableDoc, TABLES};

/// The example config installed as /etc/xvtep/xvtep.toml, shown in `xvtep.toml(5)`.
pub const EXAMPLE_CONFIG: &str = include_str!("../../packaging/xvtep.toml");

/// Every page: (file name, roff text).
pub fn pages(cmd: &clap::Command) -> Result<Vec<(String, String)>> {
    let mut pages = vec![("xvtep.8".to_string(), render(cmd.clone())?)];
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = format!("xvtep-{}", sub.get_name());
        let page = sub.clone().name(name.clone()).bin_name(format!("xvtep {}", sub.get_name()));
        pages.push((format!("{name}.8"), render(page)?));
    }
    pages.push(("xvtep.toml.5".to_string(), config_page()));
    Ok(pages)
}

/// Writes every page into `dir`; returns the files written.
pub fn write_pages(cmd: &clap::Command, dir: &Path) -> Result<Vec<String>> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut written = Vec::new();
    for (name, text) in pages(cmd)? {
        let path = dir.join(&name);
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
        written.push(name);
    }
    Ok(written)
}

fn render(cmd: clap::Command) -> Result<String> {
    let mut out = Vec::new();
    clap_mangen::Man::new(cmd).section("8").manual("System Administration").render(&mut out)?;
    Ok(String::from_utf8(out)?)
}

/// Text made safe for roff: backslashes escaped, hyphens as minus signs (options are typed
/// that way), and a line that starts with a control character kept as text.
fn roff(text: &str) -> String {
    let escaped = text.replace('\\', "\\e").replace('-', "\\-");
    escaped
        .lines()
        .map(|l| if l.starts_with(['.', '\'']) { format!("\\&{l}") } else { l.to_string() })
        .collect::<Vec<_>>()
        .join("\n")
}

fn table_heading(t: &TableDoc) -> String {
    match (t.name.split_once('.'), t.array) {
        (Some((parent, list)), _) => format!("[[{parent}]] {list} = [{{ ... }}]"),
        (None, true) => format!("[[{}]]", t.name),
        (None, false) => format!("[{}]", t.name),
    }
}

/// `xvtep.toml(5)`: every table and key with its default, then the example file.
pub fn config_page() -> String {
    let mut m = String::new();
    let version = env!("CARGO_PKG_VERSION");
    let _ = writeln!(m, ".TH XVTEP.TOML 5 \"\" \"xvtep {version}\" \"File Formats\"");
    m.push_str(".SH NAME\nxvtep.toml \\- configuration file of the xvtep VXLAN tunnel endpoint\n");
    m.push_str(".SH SYNOPSIS\n/etc/xvtep/xvtep.toml\n");
    m.push_str(&format!(
        ".SH DESCRIPTION\n{}\n.PP\n{}\n",
        roff(
            "The configuration of xvtep run, in TOML: what Linux does with one VLAN-aware bridge and one \
             external vxlan device with vlan_tunnel, written as tables. xvtep check --config FILE validates \
             a file; every error names the file, line and column, and nothing starts on an invalid file."
        ),
        roff(
            "BUM traffic of a VNI goes to its flood list ([[fdb]] entries with the all-zeros MAC) if it has \
             one, else to its multicast group (the VNI's own, else tunnel.group), else to tunnel.remote."
        )
    ));
    m.push_str(".SH TABLES\n");
    for t in TABLES {
        let _ = writeln!(m, ".SS {}\n{}", roff(&table_heading(t)), roff(t.doc));
        for k in t.keys {
            let default = k.default.map_or("required".to_string(), |d| format!("default: {d}"));
            let _ = writeln!(
                m,
                ".TP\n\\fB{}\\fR = \\fI{}\\fR ({})\n{}",
                roff(k.key),
                roff(k.value),
                roff(&default),
                roff(k.doc)
            );
        }
    }
    let _ = writeln!(m, ".SH EXAMPLE\n.nf\n{}\n.fi", roff(EXAMPLE_CONFIG.trim_end()));
    m.push_str(".SH FILES\n.TP\n/etc/xvtep/xvtep.toml\nThe file the packaged service starts with.\n");
    m.push_str(".SH SEE ALSO\n\\fBxvtep\\fR(8), \\fBxvtep\\-run\\fR(8), \\fBxvtep\\-check\\fR(8), \\fBbridge\\fR(8), \\fBip\\-link\\fR(8)\n");
    m
}

/// Writes the completion script for `shell` to `out`.
pub fn completions(cmd: &mut clap::Command, shell: clap_complete::Shell, out: &mut dyn std::io::Write) {
    clap_complete::generate(shell, cmd, "xvtep", out);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roff_keeps_text_from_being_read_as_requests() {
        assert_eq!(roff(".dot\n'quote\nback\\slash a-b"), "\\&.dot\n\\&'quote\nback\\eslash a\\-b");
    }

    #[test]
    fn the_config_page_has_every_key_with_its_default() {
        let page = config_page();
        for t in TABLES {
            assert!(page.contains(&format!(".SS {}\n", roff(&table_heading(t)))), "{}", t.name);
            for k in t.keys {
                let default = k.default.map_or("required".to_string(), |d| format!("default: {d}"));
                let entry =
                    format!("\\fB{}\\fR = \\fI{}\\fR ({})", roff(k.key), roff(k.value), roff(&default));
                assert!(page.contains(&entry), "{}.{} missing: {entry}", t.name, k.key);
            }
        }
        assert!(page.contains(".SS [[port]] vlans = [{ ... }]\n"));
        assert!(page.contains("\\fBdstport\\fR = \\fIport\\fR (default: 4789)"));
        assert!(page.contains("\\fBlocal\\fR = \\fIIPv4 or IPv6 address\\fR (required)"));
    }

    #[test]
    fn the_example_in_the_page_is_a_valid_config() {
        xvtep_dataplane::Config::parse(EXAMPLE_CONFIG, "packaging/xvtep.toml").expect("the example is valid");
    }
}
