// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * xvtep's XDP steering program. It steers; it does not switch.
 *
 * On a local port every frame goes to the port's AF_XDP socket for its rx queue. On the
 * underlay only UDP over IPv4 or IPv6 to (our VTEP address or one of our multicast groups,
 * dstport) goes to the socket; everything else (ARP, ND, SSH, routing, other UDP) passes to
 * the kernel untouched.
 * Where no socket is bound yet, frames pass to the kernel (bpf_redirect_map's XDP_PASS
 * default), so a starting daemon never black-holes an interface.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/udp.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define MAX_QUEUES 64   /* sockets per interface */
#define MAX_SLOTS 1024  /* interfaces */
#define MAX_GROUPS 16
#define MAX_EXT_HEADERS 4 /* keep in step with wire::ipv6::MAX_EXTENSION_HEADERS */

enum role { ROLE_PORT = 1, ROLE_UNDERLAY = 2 };

struct port_info {
	__u32 slot; /* the interface's index in the socket map, in units of MAX_QUEUES */
	__u32 role;
};

struct steer_config {
	__be32 local;        /* our VTEP address */
	__be16 dstport;      /* VXLAN UDP port */
	__u16 ngroups;
	__be32 groups[MAX_GROUPS];
	__u8 mac[6];         /* the underlay interface's MAC */
	__u8 pad[2];
	/* An IPv6 underlay: our address and groups (all zero over IPv4, which never match). */
	__be32 local6[4];
	__u16 ngroups6;
	__u16 pad6;
	__be32 groups6[MAX_GROUPS][4];
};

/* Counters, per CPU; the loader sums them. Keep in step with `Counter` in lib.rs. */
enum counter {
	C_PORT_REDIRECT,     /* local-port frames sent to a socket */
	C_UNDERLAY_REDIRECT, /* VXLAN frames sent to a socket */
	C_UNDERLAY_PASS,     /* underlay frames left to the kernel (not our VXLAN) */
	C_NO_SOCKET,         /* would redirect, but no socket bound for the queue: passed */
	C_UNKNOWN_IFACE,     /* program attached to an interface it has no entry for: passed */
	C_SINK,              /* frames counted and dropped by xvtep_sink (benchmarks) */
	C_VNET_HELD,         /* frames of vnet ports kept from the kernel's bridge and stack */
	C_TO_HOST,           /* frames handed to a kernel bridge's host stack ([kernel] mode) */
	C_COUNT,
};

struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, MAX_SLOTS * MAX_QUEUES);
	__type(key, __u32);
	__type(value, __u32);
} xsks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_SLOTS);
	__type(key, __u32); /* ifindex */
	__type(value, struct port_info);
} ports SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct steer_config);
} config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, C_COUNT);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

static __always_inline void count(__u32 c)
{
	__u64 *v = bpf_map_lookup_elem(&counters, &c);
	if (v)
		*v += 1;
}

static __always_inline int to_socket(struct xdp_md *ctx, const struct port_info *p, __u32 ok)
{
	__u32 key = p->slot * MAX_QUEUES + ctx->rx_queue_index;
	int action = bpf_redirect_map(&xsks, key, XDP_PASS);
	count(action == XDP_REDIRECT ? ok : C_NO_SOCKET);
	return action;
}

/* Unicast to another MAC is not for us (the kernel would drop it as PACKET_OTHERHOST): XDP
 * runs before that filter, so check here. */
static __always_inline int to_our_mac(const struct ethhdr *eth, const struct steer_config *cfg)
{
	if (eth->h_dest[0] & 1)
		return 1;
	for (int i = 0; i < 6; i++)
		if (eth->h_dest[i] != cfg->mac[i])
			return 0;
	return 1;
}

/* Whether IPv4 `ip` is UDP to (local or a group, dstport). */
static __always_inline int is_our_vxlan4(struct iphdr *ip, void *end, const struct steer_config *cfg)
{
	if ((void *)(ip + 1) > end || ip->protocol != IPPROTO_UDP || ip->ihl < 5)
		return 0;
	int ours = ip->daddr == cfg->local;
	for (int i = 0; i < MAX_GROUPS && !ours; i++)
		if (i < cfg->ngroups && ip->daddr == cfg->groups[i])
			ours = 1;
	if (!ours)
		return 0;
	/* A non-first fragment has no UDP header; the switch drops first fragments (counted). */
	if (ip->frag_off & bpf_htons(0x1fff))
		return 0;
	struct udphdr *udp = (void *)ip + ip->ihl * 4;
	if ((void *)(udp + 1) > end)
		return 0;
	return udp->dest == cfg->dstport;
}

static __always_inline int same6(const struct in6_addr *a, const __be32 *b)
{
	return a->in6_u.u6_addr32[0] == b[0] && a->in6_u.u6_addr32[1] == b[1] &&
	       a->in6_u.u6_addr32[2] == b[2] && a->in6_u.u6_addr32[3] == b[3];
}

