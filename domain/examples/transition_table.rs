//! Prints the session transition table as Markdown (pasted into docs/ARCHITECTURE.md;
//! `tests/docs.rs` fails when the two differ).
#![allow(clippy::print_stdout)]

fn main() {
    print!("{}", domain::session::status::transition_table_markdown());
}
