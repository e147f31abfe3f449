//! Arbitrary bytes from a client, through the server's inbound path (framing and decoding):
//! see `throng::net::inbound_check` for the properties checked.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    throng::net::inbound_check::check_client_bytes(input);
});
