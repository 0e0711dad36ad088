#!/usr/bin/env bash
# Prints this machine's IP addresses that a peer could use to reach it, one a
# line, the preferred first: global (public) addresses, then private ones,
# IPv4 before IPv6 within each; loopback last. Works offline: it only asks
# the kernel (ip, else hostname -I, else ifconfig).
set -u

addresses() {
  if command -v ip >/dev/null 2>&1; then
    ip -o addr show 2>/dev/null | awk '{print $4}' | cut -d/ -f1
  elif hostname -I >/dev/null 2>&1; then
    hostname -I | tr ' ' '\n'
  elif command -v ifconfig >/dev/null 2>&1; then
    ifconfig 2>/dev/null | awk '/inet6? /{print $2}' | sed 's/^addr://'
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

if [ -z "$found" ] || [ -z "$(echo "$found" | grep -v -e '^127\.' -e '^::1$')" ]; then
  echo "showip: no network address found besides loopback; peers on other machines cannot reach this one" >&2
  [ -n "$found" ] && echo "$found"
  exit 1
fi
echo "$found"
