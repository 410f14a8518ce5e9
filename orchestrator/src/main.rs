//! `orchestrator`: parse arguments, set up tracing, hand over to the library.

mod cli;

use std::process::ExitCode;

use clap::Parser;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's options, set before anything allocates (an `.init_array`
/// entry runs before `main` and before Rust's runtime starts; its
/// environment variables would have to be set by whoever execs us).
/// Freed memory goes back to the system at once, and an arena's memory is
/// committed as it is used, not when the arena is reserved: with mimalloc's
/// defaults the idle RSS was 27 MiB instead of 15 (README, Benchmarks).
#[used]
#[unsafe(link_section = ".init_array")]
static MIMALLOC_OPTIONS: extern "C" fn() = mimalloc_options;

// mimalloc v3's `mi_option_t` (libmimalloc-sys =0.1.49 names only some).
const ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;
const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

extern "C" fn mimalloc_options() {
    // SAFETY: plain setters of mimalloc's option table.
    unsafe {
        libmimalloc_sys::mi_option_set(ARENA_EAGER_COMMIT, 0);
        libmimalloc_sys::mi_option_set(PURGE_DELAY, 0);
    }
}

fn main() -> ExitCode {
    // The shim must start before anything else (no threads, no runtime).
    let mut args = std::env::args_os();
    if args
        .nth(1)
        .is_some_and(|a| a == orchestrator::shim::SHIM_ARG)
    {
        orchestrator::shim::main(args.collect());
    }
    let args = match cli::Cli::try_parse() {
        Ok(args) => args,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() {
                orchestrator::exit_code::USAGE
            } else {
                0
            });
        }
    };
    ExitCode::from(cli::dispatch(args))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mimalloc_options_are_set_before_main() {
        // SAFETY: plain getters of mimalloc's option table.
        let (eager, purge) = unsafe {
            (
                libmimalloc_sys::mi_option_get(ARENA_EAGER_COMMIT),
                libmimalloc_sys::mi_option_get(PURGE_DELAY),
            )
        };
        // mimalloc's defaults are 2 and 10: the `.init_array` entry ran.
        // (That 4 and 15 are these options is pinned by the exact version.)
        assert_eq!((eager, purge), (0, 0));
    }
}
