//! The control protocol decoder: any line is a request or an error; a decoded request encodes
//! to a line that decodes to the same request.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../cli/src/control/protocol.rs"]
#[allow(dead_code)]
mod protocol;

fuzz_target!(|data: &[u8]| {
    let Ok(line) = std::str::from_utf8(data) else { return };
    if let Ok(request) = protocol::decode(line) {
        assert_eq!(protocol::decode(&protocol::encode(&request)), Ok(request));
    }
});
