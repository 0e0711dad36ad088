#!/usr/bin/env bash
# Prints this machine's IP addresses that a peer could use to reach it, one a
# line, each labelled for a person choosing which to give out:
#
#   reach me first: 192.168.1.20         the one others most likely reach
#   also: 10.0.0.5                       the others, in the order to try them
#   link-local (eth0 only): fe80::1%eth0 usable only on that interface's link
#   this machine only: 127.0.0.1         loopback, for chats on this machine
#
# The order: global (public) addresses, then private ones, IPv4 before IPv6
# within each, and among equals the address this machine's default route
# leaves from; then link-local ones (IPv6 with their %interface, since
# without it they mean nothing); loopback last. Works offline: it only asks
# the kernel (ip, else hostname -I, else ifconfig; those two cannot name the
# interface, so link-local IPv6 addresses are left out there), and `ip route
# get` looks a route up without sending anything. A note on stderr says how
# to learn the public address of a machine behind NAT (a cloud VM), which no
# interface has.
set -u

# One "ADDRESS INTERFACE" a line; the interface is "-" where it is unknown.
addresses() {
  if command -v ip >/dev/null 2>&1; then
    # "2: eth0    inet6 fe80::1/64 scope link" -> "fe80::1%eth0 eth0"
    ip -o addr show 2>/dev/null | awk '{
      split($4, a, "/"); addr = a[1]
      if (addr ~ /^fe80:/) addr = addr "%" $2
      print addr, $2
    }'
  elif hostname -I >/dev/null 2>&1; then
    hostname -I | tr ' ' '\n' | grep -v '^$' | grep -iv '^fe80:' | sed 's/$/ -/'
  elif command -v ifconfig >/dev/null 2>&1; then
    ifconfig 2>/dev/null | awk '/inet6? /{print $2}' | sed 's/^addr://' | grep -iv '^fe80:' | sed 's/$/ -/'
  fi
}

# The source addresses of the default routes, IPv4 and IPv6: what a peer on
# another network sees this machine come from. Nothing when offline.
route_sources() {
  command -v ip >/dev/null 2>&1 || return 0
  { ip route get 1.1.1.1; ip -6 route get 2606:4700:4700::1111; } 2>/dev/null |
    awk '{ for (i = 1; i < NF; i++) if ($i == "src") print $(i + 1) }'
}

# Rank: 0 public IPv4, 1 public IPv6, 2 private IPv4, 3 private/ULA IPv6,
# 4 link-local (usable only on one link), 5 loopback.
rank() {
  case "$1" in
    127.*|::1) echo 5 ;;
    169.254.*|fe80:*) echo 4 ;;
    10.*|192.168.*|172.1[6-9].*|172.2[0-9].*|172.3[01].*|100.6[4-9].*|100.[7-9][0-9].*|100.1[01][0-9].*|100.12[0-7].*) echo 2 ;;
    fc*|fd*) echo 3 ;;
    *:*) echo 1 ;;
    *) echo 0 ;;
  esac
}

sources=$(route_sources)

# "RANK ROUTED ADDRESS INTERFACE", best first; ROUTED is 0 for a default
# route's source, so it leads the addresses of its rank.
found=$(addresses | grep -v '^ *$' | sort -u | while read -r a iface; do
  routed=1
  if printf '%s\n' "$sources" | grep -qxF -- "$a"; then routed=0; fi
  echo "$(rank "$a") $routed $a ${iface:--}"
done | sort -s -n -k1,1 -k2,2)

label() {
  local first=yes
  while read -r r _ a iface; do
    case "$r" in
      5) echo "this machine only: $a" ;;
      4) if [ "$iface" = - ]; then
           echo "link-local (one link only): $a"
         else
           echo "link-local ($iface only): $a"
         fi ;;
      *) if [ "$first" = yes ]; then
           echo "reach me first: $a"; first=no
         else
           echo "also: $a"
         fi ;;
    esac
  done
}

public_note() {
  cat >&2 <<'NOTE'
showip: behind NAT (a cloud VM, a home router) the public address is on no
interface here. Learn it from the provider's console, or `curl -4 ifconfig.me`
(asks an outside service). The p2pchat server's log shows the address it sees
each chat come from ("ann joined from 198.51.100.7:53122").
NOTE
}

if [ -z "$found" ] || ! echo "$found" | grep -qv '^5 '; then
  echo "showip: no network address found besides loopback; peers on other machines cannot reach this one" >&2
  [ -n "$found" ] && echo "$found" | label
  exit 1
fi
echo "$found" | label
# Only private, link-local or loopback addresses: say where the public one is.
if ! echo "$found" | grep -q '^[01] '; then
  public_note
fi