/* Whether IPv6 `ip` is UDP to (local6 or a group, dstport), stepping over the extension headers
 * the switch steps over (hop-by-hop, destination options, an exhausted routing header), as
 * wire::ipv6 does. A first fragment of such a datagram is steered too, for the switch to drop
 * and count; anything the walk does not reach the end of is the kernel's. */
static __always_inline int is_our_vxlan6(struct ipv6hdr *ip, void *end, const struct steer_config *cfg)
{
	if ((void *)(ip + 1) > end)
		return 0;
	int ours = same6(&ip->daddr, cfg->local6);
	for (int i = 0; i < MAX_GROUPS && !ours; i++)
		if (i < cfg->ngroups6 && same6(&ip->daddr, cfg->groups6[i]))
			ours = 1;
	if (!ours)
		return 0;
	__u8 next = ip->nexthdr;
	void *at = ip + 1;
	for (int i = 0; i < MAX_EXT_HEADERS + 1; i++) {
		if (next == IPPROTO_UDP) {
			struct udphdr *udp = at;
			if ((void *)(udp + 1) > end)
				return 0;
			return udp->dest == cfg->dstport;
		}
		__u8 *h = at;
		if ((void *)(h + 8) > end)
			return 0;
		if (next == IPPROTO_FRAGMENT) {
			/* Offset 0: the first fragment, which holds the UDP header. */
			if ((h[2] << 8 | h[3]) & 0xfff8)
				return 0;
			at += 8;
		} else if (next == IPPROTO_HOPOPTS || next == IPPROTO_DSTOPTS ||
			   (next == IPPROTO_ROUTING && h[3] == 0)) {
			at += (h[1] + 1) * 8;
		} else {
			return 0;
		}
		next = h[0];
	}
	return 0;
}

/* Whether the frame is VXLAN for us, over IPv4 or IPv6. */
static __always_inline int is_our_vxlan(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	__u32 zero = 0;

	if ((void *)(eth + 1) > end)
		return 0;
	struct steer_config *cfg = bpf_map_lookup_elem(&config, &zero);
	if (!cfg || !to_our_mac(eth, cfg))
		return 0;
	if (eth->h_proto == bpf_htons(ETH_P_IP))
		return is_our_vxlan4((void *)(eth + 1), end, cfg);
	if (eth->h_proto == bpf_htons(ETH_P_IPV6))
		return is_our_vxlan6((void *)(eth + 1), end, cfg);
	return 0;
}

/*
 * Declared for multi-buffer frames (xdp.frags): a jumbo MTU (9000 on the underlay of a VXLAN
 * fabric) is refused to a program without it (a veth allows ≈ 3.5 KB). The headers it reads
 * are all in the first buffer; the sockets take the rest as a chain (XDP_USE_SG).
 */
SEC("xdp.frags")
int xvtep_steer(struct xdp_md *ctx)
{
	__u32 ifindex = ctx->ingress_ifindex;
	struct port_info *p = bpf_map_lookup_elem(&ports, &ifindex);

	if (!p) {
		count(C_UNKNOWN_IFACE);
		return XDP_PASS;
	}
	if (p->role == ROLE_PORT)
		return to_socket(ctx, p, C_PORT_REDIRECT);
	if (is_our_vxlan(ctx))
		return to_socket(ctx, p, C_UNDERLAY_REDIRECT);
	count(C_UNDERLAY_PASS);
	return XDP_PASS;
}

/*
 * The benchmark's sink: counts every frame and drops it at once, so that what a device under
 * test sends costs the receiving side the same, whoever sent it. Declared for multi-buffer
 * frames (it reads none of them): a veth refuses a program that is not once its peer's MTU
 * is above about 3.5 KB, and the bench measures jumbo frames.
 */
SEC("xdp.frags")
int xvtep_sink(struct xdp_md *ctx)
{
	count(C_SINK);
	return XDP_DROP;
}

/*
 * The benchmark's generator, run with BPF_PROG_RUN and BPF_F_TEST_XDP_LIVE_FRAMES on the
 * generator's CPU: every run redirects the prebuilt frame out of `ifindex` (a veth, whose peer
 * receives it through ndo_xdp_xmit, as from a NIC), so no skb is built on the sending side.
 * With a rate set, runs that come before their time are dropped, so frames leave evenly spaced.
 * Frame number n belongs to flow n % flows: each patch sets a 16-bit big-endian field to
 * base + flow and fixes the checksum covering it incrementally (RFC 1624), because live-frame
 * pages are recycled without being rewritten from the original.
 */
#define GEN_PATCHES 4

struct gen_patch {
	__u16 field;  /* offset of the field in the frame */
	__u16 csum;   /* offset of the checksum covering it; 0 = none (or a zero UDP checksum) */
	__u16 base;   /* the field's value for flow 0, host order */
	__u16 pad;
};

