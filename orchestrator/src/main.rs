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

// mimalloc v3's `mi_option_t` (libmimalloc-sys =0.1.49 names only some;
// the test below checks them by name).
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
    use std::ffi::{CStr, c_char, c_void};

    unsafe extern "C" {
        // Exported by mimalloc, not declared by libmimalloc-sys 0.1.49.
        fn mi_options_print_out(out: libmimalloc_sys::mi_output_fun, arg: *mut c_void);
    }

    unsafe extern "C" fn collect(msg: *const c_char, arg: *mut c_void) {
        // SAFETY: `arg` is the `String` below; `msg` a C string mimalloc made.
        unsafe {
            let text = &mut *arg.cast::<String>();
            text.push_str(&CStr::from_ptr(msg).to_string_lossy());
        }
    }

    /// By mimalloc's own names for them (so a wrong index fails too): its
    /// defaults are 2 and 10, so 0 means the `.init_array` entry ran.
    #[test]
    fn mimalloc_options_are_set_before_main() {
        let mut text = String::new();
        // SAFETY: `collect` only appends to `text`, which outlives the call.
        unsafe { mi_options_print_out(Some(collect), (&raw mut text).cast()) };
        for line in [
            "option 'arena_eager_commit': 0 ",
            "option 'purge_delay': 0 ",
        ] {
            assert!(
                text.lines().any(|l| format!("{l} ").starts_with(line)),
                "{line:?} not in mimalloc's options:\n{text}"
            );
        }
    }
}
