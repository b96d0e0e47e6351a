//! `xvtep`: the command-line front end. Subcommands mirror iproute2's `bridge` where they
//! manage the switch; `replay` runs the pipeline over pcap files.

mod bench;
mod daemon;
mod replay;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use xvtep_dataplane::Config;

#[derive(Parser)]
#[command(name = "xvtep", version, about = "A userspace VXLAN tunnel endpoint (software VTEP)")]
struct Cli {
    /// Print JSON instead of text.
    #[arg(short = 'j', long = "json", global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the switch as a daemon: attach the XDP program, open AF_XDP sockets and forward
    /// live traffic between the ports and the underlay until SIGINT/SIGTERM.
    Run(daemon::Args),
    /// Run the switch over pcap captures: each --in feeds one interface, and DIR/IFACE.pcap
    /// receives what the switch sent out of IFACE. No root, no kernel, deterministic.
    Replay(replay::Args),
    /// Measure xvtep against the kernel's bridge + vxlan and a bare AF_XDP forwarder on the
    /// same namespace topology (root).
    Bench(bench::Args),
    /// The bare AF_XDP forwarder the bench uses as its ceiling.
    #[command(hide = true)]
    BenchForward(bench::forward::Args),
    /// Validate a config file and print what it sets up.
    Check {
        /// The config file (TOML).
        #[arg(long, short = 'c')]
        config: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let result = match cli.command {
        Command::Run(args) => daemon::run(args),
        Command::Replay(args) => replay::run(args, cli.json),
        Command::Check { config } => check(&config, cli.json),
        Command::Bench(args) => bench::run(args, cli.json),
        Command::BenchForward(args) => bench::forward::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xvtep: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn check(path: &std::path::Path, json: bool) -> anyhow::Result<()> {
    let c = Config::load(path)?;
    if json {
        let summary = serde_json::json!({
            "ports": c.ports.iter().map(|p| &p.name).collect::<Vec<_>>(),
            "vlans": c.vlans.iter().map(|m| serde_json::json!({"vid": m.vid, "vni": m.vni})).collect::<Vec<_>>(),
            "fdb": c.fdb.len(),
            "neigh": c.neigh.len(),
        });
        println!("{summary}");
    } else {
        println!(
            "{}: ok: tunnel {} on {} port {}, {} VLAN mappings, {} ports, {} static FDB entries, {} neighbours",
            path.display(),
            c.tunnel.local,
            c.tunnel.dev,
            c.tunnel.dstport,
            c.vlans.len(),
            c.ports.len(),
            c.fdb.len(),
            c.neigh.len()
        );
    }
    Ok(())
}
