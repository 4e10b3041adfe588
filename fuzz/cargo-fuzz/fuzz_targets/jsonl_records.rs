#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| dartmouth_fuzz::jsonl_records(data));
