//! Replays the fuzz target's checked-in corpus (fuzz/corpus/client_bytes: hand-written seeds
//! plus the inputs the fuzzer kept for new coverage) through the same check the fuzz target
//! runs, so every input that ever mattered stays covered by the normal test command.

use std::path::Path;

use throng::net::inbound_check::{Outcome, check_client_bytes};

fn corpus() -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/client_bytes");
    let mut inputs: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&path).unwrap())
        })
        .collect();
    inputs.sort();
    inputs
}

#[test]
fn every_corpus_input_passes_the_inbound_check() {
    let inputs = corpus();
    assert!(inputs.len() > 100, "the corpus is checked in");
    for (name, bytes) in &inputs {
        let outcome = std::panic::catch_unwind(|| check_client_bytes(bytes));
        assert!(
            outcome.is_ok(),
            "corpus input {name} fails the inbound check"
        );
    }
}

#[test]
fn the_hand_written_seeds_have_their_documented_outcomes() {
    let inputs = corpus();
    let outcome = |seed: &str| {
        let (_, bytes) = inputs
            .iter()
            .find(|(name, _)| name == seed)
            .unwrap_or_else(|| panic!("seed {seed} is in the corpus"));
        check_client_bytes(bytes)
    };
    let accepted = |accepted| Outcome {
        accepted,
        refused: false,
    };
    let refused_after = |accepted| Outcome {
        accepted,
        refused: true,
    };
    assert_eq!(
        outcome("session"),
        accepted(13),
        "Hello, 10 inputs, Ping, Goodbye"
    );
    assert_eq!(outcome("split_by_one"), accepted(2));
    assert_eq!(outcome("overlong_varint"), accepted(1));
    for refused in [
        "oversize",
        "unknown_type",
        "bad_utf8_name",
        "trailing",
        "empty_body",
        "truncated_varint",
    ] {
        assert_eq!(outcome(refused), refused_after(0), "{refused}");
    }
}
