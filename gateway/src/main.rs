//! The `causeway` command.

/// mimalloc rather than glibc malloc: policy loading and the exchange path allocate many small,
/// short-lived objects across threads (see docs/PERFORMANCE.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    causeway::cli::main()
}
