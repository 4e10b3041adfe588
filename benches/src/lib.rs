//! Benchmarks for Dartmouth Knowledge: the end-to-end `bench` program (`src/bin/bench.rs`) and the
//! criterion micro-benchmarks (`benches/micro.rs`). `scripts/bench.sh` runs both.
