#!/bin/bash
# netns.sh up|down: the test namespace. Its own lo keeps the XDP program off
# the host's loopback. route_localnet=1: AF_XDP TX skbs carry no route
# (dst), so the receive path routes them and would drop a 127/8 source as
# martian (drop reason IP_LOCALNET) without it.
case $1 in
up) ip netns add afxdp && ip netns exec afxdp ip link set lo up &&
    ip netns exec afxdp sysctl -qw net.ipv4.conf.lo.route_localnet=1 net.ipv4.conf.all.route_localnet=1 ;;
down) ip netns del afxdp ;;
esac
