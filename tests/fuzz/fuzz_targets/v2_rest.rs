//! `POST /v2/models/digits/infer` (JSON and the binary extension) through
//! the router of a socket-less `kiln serve`: `kiln::fuzzing::Server::rest_infer`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kiln::fuzzing::Server::get().rest_infer(data));
