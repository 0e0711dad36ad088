#!/usr/bin/env bash
# Retakes the screenshots in Images/ from the real release binaries: a server
# and four peers, each in its own tmux session, driven with send-keys, read
# back with capture-pane, and rendered to PNG with ImageMagick (pango). Only
# what the program printed is in them: every line typed is one a person
# would type at that point. Panes are stacked, so each picture stays legible
# at README width (about 580 px).
# Needs: tmux, imagemagick with its pango coder (Debian: imagemagick and
# libmagickcore-6.q16-6-extra), python3. Uses loopback port 7790 only.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
bin=${CARGO_TARGET_DIR:-$PWD/target}/release
out=$PWD/Images
port=7790
cols=62
rows=16
sessions=(shot-server shot-alice shot-bob shot-carol shot-dave shot-erin)
# The real ImageMagick, not a stand-in earlier on the PATH.
convert=/usr/bin/convert
[ -x "$convert" ] || convert=$(command -v convert)

cleanup() { for s in "${sessions[@]}"; do tmux kill-session -t "$s" 2>/dev/null || true; done; }
trap cleanup EXIT
cleanup

start() { # name command
  # No config file of the person running this may change what is shown.
  tmux new-session -d -s "$1" -x "$cols" -y "$rows" -e PS1='$ ' -e TERM=xterm-256color \
    -e XDG_CONFIG_HOME=/nonexistent "bash --norc"
  tmux send-keys -t "$1" "clear; $2" Enter
}
type_line() { tmux send-keys -t "$1" -l "$2"; tmux send-keys -t "$1" Enter; }
# Waits (at most 10 s) until the pane shows $2.
wait_for() {
  for _ in $(seq 100); do
    tmux capture-pane -p -t "$1" | grep -qF -- "$2" && return 0
    sleep 0.1
  done
  echo "retake.sh: $1 never showed: $2" >&2; tmux capture-pane -p -t "$1" >&2; exit 1
}
# Waits (at most 10 s) until the pane no longer shows $2.
wait_gone() {
  for _ in $(seq 100); do
    tmux capture-pane -p -t "$1" | grep -qF -- "$2" || return 0
    sleep 0.1
  done
  echo "retake.sh: $1 still shows: $2" >&2; exit 1
}
# Renders the panes given as arguments, one above the other, into $out/$1.
render() {
  local file=$1; shift
  local tiles=()
  # Every pane first, then the slow rendering: one moment in all of them.
  for s in "$@"; do tmux capture-pane -p -e -t "$s" > "/tmp/$s.ansi"; done
  for s in "$@"; do
    local title=${s#shot-}
    {
      printf '<span foreground="#fce94f" weight="bold">── %s ──</span>\n' "$title"
      python3 "$out/ansi2pango.py" < "/tmp/$s.ansi"
    } > "/tmp/$s.pango"
    "$convert" -background '#1e1e1e' -size "$((cols * 9 + 20))x" \
      "pango:<span font=\"DejaVu Sans Mono 11\">$(cat "/tmp/$s.pango")</span>" \
      -bordercolor '#1e1e1e' -border 10 "/tmp/$s.png"
    tiles+=("/tmp/$s.png")
  done
  "$convert" "${tiles[@]}" -background '#444444' -splice 0x4 -append -chop 0x4 "$out/$file"
  echo "wrote Images/$file"
}

# Relayed files go at 3 MB/s, so that a transfer lasts long enough to be seen.
start shot-server "$bin/server --listen 127.0.0.1:$port --relay-file-rate 3000000"
wait_for shot-server "listening on"
start shot-alice "$bin/chat --server 127.0.0.1:$port"
wait_for shot-alice "your name:"
type_line shot-alice alice
wait_for shot-alice "connect to:"
start shot-bob "$bin/chat --server 127.0.0.1:$port"
wait_for shot-bob "your name:"
type_line shot-bob bob
wait_for shot-bob "connect to:"
wait_for shot-alice "bob is online."

# Presence: carol sits at the list while the others come and go.
start shot-carol "$bin/chat --server 127.0.0.1:$port --name carol"
wait_for shot-carol "connect to:"

# bob calls alice: it rings on her side until she answers, both prompts
# counting the ring down.
type_line shot-bob alice
wait_for shot-alice "bob is calling: y to answer"
wait_for shot-bob "Ringing alice"
wait_for shot-alice "bob is calling (26 s): y/n?"
render ring.png shot-bob shot-alice
type_line shot-alice yes
wait_for shot-alice "bob connected"
wait_for shot-carol "is busy."
# The chat: a line long enough to wrap at spaces, its second row indented
# under its text; an action; and bob typing, told in alice's prompt row.
type_line shot-bob "hi alice! ready for the demo?"
wait_for shot-alice "hi alice"
type_line shot-alice "hello bob, all set ✓"
wait_for shot-bob "all set"
type_line shot-bob "great: the slides are at https://example.org/p2pchat/demo and the notes beside them"
wait_for shot-alice "the notes beside them"
type_line shot-alice "/me waves"
wait_for shot-bob "* alice waves"
tmux send-keys -t shot-bob -l "see you in five"
wait_for shot-alice "bob is typing…"
render chat.png shot-alice shot-bob
tmux send-keys -t shot-bob C-u

# dave joins and tries bob, who is busy: refused, and bob hears of it later.
start shot-dave "$bin/chat --server 127.0.0.1:$port --name dave"
wait_for shot-dave "connect to:"
wait_for shot-carol "dave is online."
type_line shot-dave bob
wait_for shot-dave "bob is busy in another chat."
render presence.png shot-carol shot-dave

type_line shot-alice q
wait_for shot-bob "alice left the chat"
wait_for shot-bob "dave tried to call you at"
wait_for shot-bob "Online users (4)"
wait_for shot-carol "is free."
render after-q.png shot-alice shot-bob

# A file: erin can only be reached through the relay; carol calls her and
# sends a report, which erin takes with y; its row shows at the right of
# erin's prompt while carol's lines still arrive.
files=/tmp/shots; rm -rf "$files"; mkdir -p "$files"
trap 'cleanup; rm -rf "$files"' EXIT
mkdir "$files/in"
head -c 60000000 /dev/urandom > "$files/report.pdf"
# Wider panes here: a transfer's row takes the right of the prompt's row.
cols=80
tmux resize-window -t shot-carol -x "$cols"
start shot-erin "$bin/chat --server 127.0.0.1:$port --name erin --advertise 127.0.0.1:1 --downloads $files/in"
wait_for shot-erin "connect to:"
type_line shot-carol erin
wait_for shot-erin "carol is calling"
type_line shot-erin y
wait_for shot-carol "Connected to erin (relayed"
type_line shot-carol "/send $files/report.pdf"
wait_for shot-erin "/accept or /refuse (y or n)"
type_line shot-erin y
wait_for shot-erin "receiving report.pdf"
type_line shot-carol "the charts are on page 4"
wait_for shot-erin "the charts are on page 4"
wait_for shot-erin "%  "
# erin's y answered the offer; the typing note it raised is gone a second
# later.
wait_gone shot-carol "erin is typing"
render files.png shot-carol shot-erin
type_line shot-erin "/cancel"
wait_for shot-carol "erin cancelled report.pdf"
