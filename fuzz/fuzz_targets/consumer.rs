#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| kafka_sansio_fuzz::check("consumer", data));