struct gen_config {
	__u32 ifindex;
	__u16 flows;
	__u16 npatches;
	struct gen_patch patches[GEN_PATCHES];
	__u64 interval_ns; /* pacing: at most one frame per interval; 0 = as fast as possible */
	__u64 next_ns;     /* when the next frame may go */
	__u64 seq;         /* frames generated so far; one CPU runs the generator */
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct gen_config);
} gen SEC(".maps");

static __always_inline void patch16(void *data, void *end, const struct gen_patch *p, __u16 value)
{
	__u16 *field = data + (p->field & 0x7ff);
	if ((void *)(field + 1) > end)
		return;
	__u16 old = *field, new = bpf_htons(value);
	*field = new;
	if (!p->csum)
		return;
	__u16 *csum = data + (p->csum & 0x7ff);
	if ((void *)(csum + 1) > end || *csum == 0)
		return;
	/* HC' = ~(~HC + ~m + m') */
	__u32 sum = (__u16)~*csum + (__u16)~old + new;
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	__u16 out = ~sum;
	*csum = out ? out : 0xffff;
}

SEC("xdp")
int xvtep_gen(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	__u32 zero = 0;
	struct gen_config *cfg = bpf_map_lookup_elem(&gen, &zero);

	if (!cfg)
		return XDP_ABORTED;
	if (cfg->interval_ns) {
		/* Paced: a run that comes early is dropped here, before it costs anyone anything. A
		 * stall does not earn a burst: the schedule restarts from now. */
		__u64 now = bpf_ktime_get_ns();
		if (now < cfg->next_ns)
			return XDP_DROP;
		if (cfg->next_ns + 64 * cfg->interval_ns < now)
			cfg->next_ns = now;
		cfg->next_ns += cfg->interval_ns;
	}
	__u16 flow = cfg->flows ? cfg->seq % cfg->flows : 0;
	cfg->seq++;
	for (int i = 0; i < GEN_PATCHES; i++)
		if (i < cfg->npatches)
			patch16(data, end, &cfg->patches[i], cfg->patches[i].base + flow);
	return bpf_redirect(cfg->ifindex, 0);
}

/*
 * On a vnet port (AF_PACKET with virtio-net headers, no XDP so that the peer keeps its GSO):
 * the packet socket has its copy already (packet taps run before tc ingress), so the frame is
 * dropped here, before the kernel's bridge or IP stack can act on it too. Attached with tcx,
 * the program goes with the daemon's file descriptors, and the kernel forwards again.
 */
#define XVTEP_TC_ACT_SHOT 2
SEC("tcx/ingress")
int xvtep_vnet_hold(struct __sk_buff *skb)
{
	count(C_VNET_HELD);
	return XVTEP_TC_ACT_SHOT;
}

/*
 * The host's side of a kernel bridge's internal port ([kernel] mode): what the switch sends
 * into the conduit veth (a frame to the bridge's own MAC, a broadcast) is handed to the
 * bridge device's ingress, so that the host's stack receives it as received on the bridge,
 * and the bridge does not forward it again (it was switched already).
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_SLOTS);
	__type(key, __u32);   /* the conduit's ifindex */
	__type(value, __u32); /* the bridge's ifindex */
} host_redirect SEC(".maps");

#define XVTEP_TC_ACT_OK 0
SEC("tcx/ingress")
int xvtep_to_host(struct __sk_buff *skb)
{
	__u32 ifindex = skb->ifindex;
	__u32 *bridge = bpf_map_lookup_elem(&host_redirect, &ifindex);

	if (!bridge)
		return XVTEP_TC_ACT_OK;
	count(C_TO_HOST);
	return bpf_redirect(*bridge, BPF_F_INGRESS);
}

/*
 * Kernels without tcx (before 6.6): the two programs above are reached from a tc clsact filter
 * (cls_bpf, direct action) through these stubs and a tail call into `tc_jump`. A filter is not
 * a bpf_link and outlives the daemon, but the kernel empties a program array when the last
 * file descriptor of it closes (even at SIGKILL): the tail call then fails and the stub
 * passes every frame to the kernel, so a dead daemon's leftover filter never black-holes a
 * port. A starting daemon replaces the filters of its ports; an exiting one removes them.
 * The stubs are of the same type and attach type as their targets, as tail calls require.
 */
#define TC_JUMP_HOLD 0
#define TC_JUMP_TO_HOST 1
struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u32);
} tc_jump SEC(".maps");

SEC("tcx/ingress")
int xvtep_tc_hold(struct __sk_buff *skb)
{
	bpf_tail_call(skb, &tc_jump, TC_JUMP_HOLD);
	return XVTEP_TC_ACT_OK;
}

SEC("tcx/ingress")
int xvtep_tc_host(struct __sk_buff *skb)
{
	bpf_tail_call(skb, &tc_jump, TC_JUMP_TO_HOST);
	return XVTEP_TC_ACT_OK;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
