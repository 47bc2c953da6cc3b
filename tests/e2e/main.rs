//! End-to-end tests: they drive the real `kiln` binary as a user would.
//!
//! One test binary (one link step), one module per area. Shared helpers —
//! the binary's path, scratch directories, a trained digits model — live in
//! `common`.

#![allow(unreachable_pub)]

mod certs;
mod common;

mod bench;
mod browser;
mod cli;
mod deploy;
mod fuzz;
mod kernels;
mod keys;
mod modules;
mod node;
mod onnx;
mod recurrent;
mod recurrent_int8;
mod seal;
mod serve;
mod serve_limits;
mod shrink;
mod shrink_engines;
mod tls;
mod train;
mod train_cli;
mod train_rnn;
mod trees;
mod trust;
mod trust_reload;
