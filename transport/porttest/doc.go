// Package porttest hands tests TCP ports on 127.0.0.1 that stay theirs
// while a listener on them is stopped and started again: a cluster node
// killed with -9 and restarted on the same --cluster-listen, a NATS server
// brought back on its route port.
//
// A port the kernel picks for ":0" lies in the ephemeral range
// (net.ipv4.ip_local_port_range), the same range every outgoing connection
// on the machine takes its local port from; between a kill and a restart,
// any process's dial may land on it and the restart fails with "address
// already in use". porttest picks from below that range instead, where only
// an explicit bind can take a port.
//
// It must never be imported by non-test code, never hand out a port it did
// not just bind on 127.0.0.1 and on all interfaces, and never hand out
// overlapping blocks in one call. Ports are drawn at random, so two test
// processes rarely pick the same one; binding it at once is still the
// caller's job.
package porttest
