//! gRPC `ModelInfer` with an arbitrary message through the service of a
//! socket-less `kiln serve`: `kiln::fuzzing::Server::grpc_infer`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kiln::fuzzing::Server::get().grpc_infer(data));
