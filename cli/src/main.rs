//! `xvtep`: the command-line front end. Subcommands mirror iproute2's `bridge` where they
//! manage the switch; `replay` runs the pipeline over pcap files.

mod bench;
mod daemon;
mod manual;
mod replay;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};
use xvtep::control::protocol::Request;
use xvtep::control::{client, output, words};

/// `xvtep -V`: the version and the commit it was built from.
const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (commit ", env!("XVTEP_COMMIT"), ")");

/// `xvtep --version`: also what is built in, and how it is linked.
macro_rules! long_version {
    ($linkage:literal) => {
        concat!(
            env!("CARGO_PKG_VERSION"),
            "\ncommit: ",
            env!("XVTEP_COMMIT"),
            "\nfeatures: afxdp (AF_XDP ports and underlay), vnet (virtio-net-header ports), \
             kernel (following kernel bridges over netlink), xdp-embedded (the XDP program inside this binary)",
            "\nlinkage: ",
            $linkage
        )
    };
}
#[cfg(target_feature = "crt-static")]
const LONG_VERSION: &str = long_version!("static (no dynamic dependencies)");
#[cfg(not(target_feature = "crt-static"))]
const LONG_VERSION: &str = long_version!("dynamic");

#[derive(Parser)]
#[command(
    name = "xvtep",
    version = VERSION,
    long_version = LONG_VERSION,
    about = "A userspace VXLAN tunnel endpoint (software VTEP)"
)]
struct Cli {
    /// Print JSON instead of text.
    #[arg(short = 'j', long = "json", global = true)]
    json: bool,
    /// With -j: pretty-print the JSON.
    #[arg(short = 'p', long = "pretty", global = true)]
    pretty: bool,
    /// The running daemon's control socket.
    #[arg(long, global = true, default_value = xvtep::control::client::DEFAULT_SOCKET)]
    socket: PathBuf,
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
    /// The forwarding database of the running daemon, in `bridge fdb` words.
    #[command(long_about = "The forwarding database of the running daemon, in `bridge fdb` words.

  xvtep fdb show [vni N] [dev PORT]
  xvtep fdb add|replace MAC dev PORT [vni N | vlan VID] [static|permanent]
  xvtep fdb add|replace MAC dev vxlan0 dst IP vni N [static|permanent]
  xvtep fdb append 00:00:00:00:00:00 dev vxlan0 dst IP vni N     (flood list: head-end replication)
  xvtep fdb del MAC dev PORT|vxlan0 [vni N | vlan VID] [dst IP]
  xvtep fdb flush [dev PORT] [vni N] [dynamic]

Static entries added here are part of the running configuration (see `xvtep save`).
Examples:
  xvtep fdb append 00:00:00:00:00:00 dev vxlan0 dst 192.168.1.3 vni 2
  xvtep fdb del 02:00:00:00:00:0a dev tap1_0 vni 2")]
    Fdb {
        #[arg(default_value = "show")]
        verb: String,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// VLAN membership and the VID↔VNI map, in `bridge vlan` words.
    #[command(
        long_about = "VLAN membership of the ports and the VID<->VNI map of vxlan0, in `bridge vlan` words.

  xvtep vlan show
  xvtep vlan add dev PORT vid N [pvid] [untagged]
  xvtep vlan del dev PORT vid N
  xvtep vlan add dev vxlan0 vid N tunnel_info id VNI
  xvtep vlan del dev vxlan0 vid N

A change is checked as a config file would be (one PVID per port, one-to-one map, static
entries still valid) and refused whole if it is not."
    )]
    Vlan {
        #[arg(default_value = "show")]
        verb: String,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Ports and their settings, in `bridge link` words.
    #[command(long_about = "Ports and their settings, in `bridge link` words.

  xvtep link show
  xvtep link add dev IFACE
  xvtep link add dev NAME internal [address A/LEN[,A/LEN...]] [mac MAC]
  xvtep link del dev PORT
  xvtep link set dev PORT [hairpin on|off] [learning on|off] [flood on|off]
  xvtep link set dev vxlan0 learning on|off

add makes an existing interface a port while the switch runs: the XDP program is attached to
it and a socket is opened on each of its rx queues for the worker serving that queue (it needs
at least as many queues as xvtep has workers). It starts as a kernel bridge port does: in VLAN 1
(PVID, untagged), learning and flood on, hairpin off; change that with `vlan` and `link set`.
An internal port is the host's own interface on the overlay: xvtep creates NAME (a veth pair,
the host's end with the addresses given) and serves the other end. del detaches a port; its
FDB entries go with it, static ones too (an internal port's interface is removed). Both change the running
configuration (see `save`).")]
    Link {
        #[arg(default_value = "show")]
        verb: String,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Neighbours for ARP and ND suppression.
    #[command(long_about = "The neighbour table that ARP and ND suppression (tunnel.proxy) answer from.

  xvtep neigh show
  xvtep neigh add IP lladdr MAC vni N       (IP: IPv4 or IPv6)
  xvtep neigh del IP vni N")]
    Neigh {
        #[arg(default_value = "show")]
        verb: String,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Watch learn, move, age-out, l2miss and l3miss events as they happen.
    #[command(long_about = "Watch events as they happen, like `bridge monitor` / `ip monitor`.

  xvtep monitor [fdb] [miss]

fdb: learn, move and age-out; miss: l2miss (unknown unicast, with tunnel.l2miss) and l3miss
(ARP target not in the neighbour table, with tunnel.proxy and tunnel.l3miss). Neither: both.")]
    Monitor {
        #[arg(trailing_var_arg = true)]
        args: Vec<String>,
    },
    /// Counters and drop reasons of the running daemon.
    #[command(
        long_about = "Counters of the running daemon: per port rx/tx packets and bytes, every named drop
reason, FDB totals.

  xvtep stats [dev PORT]"
    )]
    Stats {
        #[arg(trailing_var_arg = true)]
        args: Vec<String>,
    },
    /// Write the running configuration as a config file `run` accepts.
    #[command(
        long_about = "Write the running configuration (ports, VLANs, static FDB entries, neighbours) as a
config file that `xvtep run` accepts. Without FILE, the file the daemon was started with.

  xvtep save [FILE]"
    )]
    Save { file: Option<PathBuf> },
    /// Validate a config file and print what it sets up.
    Check {
        /// The config file (TOML).
        #[arg(long, short = 'c')]
        config: PathBuf,
    },
    /// Print the shell completion script for SHELL (bash, zsh, fish, elvish, powershell).
    #[command(long_about = "Print the shell completion script for SHELL.

  xvtep completions bash > /usr/share/bash-completion/completions/xvtep
  xvtep completions zsh > /usr/share/zsh/vendor-completions/_xvtep
  xvtep completions fish > /usr/share/fish/vendor_completions.d/xvtep.fish

