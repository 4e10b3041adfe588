#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| dartmouth_fuzz::shopify_csv(data));
