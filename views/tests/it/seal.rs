//! Sealed files (`seal.rs`): opened only with their key and path; a flipped, cut or extended
//! file refused, naming it; keys are 32 bytes of base64 and never printed.

use base64::Engine as _;
use dartmouth_views::seal::{Sealer, SnapshotKey};

const PIECE: usize = 1 << 20;
const TAG: usize = 16;

fn key(b: u8) -> SnapshotKey {
    SnapshotKey::parse(&base64::engine::general_purpose::STANDARD.encode([b; 32])).unwrap()
}

#[test]
fn a_sealed_file_opens_with_its_key_and_path_only() {
    let dir = tempfile::tempdir().unwrap();
    for len in [0, 1, PIECE - 1, PIECE, PIECE + 1, 2 * PIECE + 17] {
        let data: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
        let path = dir.path().join("f");
        std::fs::write(&path, &data).unwrap();
        let (sealer, sealing) = Sealer::new(&key(1)).unwrap();
        sealer.seal_file(&path, "store/a.jsonl").unwrap();
        let sealed = std::fs::read(&path).unwrap();
        assert_eq!(
            sealed.len(),
            8 + len + TAG * (len / PIECE + usize::from(len % PIECE != 0 || len == 0)).max(1)
        );
        if len > 64 {
            assert!(
                !sealed.windows(64).any(|w| w == &data[..64]),
                "plain text left"
            );
        }
        let opened = Sealer::open(&key(1), &sealing, "s").unwrap();
        assert_eq!(opened.open_bytes(&path, "store/a.jsonl").unwrap(), data);
        // Another path's key cannot open it.
        assert!(opened.open_bytes(&path, "store/b.jsonl").is_err());
        // A wrong key is told apart.
        let e = Sealer::open(&key(2), &sealing, "s")
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("not the key"), "{e}");
    }
}

#[test]
fn a_flipped_cut_or_extended_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    let data = vec![7u8; PIECE + 100];
    std::fs::write(&path, &data).unwrap();
    let (sealer, _) = Sealer::new(&key(3)).unwrap();
    sealer.seal_file(&path, "x").unwrap();
    let sealed = std::fs::read(&path).unwrap();
    let mut cases: Vec<Vec<u8>> = Vec::new();
    for at in [0, 9, 8 + PIECE / 2, sealed.len() - 1] {
        let mut b = sealed.clone();
        b[at] ^= 1;
        cases.push(b);
    }
    // The last piece dropped: the first is not marked last.
    cases.push(sealed[..8 + PIECE + TAG].to_vec());
    cases.push([sealed.as_slice(), &[0u8; 20]].concat());
    for (i, bytes) in cases.iter().enumerate() {
        std::fs::write(&path, bytes).unwrap();
        let e = sealer.open_bytes(&path, "x").err().map(|e| e.to_string());
        assert!(
            e.as_deref()
                .is_some_and(|e| e.contains("x: the snapshot's file is damaged")),
            "case {i}: {e:?}"
        );
    }
}

#[test]
fn keys_are_32_bytes_of_base64() {
    let b64 = base64::engine::general_purpose::STANDARD;
    assert!(SnapshotKey::parse(&b64.encode([1u8; 32])).is_ok());
    assert!(
        SnapshotKey::parse(&b64.encode([1u8; 16]))
            .unwrap_err()
            .contains("16 bytes")
    );
    assert!(
        SnapshotKey::parse("not base64!")
            .unwrap_err()
            .contains("not base64")
    );
    assert_eq!(format!("{:?}", key(9)), "SnapshotKey(…)");
}