The Debian package installs all three.")]
    Completions { shell: clap_complete::Shell },
    /// Write the man pages (xvtep(8), one per subcommand, xvtep.toml(5)) into DIR.
    #[command(hide = true)]
    Manpages { dir: PathBuf },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // `Targets`, not `EnvFilter`: the same `RUST_LOG` syntax for levels per target, without
    // the regex engine that would add 0.5 MiB to the static binary.
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|v| v.parse::<tracing_subscriber::filter::Targets>().ok())
        // netlink-packet-route warns about every attribute newer than itself in a link dump.
        .unwrap_or_else(|| "info,netlink_packet_route=error".parse().expect("a valid filter"));
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    tracing_subscriber::registry()
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
        .with(filter)
        .init();
    let ctx = Ctx { socket: cli.socket.clone(), json: cli.json, pretty: cli.pretty };
    let cli_json = cli.json;
    let result = match cli.command {
        Command::Run(args) => daemon::run(args),
        Command::Replay(args) => replay::run(args, cli_json),
        Command::Check { config } => check(&config, cli_json),
        Command::Bench(args) => bench::run(args, cli_json),
        Command::Fdb { verb, args } => control(&ctx, words::fdb(&verb, &args), output::fdb),
        Command::Vlan { verb, args } => control(&ctx, words::vlan(&verb, &args), output::vlan),
        Command::Link { verb, args } => control(&ctx, words::link(&verb, &args), output::link),
        Command::Neigh { verb, args } => control(&ctx, words::neigh(&verb, &args), output::neigh),
        Command::Stats { args } => stats(&ctx, &args),
        Command::Monitor { args } => monitor(&ctx, &args),
        Command::Save { file } => control(&ctx, Ok(Request::Save { path: file }), |d| {
            format!("saved the running configuration to {}\n", d["path"].as_str().unwrap_or("?"))
        }),
        Command::BenchForward(args) => bench::forward::run(args),
        Command::Completions { shell } => {
            manual::completions(&mut Cli::command(), shell, &mut std::io::stdout());
            Ok(())
        }
        Command::Manpages { dir } => manual::write_pages(&Cli::command(), &dir).map(|written| {
            println!("wrote {} man pages into {}: {}", written.len(), dir.display(), written.join(" "));
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xvtep: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// What the control commands need of the global options.
struct Ctx {
    socket: PathBuf,
    json: bool,
    pretty: bool,
}

/// Sends a request to the daemon and prints the answer as text (`show`) or JSON (`-j`).
fn control(
    cli: &Ctx,
    request: Result<Request, String>,
    show: fn(&serde_json::Value) -> String,
) -> anyhow::Result<()> {
    let request = request.map_err(|e| anyhow::anyhow!("{e} (see xvtep help)"))?;
    let data = client::call(&cli.socket, &request)?;
    if cli.json {
        print_json(cli, &data);
    } else {
        print!("{}", if data.is_null() { String::new() } else { show(&data) });
    }
    Ok(())
}

fn print_json(cli: &Ctx, v: &serde_json::Value) {
    let text = if cli.pretty { serde_json::to_string_pretty(v) } else { serde_json::to_string(v) };
    println!("{}", text.unwrap_or_default());
}

fn stats(cli: &Ctx, args: &[String]) -> anyhow::Result<()> {
    let dev = match args {
        [] => None,
        [d, name] if d == "dev" => Some(name.clone()),
        _ => anyhow::bail!("usage: xvtep stats [dev PORT]"),
    };
    control(cli, Ok(Request::Stats { dev }), |d| {
        match serde_json::from_value::<xvtep_dataplane::Stats>(d.clone()) {
            Ok(s) => format!("{s}\n"),
            Err(e) => format!("(cannot read the counters: {e})\n"),
        }
    })
}

fn monitor(cli: &Ctx, args: &[String]) -> anyhow::Result<()> {
    let request =
        words::monitor(args).map_err(|e| anyhow::anyhow!("{e} (usage: xvtep monitor [fdb] [miss])"))?;
    client::monitor(&cli.socket, &request, |event| {
        if cli.json {
            print_json(cli, &event);
        } else {
            println!("{}", event["text"].as_str().unwrap_or_default());
        }
        use std::io::Write;
        std::io::stdout().flush()?;
        Ok(())
    })
}

fn check(path: &std::path::Path, json: bool) -> anyhow::Result<()> {
    let c = daemon::kernel::load_config(path)?;
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
