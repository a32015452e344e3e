//! Keeps the docs true: the transition table in docs/ARCHITECTURE.md is the one the
//! domain enforces.
#![allow(clippy::unwrap_used)]
#![allow(clippy::arithmetic_side_effects)]

#[test]
fn the_architecture_doc_shows_the_transition_table_the_domain_enforces() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/ARCHITECTURE.md"))
        .unwrap();
    let table = domain::session::status::transition_table_markdown();
    assert!(
        doc.contains(&table),
        "docs/ARCHITECTURE.md must contain exactly this table (regenerate it):\n{table}"
    );
}
