#!/usr/bin/env bash
# Prints this machine's IP addresses that a peer could use to reach it, one a
# line, the preferred first: global (public) addresses, then private ones,
# IPv4 before IPv6 within each; link-local ones (usable only on one link)
# next, IPv6 ones with their %interface, since without it they mean nothing;
# loopback last. Works offline: it only asks the kernel (ip, else hostname -I,
# else ifconfig; those two cannot name the interface, so link-local IPv6
# addresses are left out there). A note on stderr says how to learn the
# public address of a machine behind NAT (a cloud VM), which no interface has.
set -u

addresses() {
  if command -v ip >/dev/null 2>&1; then
    # "2: eth0    inet6 fe80::1/64 scope link" -> fe80::1%eth0
    ip -o addr show 2>/dev/null | awk '{
      split($4, a, "/"); addr = a[1]
      if (addr ~ /^fe80:/) addr = addr "%" $2
      print addr
    }'
  elif hostname -I >/dev/null 2>&1; then
    hostname -I | tr ' ' '\n' | grep -iv '^fe80:'
  elif command -v ifconfig >/dev/null 2>&1; then
    ifconfig 2>/dev/null | awk '/inet6? /{print $2}' | sed 's/^addr://' | grep -iv '^fe80:'
  fi
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

found=$(addresses | grep -v '^$' | sort -u | while read -r a; do
  echo "$(rank "$a") $a"
done | sort -n -s -k1,1 | awk '{print $2}')

public_note() {
  cat >&2 <<'NOTE'
showip: behind NAT (a cloud VM, a home router) the public address is on no
interface here. Learn it from the provider's console, or `curl -4 ifconfig.me`
(asks an outside service). The p2pchat server's log shows the address it sees
each chat come from ("ann joined from 198.51.100.7:53122").
NOTE
}

if [ -z "$found" ] || [ -z "$(echo "$found" | grep -v -e '^127\.' -e '^::1$')" ]; then
  echo "showip: no network address found besides loopback; peers on other machines cannot reach this one" >&2
  [ -n "$found" ] && echo "$found"
  exit 1
fi
echo "$found"
# Only private, link-local or loopback addresses: say where the public one is.
if [ -z "$(echo "$found" | while read -r a; do [ "$(rank "$a")" -le 1 ] && echo "$a"; done)" ]; then
  public_note
fi
