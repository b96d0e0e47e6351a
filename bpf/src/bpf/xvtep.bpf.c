// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * xvtep's XDP steering program. It steers; it does not switch.
 *
 * On a local port every frame goes to the port's AF_XDP socket for its rx queue. On the
 * underlay only IPv4 UDP to (our VTEP address or one of our multicast groups, dstport) goes to
 * the socket; everything else (ARP, SSH, routing, other UDP) passes to the kernel untouched.
 * Where no socket is bound yet, frames pass to the kernel (bpf_redirect_map's XDP_PASS
 * default), so a starting daemon never black-holes an interface.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/udp.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define MAX_QUEUES 64   /* sockets per interface */
#define MAX_SLOTS 1024  /* interfaces */
#define MAX_GROUPS 16

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

/* Whether the frame is IPv4 UDP to (local or a group, dstport). */
static __always_inline int is_our_vxlan(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = data + sizeof(*eth);
	__u32 zero = 0;

	if ((void *)(ip + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP))
		return 0;
	if (ip->protocol != IPPROTO_UDP || ip->ihl < 5)
		return 0;
	struct steer_config *cfg = bpf_map_lookup_elem(&config, &zero);
	if (!cfg)
		return 0;
	/* Unicast to another MAC is not for us (the kernel would drop it as PACKET_OTHERHOST):
	 * XDP runs before that filter, so check here. */
	if (!(eth->h_dest[0] & 1)) {
		for (int i = 0; i < 6; i++)
			if (eth->h_dest[i] != cfg->mac[i])
				return 0;
	}
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

SEC("xdp")
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
 * test sends costs the receiving side the same, whoever sent it.
 */
SEC("xdp")
int xvtep_sink(struct xdp_md *ctx)
{
	count(C_SINK);
	return XDP_DROP;
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

char LICENSE[] SEC("license") = "Dual BSD/GPL";
