//! The documents keep their word: every test `docs/security.md` names next
//! to a promise exists, in the file it names, and the README stays short.

use std::collections::BTreeSet;

/// `(file, test)` for each test named in a row of the promises table: a
/// cell lists `file.rs`: `test`, `test`; `other.rs`: …
fn named_tests(doc: &str) -> Vec<(String, String)> {
    let mut named = Vec::new();
    for row in doc.lines().filter(|l| l.starts_with("| **")) {
        let cell = row.trim_end_matches('|').rsplit('|').next().unwrap_or("");
        let mut file = None;
        for (i, piece) in cell.split('`').enumerate() {
            if i % 2 == 0 {
                continue;
            }
            if piece.ends_with(".rs") {
                file = Some(piece.to_string());
            } else if let Some(file) = &file {
                named.push((file.clone(), piece.to_string()));
            }
        }
    }
    named
}

#[test]
fn every_test_named_in_the_security_document_exists() {
    let root = env!("CARGO_MANIFEST_DIR");
    let doc = std::fs::read_to_string(format!("{root}/docs/security.md")).unwrap();
    let named = named_tests(&doc);
    assert!(
        named.len() > 20,
        "the table names only {} tests",
        named.len()
    );
    let mut missing = BTreeSet::new();
    for (file, test) in &named {
        // A bare file name is in tests/; a path is from the root.
        let path = if file.contains('/') {
            format!("{root}/{file}")
        } else {
            format!("{root}/tests/{file}")
        };
        let source = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        if !source.contains(&format!("fn {test}(")) {
            missing.insert(format!("{file}: {test}"));
        }
    }
    assert!(missing.is_empty(), "named but not found: {missing:#?}");
}

/// The README is a doorway (STYLE.md, 18): what it is, requirements, the
/// quick start, the six steps, two machines, commands and keys, options in
/// brief. Everything else lives in docs/, so the README stays short enough
/// to read before the first chat.
#[test]
fn the_readme_is_at_most_250_lines() {
    const MOST: usize = 250;
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let lines = readme.lines().count();
    assert!(
        lines <= MOST,
        "README.md has {lines} lines, more than {MOST}: move the detail to docs/"
    );
}
