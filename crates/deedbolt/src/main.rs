//! The `deedbolt` binary.
#![forbid(unsafe_code)]

/// mimalloc instead of glibc's malloc: allocation and freeing were an eighth of the token
/// endpoint's CPU under load (docs/benchmarks.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match deedbolt::cli::run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
