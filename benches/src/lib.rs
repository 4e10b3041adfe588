//! Benchmarks: the `bench` program (end-to-end figures) lives in `src/bin/bench.rs`.
