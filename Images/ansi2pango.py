#!/usr/bin/env python3
"""Turns a tmux `capture-pane -p -e` dump (text with ANSI SGR colour codes)
on stdin into Pango markup on stdout, for ImageMagick's `pango:` reader.
Used only by Images/retake.sh."""
import html
import re
import sys

COLOURS = {0: "#2e3436", 1: "#cc0000", 2: "#4e9a06", 3: "#c4a000", 4: "#3465a4",
           5: "#75507b", 6: "#06989a", 7: "#d3d7cf"}
BRIGHT = {0: "#555753", 1: "#ef2929", 2: "#8ae234", 3: "#fce94f", 4: "#729fcf",
          5: "#ad7fa8", 6: "#34e2e2", 7: "#eeeeec"}
DEFAULT_FG = "#eeeeec"

def main():
    text = sys.stdin.read()
    out, fg, bold, dim = [], None, False, False
    pos = 0
    for m in re.finditer(r"\x1b\[([0-9;]*)m", text):
        out.append(span(text[pos:m.start()], fg, bold, dim))
        pos = m.end()
        codes = [int(c) for c in m.group(1).split(";") if c] or [0]
        for c in codes:
            if c == 0:
                fg, bold, dim = None, False, False
            elif c == 1:
                bold = True
            elif c == 2:
                dim = True
            elif c == 22:
                bold = dim = False
            elif 30 <= c <= 37:
                fg = COLOURS[c - 30]
            elif 90 <= c <= 97:
                fg = BRIGHT[c - 90]
            elif c == 39:
                fg = None
    out.append(span(text[pos:], fg, bold, dim))
    sys.stdout.write("".join(out))

def span(chunk, fg, bold, dim):
    chunk = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", chunk)
    if not chunk:
        return ""
    attrs = [f'foreground="{fg or DEFAULT_FG}"']
    if bold:
        attrs.append('weight="bold"')
    if dim:
        attrs.append('alpha="60%"')
    return f"<span {' '.join(attrs)}>{html.escape(chunk)}</span>"

main()
