#!/usr/bin/env bash
# Retakes the screenshots in Images/ from the real release binaries: a server
# and three peers, each in its own tmux session, driven with send-keys, read
# back with capture-pane, and rendered to PNG with ImageMagick (pango).
# Needs: tmux, imagemagick, python3. Uses loopback port 7790 only.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
bin=$PWD/target/release
out=$PWD/Images
port=7790
cols=64
rows=17
sessions=(shot-server shot-alice shot-bob shot-carol)

cleanup() { for s in "${sessions[@]}"; do tmux kill-session -t "$s" 2>/dev/null || true; done; }
trap cleanup EXIT
cleanup

start() { # name command
  tmux new-session -d -s "$1" -x "$cols" -y "$rows" -e PS1='$ ' -e TERM=xterm-256color "bash --norc"
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
# Renders the panes given as arguments side by side into $out/$1.
render() {
  local file=$1; shift
  local tiles=()
  for s in "$@"; do
    local title=${s#shot-}
    tmux capture-pane -p -e -t "$s" > "/tmp/$s.ansi"
    {
      printf '<span foreground="#fce94f" weight="bold">── %s ──</span>\n' "$title"
      python3 "$out/ansi2pango.py" < "/tmp/$s.ansi"
    } > "/tmp/$s.pango"
    convert -background '#1e1e1e' -size "$((cols * 9 + 20))x" \
      "pango:<span font=\"DejaVu Sans Mono 11\">$(cat "/tmp/$s.pango")</span>" \
      -bordercolor '#1e1e1e' -border 10 "/tmp/$s.png"
    tiles+=("/tmp/$s.png")
  done
  convert "${tiles[@]}" -background '#444444' -splice 4x0 +append -chop 4x0 "$out/$file"
  echo "wrote Images/$file"
}

start shot-server "$bin/server --listen 127.0.0.1:$port"
wait_for shot-server "listening on"
start shot-alice "$bin/chat --server 127.0.0.1:$port"
wait_for shot-alice "your name:"
type_line shot-alice alice
wait_for shot-alice "connect to:"
start shot-bob "$bin/chat --server 127.0.0.1:$port"
wait_for shot-bob "your name:"
type_line shot-bob bob
wait_for shot-bob "connect to:"
type_line shot-bob alice
wait_for shot-alice "bob connected"
type_line shot-bob "hi alice! ready for the demo?"
wait_for shot-alice "hi alice"
type_line shot-alice "hello bob, all set"
wait_for shot-bob "all set"

start shot-carol "$bin/chat --server 127.0.0.1:$port --name carol"
wait_for shot-carol "connect to:"
type_line shot-carol bob
wait_for shot-carol "busy in another chat"
type_line shot-bob "carol tried to call me just now"
wait_for shot-alice "carol tried"
render chat.png shot-server shot-alice shot-bob
render busy.png shot-carol shot-bob

type_line shot-alice q
wait_for shot-bob "alice left the chat"
wait_for shot-bob "Online users (3)"
render after-q.png shot-alice shot-bob
