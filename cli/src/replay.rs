//! `xvtep replay`.

use std::io::IsTerminal;
use std::path::PathBuf;

use xvtep_dataplane::io::replay::{Replay, ReplayInput};
use xvtep_dataplane::Config;

#[derive(clap::Args)]
pub struct Args {
    /// The switch's config file (TOML).
    #[arg(long, short = 'c')]
    config: PathBuf,
    /// IFACE=FILE.pcap: frames received on IFACE (the tunnel's dev or a port). Repeatable;
    /// captures are merged by timestamp.
    #[arg(long = "in", value_name = "IFACE=FILE", required = true)]
    inputs: Vec<ReplayInput>,
    /// Where DIR/IFACE.pcap is written for every interface that sent something.
    #[arg(long, value_name = "DIR")]
    out_dir: PathBuf,
    /// Print the switch's events (learn, move, age, l2miss, l3miss) as they happen.
    #[arg(long)]
    events: bool,
    /// Print the FDB at the end, as `bridge fdb show` does.
    #[arg(long)]
    fdb: bool,
}

pub fn run(args: Args, json: bool) -> anyhow::Result<()> {
    let config = Config::load(&args.config)?;
    let replay = Replay::new(&config, &args.inputs, &args.out_dir)?;
    let switch = replay.switch().clone();
    let events = args.events.then(|| replay.switch().events.subscribe(1 << 20));
    let show_progress = std::io::stderr().is_terminal();
    let report = replay.run(&mut |frames| {
        if show_progress {
            eprint!("\rreplayed {frames} frames…");
        }
    })?;
    if show_progress {
        eprint!("\r\x1b[K");
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    if let Some(rx) = events {
        for e in rx.try_iter() {
            println!("event: {}", switch.describe(&e));
        }
    }
    println!("replayed {} frames", report.frames_in);
    for (iface, n) in &report.frames_out {
        println!("wrote {} ({n} frames)", args.out_dir.join(format!("{iface}.pcap")).display());
    }
    println!("{}", report.stats);
    if args.fdb {
        println!("fdb:");
        for line in switch.fdb_show(report.last_time) {
            println!("  {line}");
        }
    }
    Ok(())
}
