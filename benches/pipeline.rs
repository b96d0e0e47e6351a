//! Per-packet cost of the switch core (issue: "Benchmarks"), in batches of 64 frames as
//! AF_XDP hands them over. Each pipeline bench includes writing every output frame into a
//! transmit buffer, as the I/O layer does, so the figure is decision + bytes.
//!
//! Run: `cargo bench -p xvtep-benches` (or `make bench`). Criterion reports time per batch and
//! elements/s; ns per packet = time / 64.

use std::net::Ipv4Addr;
use std::time::Duration;

use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use xvtep_dataplane::fdb::{FdbDst, Remote};
use xvtep_dataplane::wire::MacAddr;
use xvtep_dataplane::{Config, Domain, NextHops, Pipeline, PortId, RxFrame, Switch, TxBatch, Underlay};

const BATCH: usize = 64;

const CONFIG: &str = r#"
[switch]
ageing = 100000
max_learned = 0
[tunnel]
local = "192.168.1.4"
dev = "eth0"
[[vlan]]
vid = 2
vni = 2
[[port]]
name = "tap1_0"
vlans = [{ vid = 2, pvid = true, untagged = true }]
[[port]]
name = "tap2_0"
vlans = [{ vid = 2, pvid = true, untagged = true }]
[[fdb]]
mac = "00:00:00:00:00:00"
vni = 2
dst = "192.168.1.2"
[[fdb]]
mac = "00:00:00:00:00:00"
vni = 2
dst = "192.168.1.3"
"#;

/// The i-th of a large set of distinct unicast MACs, spread over the key space.
fn nth_mac(i: u64) -> MacAddr {
    let x = i.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 16;
    MacAddr::from_u64((x & 0xfeff_ffff_ffff) | 0x0200_0000_0000)
}

/// A switch whose FDB holds `entries` learned MACs in VNI 2, half local, half remote.
fn switch_with(entries: u64) -> std::sync::Arc<Switch> {
    let config = Config::parse(CONFIG, "bench.toml").unwrap();
    let sw = Switch::new(&config, Underlay::for_replay(&config), NextHops::with_fallback());
    let remote = FdbDst::Remote(Remote::new(Ipv4Addr::new(192, 168, 1, 2)));
    for i in 0..entries {
        let dst = if i % 2 == 0 { FdbDst::Port(PortId(2)) } else { remote };
        sw.fdb.learn(nth_mac(i), Domain::vni(2), dst, 0);
    }
    sw
}

/// A 64-byte UDP frame from `src` to `dst` (flow `i`).
fn inner(src: MacAddr, dst: MacAddr, i: u16) -> Vec<u8> {
    let mut f = vec![0u8; 60];
    f[..6].copy_from_slice(&dst.0);
    f[6..12].copy_from_slice(&src.0);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    let ip = &mut f[14..];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&46u16.to_be_bytes());
    ip[8] = 64;
    ip[9] = 17;
    ip[12..16].copy_from_slice(&[10, 2, 0, 1]);
    ip[16..20].copy_from_slice(&[10, 2, 0, 2]);
    ip[20..22].copy_from_slice(&(1000 + i).to_be_bytes());
    ip[22..24].copy_from_slice(&5201u16.to_be_bytes());
    ip[24..26].copy_from_slice(&26u16.to_be_bytes());
    f
}

/// Wraps `frame` in VXLAN from 192.168.1.2 (UDP checksum 0, as the kernel sends by default).
fn vxlan_from_peer(frame: &[u8]) -> Vec<u8> {
    let mut f = vec![0u8; 50];
    f[..6].copy_from_slice(&[2, 0, 192, 168, 1, 4]);
    f[6..12].copy_from_slice(&[2, 0, 192, 168, 1, 2]);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    let ip = &mut f[14..34];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&((20 + 8 + 8 + frame.len()) as u16).to_be_bytes());
    ip[8] = 64;
    ip[9] = 17;
    ip[12..16].copy_from_slice(&[192, 168, 1, 2]);
    ip[16..20].copy_from_slice(&[192, 168, 1, 4]);
    let mut sum: u32 = ip.chunks(2).map(|c| u16::from_be_bytes([c[0], c[1]]) as u32).sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    ip[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    f[34..36].copy_from_slice(&50000u16.to_be_bytes());
    f[36..38].copy_from_slice(&4789u16.to_be_bytes());
    f[38..40].copy_from_slice(&((8 + 8 + frame.len()) as u16).to_be_bytes());
    f[42] = 0x08;
    f[46..49].copy_from_slice(&[0, 0, 2]);
    f.extend_from_slice(frame);
    f
}

/// Runs one batch through `pipeline` and writes every output frame, as the I/O layer would.
fn run_batch(pipeline: &mut Pipeline, rx: &[RxFrame], tx: &mut TxBatch, out: &mut [u8]) -> usize {
    pipeline.process(1, rx, tx);
    let mut bytes = 0;
    for a in tx.actions() {
        bytes += tx.write(a, rx, out);
    }
    bytes
}

