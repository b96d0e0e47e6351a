//! Which segment actions make one UDP superframe. The bytes written are checked against the
//! kernel's cut of them in every test that switches a superframe to the tunnel (the test
//! harness cuts each run, `tests/common`).

use super::*;
use crate::ids::PortId;
use crate::pipeline::superframe::{Gso, GsoKind};
use crate::pipeline::tx::{Edit, TxSource, OUTER_MAX};

/// An outer IPv4 header (Ethernet + IPv4 + UDP + VXLAN) to `dst` with IP ID `ident`.
fn outer(dst: u8, ident: u16) -> OuterHeader {
    let mut bytes = [0u8; OUTER_MAX];
    bytes[12..14].copy_from_slice(&[0x08, 0x00]);
    bytes[IP_OFF] = 0x45;
    bytes[IP_OFF + 4..IP_OFF + 6].copy_from_slice(&ident.to_be_bytes());
    bytes[IP_OFF + 9] = 17;
    bytes[IP_OFF + 16..IP_OFF + 20].copy_from_slice(&[10, 0, 0, dst]);
    OuterHeader { bytes, len: 50, udp_offset: 34, udp_checksum: false, addresses: 0 }
}

const GSO: Gso = Gso { kind: GsoKind::Tcp4, mss: 1000, l3: 14, l4: 34, hdr_len: 66 };

/// The encapsulated segments of a superframe of `payload` bytes received as frame `rx`, to
/// remote `dst`, the IP IDs counting up from 100.
fn segments(rx: u32, payload: usize, gso: Gso, dst: u8) -> Vec<TxAction> {
    let l2_len = gso.hdr_len as usize + payload;
    (0..gso.segments(l2_len))
        .map(|i| TxAction {
            port: PortId::TUNNEL,
            source: TxSource::Rx(rx),
            edit: Edit {
                outer: Some(outer(dst, 100 + i as u16)),
                offload: TxOffload::Segment(gso.segment(l2_len, i)),
                ..Edit::identity(l2_len)
            },
        })
        .collect()
}

fn runs_of(actions: &[TxAction], limits: Limits) -> Vec<usize> {
    runs(actions, limits).map(|r| r.len()).collect()
}

/// The run lengths of `actions` within the kernel's limits.
fn runs_within(actions: &[TxAction]) -> Vec<usize> {
    runs_of(actions, Limits::default())
}

#[test]
fn the_segments_of_one_superframe_are_one_run_however_their_ids_differ() {
    assert_eq!(runs_within(&segments(0, 3500, GSO, 2)), [4]);
}

#[test]
fn two_superframes_back_to_back_are_two_runs() {
    let mut a = segments(0, 3000, GSO, 2);
    a.extend(segments(1, 3000, GSO, 2));
    assert_eq!(runs_within(&a), [3, 3]);
}

#[test]
fn a_shorter_segment_ends_a_run_and_a_lone_segment_stays_alone() {
    // The first superframe's last segment is short: the second's may not follow it.
    let mut a = segments(0, 2500, GSO, 2);
    a.extend(segments(0, 1000, GSO, 2).into_iter().map(|mut s| {
        s.source = TxSource::Rx(1);
        s
    }));
    assert_eq!(runs_within(&a), [3, 1]);
}

#[test]
fn another_remote_or_a_gap_splits_a_run() {
    let mut a = segments(0, 4000, GSO, 2);
    a[2].edit.outer = Some(outer(3, 102));
    assert_eq!(runs_within(&a), [2, 1, 1]);
    let mut b = segments(0, 4000, GSO, 2);
    b.remove(1);
    assert_eq!(runs_within(&b), [1, 2]);
}

#[test]
fn a_run_holds_at_most_the_kernels_64_datagrams() {
    let small = Gso { mss: 88, ..GSO };
    assert_eq!(runs_within(&segments(0, 88 * 70, small, 2)), [64, 6]);
}

#[test]
fn a_run_is_a_frame_of_less_than_64_kib() {
    // Datagrams of 8 + 66 + 1448 bytes: 43 of them and the outer Ethernet, IP and UDP headers
    // make a frame of 65,488 bytes; a 44th would not fit.
    let big = Gso { mss: 1448, ..GSO };
    let r = runs_within(&segments(0, 1448 * 45, big, 2));
    assert_eq!(r, [43, 2]);
    let frame = 42 + 43 * (8 + 66 + 1448);
    assert!(frame <= MAX_FRAME && frame + 8 + 66 + 1448 > MAX_FRAME);
}

#[test]
fn the_cut_where_the_ip_length_fits_and_the_frame_does_not() {
    // 46 datagrams of 1424 bytes: an IP packet of 65,532 bytes in a frame of 65,546, which a
    // device of gso_max_size 65,536 cuts in software (and a direct transmit drops): 45.
    let mss = 1424 - 8 - 66;
    let r = runs_within(&segments(0, mss * 46, Gso { mss: mss as u16, ..GSO }, 2));
    assert_eq!(r, [45, 1]);
}

#[test]
fn a_device_with_lower_gso_limits_gets_smaller_runs() {
    let limits = Limits::of_device(16_384, 8);
    assert_eq!(limits, Limits { frame: 16_383, datagrams: 8 });
    let a = segments(0, 1000 * 20, GSO, 2);
    // 1,074-byte datagrams: 15 to a frame of 16,383 bytes, but 8 at most.
    assert_eq!(runs_of(&a, limits), [8, 8, 4]);
    assert_eq!(Limits::of_device(65_536, 65_535), Limits::default());
    assert_eq!(Limits::of_device(0, 0), Limits { frame: 0, datagrams: 0 });
}

#[test]
fn what_is_not_an_encapsulated_segment_is_no_run() {
    let mut a = segments(0, 3000, GSO, 2);
    a[0].edit.outer = None;
    a[2].edit.offload = TxOffload::None;
    assert_eq!(runs_within(&a), [1, 1, 1]);
}
