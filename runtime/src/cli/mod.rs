//! Argument parsing (clap) and dispatch to one file per subcommand.

mod bench;
mod build;
mod eval;
mod import;
mod inspect;
mod keygen;
mod keyhash;
mod predict;
mod prune;
mod quantize;
mod seal;
mod serve;
mod sign;
mod train;
mod verify;

use clap::{Parser, Subcommand};

/// kiln — train a model, compile it into one self-contained WebAssembly
/// module, and run that module anywhere with the same bits.
#[derive(Debug, Parser)]
#[command(
    name = "kiln",
    version,
    about,
    long_about,
    max_term_width = 100,
    after_help = "A typical session:\n  \
        kiln train --data builtin:digits --seed 1 -o digits.safetensors --test-out test.csv\n  \
        kiln build digits.safetensors -o digits.wasm\n  \
        kiln predict digits.wasm --input test.csv\n  \
        kiln keygen -o signer && kiln sign digits.wasm --key signer.key\n  \
        kiln serve   # the demo model over KServe v2 on http://127.0.0.1:8000"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    Train(Box<train::Args>),
    Import(import::Args),
    Build(build::Args),
    Predict(predict::Args),
    Inspect(inspect::Args),
    Quantize(quantize::Args),
    Prune(prune::Args),
    Eval(eval::Args),
    Serve(serve::Args),
    Bench(bench::Args),
    Keygen(keygen::Args),
    Keyhash(keyhash::Args),
    Sign(sign::Args),
    Verify(verify::Args),
    Seal(seal::SealArgs),
    Unseal(seal::UnsealArgs),
}

pub(crate) fn run() -> anyhow::Result<()> {
    let command = Cli::parse().command;
    // `kiln serve` sets its own; elsewhere only the compile cache's
    // warnings are logged. The guard writes out queued lines at the end.
    let _log = match command {
        Command::Serve(_) => None,
        _ => Some(kiln::serve::init_log(kiln::serve::LogFormat::Text, None)?),
    };
    match command {
        Command::Train(a) => train::execute(*a),
        Command::Build(a) => build::execute(a),
        Command::Import(a) => import::execute(a),
        Command::Predict(a) => predict::execute(a),
        Command::Inspect(a) => inspect::execute(a),
        Command::Quantize(a) => quantize::execute(a),
        Command::Prune(a) => prune::execute(a),
        Command::Eval(a) => eval::execute(a),
        Command::Serve(a) => serve::execute(a),
        Command::Bench(a) => bench::execute(a),
        Command::Keygen(a) => keygen::execute(a),
        Command::Keyhash(a) => keyhash::execute(a),
        Command::Sign(a) => sign::execute(a),
        Command::Verify(a) => verify::execute(a),
        Command::Seal(a) => seal::execute_seal(a),
        Command::Unseal(a) => seal::execute_unseal(a),
    }
}
