//! The agent of the README's "Writing a connector or an agent" section.

use connector_sdk::ipc_proto::Deliver;

fn main() -> std::process::ExitCode {
    connector_sdk::agent::run(|_ctx, d: Deliver| async move {
        println!("received {} (attempt {})", d.event.name, d.attempt);
        Ok(())
    })
}
