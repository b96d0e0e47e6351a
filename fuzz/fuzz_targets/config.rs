//! The config parser: any text is either refused with an error or accepted; an accepted
//! config written back with `to_toml` parses to the same config.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xvtep_dataplane::Config;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match Config::parse(text, "fuzz.toml") {
        Ok(c) => {
            let again = Config::parse(&c.to_toml(), "written.toml").expect("a written config parses");
            assert_eq!(again, c, "to_toml round trip");
        }
        Err(e) => assert!(!e.message.is_empty()),
    }
});
