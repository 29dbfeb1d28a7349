//! Replays every fuzz corpus (`fuzz/corpus/TARGET/*`) through its target, on stable, in `cargo test`:
//! what the fuzzers found and kept stays a regression test. `scripts/fuzz.sh` runs the fuzzers.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing, missing_docs)]

mod targets;

#[test]
fn every_corpus_replays_without_a_panic() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus");
    let mut total = 0;
    for targets::Target { name, run } in targets::TARGETS {
        let dir = root.join(name);
        let entries: Vec<_> = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())).collect();
        assert!(!entries.is_empty(), "the corpus of `{name}` is empty");
        let mut accepted = 0;
        for entry in entries {
            let path = entry.unwrap().path();
            let data = std::fs::read(&path).unwrap();
            if run(&data) {
                accepted += 1;
            }
            total += 1;
        }
        // Each corpus holds inputs the parser accepts, not only ones it refuses.
        assert!(accepted > 0, "no input of `{name}`'s corpus is accepted");
    }
    eprintln!("{total} corpus inputs replayed");
}
