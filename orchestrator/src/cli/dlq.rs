//! `orchestrator dlq list|replay|drop`: through the control socket when the
//! orchestrator runs, on the journal file when it does not (holding the
//! state directory's lock meanwhile, so that no orchestrator starts on it).

use std::path::Path;

use orchestrator::control::{self, DlqEntry, Request, Response};
use orchestrator::exit_code;
use orchestrator::logs::StateDir;
use orchestrator::logs::lock::{Role, lock};

pub fn main(state_dir: &Path, req: Request, json: bool) -> u8 {
    let state = StateDir::at(state_dir);
    let response = match control::request(&state.control_socket(), &req) {
        Ok(r) => r,
        Err(e) if control::connect_error_means_not_running(&e) => {
            // No orchestrator answers: take the state directory's lock (an
            // orchestrator that holds it is starting, or hung) for as long
            // as the journal file is open.
            let _lock = if state.journal().exists() {
                match lock(state.root(), Role::Dlq) {
                    Ok(lock) => Some(lock),
                    Err(e) => {
                        eprintln!("orchestrator: {e}");
                        return exit_code::FAILURE;
                    }
                }
            } else {
                None
            };
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("orchestrator: {e}");
                    return exit_code::FAILURE;
                }
            };
            runtime.block_on(control::dlq::offline(&state.journal(), req.clone()))
        }
        Err(e) => {
            eprintln!("orchestrator: {e}");
            return exit_code::FAILURE;
        }
    };
    if !response.ok {
        eprintln!("orchestrator: {}", response.error.unwrap_or_default());
        return exit_code::FAILURE;
    }
    print(&req, response, json);
    exit_code::OK
}

fn print(req: &Request, response: Response, json: bool) {
    match req {
        Request::DlqList => {
            let letters = response.dead_letters.unwrap_or_default();
            if json {
                let body = serde_json::json!({ "deadLetters": letters });
                println!(
                    "{}",
                    serde_json::to_string_pretty(&body).unwrap_or_default()
                );
            } else {
                print!("{}", table(&letters));
            }
        }
        Request::DlqReplay { .. } => {
            for id in response.events.unwrap_or_default() {
                println!("replayed {id}");
            }
        }
        _ => {
            for id in response.events.unwrap_or_default() {
                println!("dropped {id}");
            }
        }
    }
}

fn table(letters: &[DlqEntry]) -> String {
    if letters.is_empty() {
        return "the dead-letter queue is empty\n".into();
    }
    let mut rows = vec![
        [
            "ID",
            "CONNECTION",
            "AGENT/INSTANCE",
            "EVENT",
            "ATTEMPTS",
            "DEAD AT",
            "ERROR",
        ]
        .map(String::from),
    ];
    for d in letters {
        rows.push([
            d.id.clone(),
            d.connection.clone(),
            format!("{}/{}", d.agent, d.instance_key),
            d.name.clone(),
            d.attempts.to_string(),
            d.dead_at.clone(),
            d.error.clone(),
        ]);
    }
    let widths: Vec<usize> = (0..7)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    rows.iter()
        .map(|r| {
            let cells: Vec<String> = r
                .iter()
                .zip(&widths)
                .map(|(c, w)| format!("{c:<w$}"))
                .collect();
            cells.join("  ").trim_end().to_string() + "\n"
        })
        .collect()
}