fn bench_pipeline(c: &mut Criterion) {
    let sw = switch_with(1 << 20);
    let mut pipeline = Pipeline::new(&sw);
    let mut tx = TxBatch::with_capacity(BATCH * 4);
    let mut out = vec![0u8; 2048];
    let mut g = c.benchmark_group("pipeline_1M_fdb");
    g.throughput(Throughput::Elements(BATCH as u64));

    // (a) Decap + switch: VXLAN from the peer to MACs that live on tap2_0 (even entries).
    let frames: Vec<Vec<u8>> = (0..BATCH as u64)
        .map(|i| vxlan_from_peer(&inner(nth_mac(1 + 2 * 1000 * i), nth_mac(2 * 1000 * i), i as u16)))
        .collect();
    let rx: Vec<RxFrame> = frames.iter().map(|f| RxFrame::new(PortId::TUNNEL, f)).collect();
    run_batch(&mut pipeline, &rx, &mut tx, &mut out);
    assert_eq!(tx.len(), BATCH, "every frame delivered");
    g.bench_function("decap_switch_to_port", |b| {
        b.iter(|| black_box(run_batch(&mut pipeline, &rx, &mut tx, &mut out)))
    });
    g.bench_function("decap_switch_to_port_decide_only", |b| {
        b.iter(|| {
            pipeline.process(1, &rx, &mut tx);
            black_box(tx.len())
        })
    });

    // (b) Switch + encap: from tap1_0 to MACs behind the remote (odd entries).
    let frames: Vec<Vec<u8>> = (0..BATCH as u64)
        .map(|i| inner(nth_mac(2 * 1000 * i), nth_mac(1 + 2 * 1000 * i), i as u16))
        .collect();
    let rx: Vec<RxFrame> = frames.iter().map(|f| RxFrame::new(PortId(1), f)).collect();
    run_batch(&mut pipeline, &rx, &mut tx, &mut out);
    assert_eq!(tx.len(), BATCH, "every frame encapsulated");
    g.bench_function("switch_encap_to_remote", |b| {
        b.iter(|| black_box(run_batch(&mut pipeline, &rx, &mut tx, &mut out)))
    });
    g.bench_function("switch_encap_to_remote_decide_only", |b| {
        b.iter(|| {
            pipeline.process(1, &rx, &mut tx);
            black_box(tx.len())
        })
    });

    // Flooding: broadcast from tap1_0 → tap2_0 + head-end replication to two remotes.
    let frames: Vec<Vec<u8>> =
        (0..BATCH as u64).map(|i| inner(nth_mac(2 * 1000 * i), MacAddr::BROADCAST, i as u16)).collect();
    let rx: Vec<RxFrame> = frames.iter().map(|f| RxFrame::new(PortId(1), f)).collect();
    run_batch(&mut pipeline, &rx, &mut tx, &mut out);
    assert_eq!(tx.len(), 3 * BATCH, "every frame flooded three ways");
    g.bench_function("flood_port_and_2_remotes", |b| {
        b.iter(|| black_box(run_batch(&mut pipeline, &rx, &mut tx, &mut out)))
    });
    g.finish();
}

fn bench_fdb(c: &mut Criterion) {
    let mut g = c.benchmark_group("fdb_lookup");
    g.throughput(Throughput::Elements(BATCH as u64));
    for entries in [1u64 << 10, 1 << 20] {
        let sw = switch_with(entries);
        // Random keys across the whole table: at 1M entries most lookups miss the CPU caches.
        let mut seed = 1u64;
        let keys: Vec<Vec<MacAddr>> = (0..1024)
            .map(|_| {
                (0..BATCH)
                    .map(|_| {
                        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                        nth_mac((seed >> 33) % entries)
                    })
                    .collect()
            })
            .collect();
        let mut k = 0;
        g.bench_function(format!("{}_entries", entries), |b| {
            b.iter_batched(
                || {
                    k = (k + 1) % keys.len();
                    &keys[k]
                },
                |batch| {
                    let mut hits = 0;
                    for m in batch {
                        hits += sw.fdb.lookup(*m, Domain::vni(2), 1).is_some() as usize;
                    }
                    assert_eq!(hits, BATCH);
                    hits
                },
                BatchSize::SmallInput,
            )
        });
    }
    // The read path the pipeline uses: each worker's cache of entries in front of the shared
    // map, against the shared map alone, for a hot set (64 flows) and for random keys.
    let sw = switch_with(1 << 20);
    let hot: Vec<MacAddr> = (0..BATCH as u64).map(|i| nth_mac(i * 4099)).collect();
    let mut cache = xvtep_dataplane::fdb::FdbCache::default();
    cache.begin_batch(&sw.fdb);
    g.bench_function("hot_64_shared_map", |b| {
        b.iter(|| hot.iter().filter(|m| sw.fdb.lookup(**m, Domain::vni(2), 1).is_some()).count())
    });
    g.bench_function("hot_64_worker_cache", |b| {
        b.iter(|| hot.iter().filter(|m| cache.lookup(&sw.fdb, **m, Domain::vni(2), 1).is_some()).count())
    });
    let mut seed = 7u64;
    let random: Vec<MacAddr> = (0..BATCH * 256)
        .map(|_| {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            nth_mac((seed >> 33) % (1 << 20))
        })
        .collect();
    let mut k = 0;
    g.bench_function("random_1M_worker_cache", |b| {
        b.iter(|| {
            k = (k + BATCH) % random.len();
            random[k..k + BATCH]
                .iter()
                .filter(|m| cache.lookup(&sw.fdb, **m, Domain::vni(2), 1).is_some())
                .count()
        })
    });

    // Learning a known source (the per-frame refresh path).
    let sw = switch_with(1 << 20);
    g.bench_function("learn_refresh_1M", |b| {
        b.iter(|| {
            for i in 0..BATCH as u64 {
                black_box(sw.fdb.learn(nth_mac(2 * i), Domain::vni(2), FdbDst::Port(PortId(2)), 1));
            }
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = bench_pipeline, bench_fdb
}
criterion_main!(benches);
